// IAM policies as data: what a lab's reconciler function may do (the runners' policy: runner-policy.ts, the
// credential key's: key-policy.ts), and the ARNs and names they share. Pure functions of the lab's
// configuration and the account, used by infra/ and checked by test/infra/policy.test.ts with an IAM policy
// simulator. Actions, resources and condition keys follow the
// Service Authorization Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/).
import type { LabConfig } from "../functions/core/config.ts";
import {
  type AccountContext,
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  HOLDER_TAG,
  LAB_TAG,
  SETUP_TAG,
} from "../functions/core/names.ts";
import { healthAlarmPrefix } from "./naming.ts";

export type { AccountContext };

export type ConditionBlock = Readonly<Record<string, Readonly<Record<string, string | readonly string[]>>>>;

export interface PolicyStatement {
  readonly Sid: string;
  readonly Effect: "Allow" | "Deny";
  readonly Action: readonly string[];
  readonly Resource: readonly string[];
  readonly Condition?: ConditionBlock;
}

export interface PolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: readonly PolicyStatement[];
}

/** The only document the reconciler may run on its runners. */
export const RUN_COMMAND_DOCUMENT = "AWS-RunShellScript";

/** The instance tags the reconciler writes (and may remove); any other key is refused. */
export const RECONCILER_TAG_KEYS = [CREDENTIAL_TAG, SETUP_TAG, COMMAND_TAG] as const;

/**
 * Reads of the lab's world. EC2, Auto Scaling and SSM describes cannot be limited to resources in IAM
 * (the reference lists no resource type for them), so they are allowed on "*"; they change nothing.
 * A new read in functions/aws must be added here, or it fails with AccessDenied once deployed.
 */
export const RECONCILER_READ_ACTIONS = [
  "ec2:DescribeInstances",
  "ec2:DescribeRouteTables",
  "ec2:DescribeSubnets",
  "ec2:DescribeVpcs",
  "autoscaling:DescribeAutoScalingGroups",
  "ssm:GetCommandInvocation",
  "cloudwatch:DescribeAlarms",
] as const;

export const arns = ({ partition, region, account }: AccountContext) => ({
  routeTables: `arn:${partition}:ec2:${region}:${account}:route-table/*`,
  instances: `arn:${partition}:ec2:${region}:${account}:instance/*`,
  // AWS-owned documents have an empty account field in their ARN ("arn:aws:ssm:<region>::document/...");
  // "*" matches it, and names starting with "AWS-" are reserved to AWS, so no one else's document matches.
  document: (name: string) => `arn:${partition}:ssm:${region}:*:document/${name}`,
  group: (name: string) =>
    `arn:${partition}:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${name}`,
  alarms: (prefix: string) => `arn:${partition}:cloudwatch:${region}:${account}:alarm:${prefix}*`,
  // Parameter names start with "/", which the ARN does not double; the root path "/" is "parameter/".
  parameter: (name: string) => `arn:${partition}:ssm:${region}:${account}:parameter${name}`,
  role: (name: string) => `arn:${partition}:iam::${account}:role/${name}`,
  lambdaFunction: (name: string) => `arn:${partition}:lambda:${region}:${account}:function:${name}`,
  // Schedules outside a group of their own are in the group "default".
  schedule: (name: string) => `arn:${partition}:scheduler:${region}:${account}:schedule/default/${name}`,
  root: `arn:${partition}:iam::${account}:root`,
});

/** The service name KMS sees in `kms:ViaService` when SSM encrypts or decrypts a SecureString for a caller. */
export const ssmViaService = (region: string): string => `ssm.${region}.amazonaws.com`;

/**
 * The encryption context SSM passes to KMS for a SecureString: the parameter's ARN, so a condition on it
 * confines a key to named parameters (https://docs.aws.amazon.com/kms/latest/developerguide/services-parameter-store.html).
 */
export const PARAMETER_ENCRYPTION_CONTEXT = "kms:EncryptionContext:PARAMETER_ARN";

/** The runners' role of a lab, as IAM names it in `aws:PrincipalArn` for its instances' sessions. */
export const runnerRoleArn = (lab: LabConfig, ctx: AccountContext): string =>
  arns(ctx).role(lab.runners.instanceRoleName);

/** The lab's credential parameters, as ARNs. */
export const credentialArns = (lab: LabConfig, ctx: AccountContext): string[] =>
  lab.vpn.credentials.map(arns(ctx).parameter);

export interface ReconcilerPolicyContext extends AccountContext {
  /** The lab's dead-letter queue, where Lambda sends the invocations that failed every retry. */
  readonly deadLetterQueueArn: string;
  /** The lab's requeue schedule (infra/naming.ts requeueScheduleName): the function creates and deletes it. */
  readonly requeueScheduleArn: string;
  /** The role EventBridge Scheduler assumes to invoke the function: the function passes it to the schedule. */
  readonly requeueRoleArn: string;
  /** The deployment's store table (infra/store.ts): leases and labgate's records of runners, every lab's. */
  readonly storeTableArn: string;
}

/** What the store adapter does (functions/aws/store.ts); a transaction needs each of its items' actions. */
export const STORE_ACTIONS = [
  "dynamodb:Query",
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
] as const;

/**
 * The reconciler of one lab may change only that lab's resources: route tables tagged LAB_TAG=<lab>,
 * instances of the lab's Auto Scaling group (by the tag Auto Scaling puts on them, which no one can
 * change), the group itself, the lab's per-runner alarms, and the holder tag of the lab's credentials.
 */
export const reconcilerPolicy = (lab: LabConfig, ctx: ReconcilerPolicyContext): PolicyDocument => {
  const arn = arns(ctx);
  const group = lab.runners.autoScalingGroupName;
  const credentials = credentialArns(lab, ctx);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ObserveLab", Effect: "Allow", Action: [...RECONCILER_READ_ACTIONS], Resource: ["*"] },
      {
        Sid: "RouteLabRouteTables",
        Effect: "Allow",
        Action: ["ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"],
        Resource: [arn.routeTables],
        Condition: { StringEquals: { [`ec2:ResourceTag/${LAB_TAG}`]: lab.name } },
      },
      {
        // Only the source/destination check, and only to turn it off (ec2:Attribute names the attribute a call
        // sets, ec2:Attribute/<name> its value: Amazon EC2 User Guide, "ec2:Attribute condition key"). User
        // data, instance type, termination protection and every other attribute are refused.
        Sid: "DisableSourceDestCheckOnRunners",
        Effect: "Allow",
        Action: ["ec2:ModifyInstanceAttribute"],
        Resource: [arn.instances],
        Condition: {
          StringEquals: {
            [`ec2:ResourceTag/${ASG_TAG}`]: group,
            "ec2:Attribute": "SourceDestCheck",
            "ec2:Attribute/SourceDestCheck": "false",
          },
        },
      },
      {
        // Only labgate's own keys, and never a call without keys (DeleteTags without keys deletes them all).
        Sid: "TagRunners",
        Effect: "Allow",
        Action: ["ec2:CreateTags", "ec2:DeleteTags"],
        Resource: [arn.instances],
        Condition: {
          StringEquals: { [`ec2:ResourceTag/${ASG_TAG}`]: group },
          "ForAllValues:StringEquals": { "aws:TagKeys": [...RECONCILER_TAG_KEYS] },
          Null: { "aws:TagKeys": "false" },
        },
      },
      {
        // SendCommand is authorized on the document and on each instance: both statements must allow.
        Sid: "RunShellScriptDocument",
        Effect: "Allow",
        Action: ["ssm:SendCommand"],
        Resource: [arn.document(RUN_COMMAND_DOCUMENT)],
      },
      {
        Sid: "RunShellScriptOnRunners",
        Effect: "Allow",
        Action: ["ssm:SendCommand"],
        Resource: [arn.instances],
        Condition: { StringEquals: { [`ssm:resourceTag/${ASG_TAG}`]: group } },
      },
      {
        Sid: "CompleteLifecycleActionsOfGroup",
        Effect: "Allow",
        Action: ["autoscaling:CompleteLifecycleAction"],
        Resource: [arn.group(group)],
      },
      {
        // The per-runner health alarms only (not the lab alarms infra creates), and without alarm actions:
        // the alarms reach the reconciler through EventBridge, and an action could act on other resources.
        Sid: "ManageRunnerHealthAlarms",
        Effect: "Allow",
        Action: ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
        Resource: [arn.alarms(healthAlarmPrefix(lab.name))],
        Condition: { Null: { "cloudwatch:AlarmActions": "true" } },
      },
      {
        // PutMetricAlarm with Tags also needs TagResource: the alarms carry LAB_TAG=<lab> and nothing else.
        Sid: "TagRunnerHealthAlarms",
        Effect: "Allow",
        Action: ["cloudwatch:TagResource"],
        Resource: [arn.alarms(healthAlarmPrefix(lab.name))],
        Condition: {
          StringEquals: { [`aws:RequestTag/${LAB_TAG}`]: lab.name },
          "ForAllValues:StringEquals": { "aws:TagKeys": [LAB_TAG] },
        },
      },
      {
        // The lease, enforced by IAM: the reconciler names a credential's holder (an instance ARN) in HOLDER_TAG,
        // and the runners' policy lets only that instance read it. Only that key, only on the lab's credentials.
        Sid: "SetCredentialHolder",
        Effect: "Allow",
        Action: ["ssm:AddTagsToResource"],
        Resource: credentials,
        Condition: {
          "ForAllValues:StringEquals": { "aws:TagKeys": [HOLDER_TAG] },
          Null: { "aws:TagKeys": "false" },
          StringLike: { [`aws:RequestTag/${HOLDER_TAG}`]: `${arn.instances.slice(0, -1)}i-*` },
        },
      },
      {
        Sid: "ClearCredentialHolder",
        Effect: "Allow",
        Action: ["ssm:RemoveTagsFromResource"],
        Resource: credentials,
        Condition: {
          "ForAllValues:StringEquals": { "aws:TagKeys": [HOLDER_TAG] },
          Null: { "aws:TagKeys": "false" },
        },
      },
      {
        // Read the holder back before clearing it (functions/aws/parameter-holder.ts): tags, never the value.
        Sid: "ReadCredentialHolder",
        Effect: "Allow",
        Action: ["ssm:ListTagsForResource"],
        Resource: credentials,
      },
      {
        Sid: "DeadLetters",
        Effect: "Allow",
        Action: ["sqs:SendMessage"],
        Resource: [ctx.deadLetterQueueArn],
      },
      {
        // One table for the deployment, but each lab's function reads and writes only the items whose
        // partition key is its lab: a lab's leases and records are beyond another lab's reach.
        Sid: "LabStore",
        Effect: "Allow",
        Action: [...STORE_ACTIONS],
        Resource: [ctx.storeTableArn],
        Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [lab.name] } },
      },
      {
        // The lab's one pending requeue: its own schedule only (created, and deleted to be replaced).
        Sid: "RequeueSchedule",
        Effect: "Allow",
        Action: ["scheduler:CreateSchedule", "scheduler:DeleteSchedule"],
        Resource: [ctx.requeueScheduleArn],
      },
      {
        // CreateSchedule passes the role the schedule invokes the function with: that role, to Scheduler only.
        Sid: "PassRequeueRole",
        Effect: "Allow",
        Action: ["iam:PassRole"],
        Resource: [ctx.requeueRoleArn],
        Condition: { StringEquals: { "iam:PassedToService": SCHEDULER_SERVICE } },
      },
    ],
  };
};

/** The service principal of EventBridge Scheduler. */
export const SCHEDULER_SERVICE = "scheduler.amazonaws.com";

/** A role's trust policy: who may assume it. */
export interface TrustPolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: readonly {
    readonly Sid: string;
    readonly Effect: "Allow";
    readonly Principal: { readonly Service: string };
    readonly Action: readonly string[];
    readonly Condition: ConditionBlock;
  }[];
}

/**
 * Who may assume the lab's requeue role: EventBridge Scheduler, for schedules of this account only
 * (aws:SourceAccount: Scheduler User Guide, "Confused deputy prevention"). Not aws:SourceArn: the guide asks
 * for a schedule group's ARN there, and the lab's schedule is in the account's shared default group.
 */
export const requeueTrustPolicy = (ctx: AccountContext): TrustPolicyDocument => ({
  Version: "2012-10-17",
  Statement: [
    {
      Sid: "SchedulerOfThisAccount",
      Effect: "Allow",
      Principal: { Service: SCHEDULER_SERVICE },
      Action: ["sts:AssumeRole"],
      Condition: { StringEquals: { "aws:SourceAccount": ctx.account } },
    },
  ],
});

/** What the lab's requeue role may do: invoke the lab's own function, and nothing else. */
export const requeueRolePolicy = (functionArn: string): PolicyDocument => ({
  Version: "2012-10-17",
  Statement: [
    {
      Sid: "InvokeLabReconciler",
      Effect: "Allow",
      Action: ["lambda:InvokeFunction"],
      Resource: [functionArn],
    },
  ],
});

/** SST's `permissions` shape (sst.aws.Function): the same statements, conditions as a list. */
export interface FunctionPermission {
  readonly effect: "allow" | "deny";
  readonly actions: string[];
  readonly resources: string[];
  readonly conditions?: { test: string; variable: string; values: string[] }[];
}

/** Turns a policy document into SST function permissions, keeping every action, resource and condition. */
export const toFunctionPermissions = (policy: PolicyDocument): FunctionPermission[] =>
  policy.Statement.map((s) => {
    const conditions = Object.entries(s.Condition ?? {}).flatMap(([test, keys]) =>
      Object.entries(keys).map(([variable, value]) => ({
        test,
        variable,
        values: typeof value === "string" ? [value] : [...value],
      })),
    );
    return {
      effect: s.Effect === "Allow" ? "allow" : "deny",
      actions: [...s.Action],
      resources: [...s.Resource],
      ...(conditions.length > 0 ? { conditions } : {}),
    };
  });
