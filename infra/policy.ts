// IAM policies as data: what a lab's reconciler function may do, and what its runners' instance role needs.
// Pure functions of the lab's configuration and the account, used by infra/ and checked by
// test/infra/policy.test.ts with an IAM policy simulator. Actions, resources and condition keys follow the
// Service Authorization Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/).
import type { LabConfig } from "../functions/core/config.ts";
import {
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  LAB_TAG,
  METRIC_NAMESPACE,
  SETUP_TAG,
} from "../functions/core/names.ts";
import { healthAlarmPrefix } from "./naming.ts";

export interface AccountContext {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
}

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
  "autoscaling:DescribeAutoScalingGroups",
  "ssm:GetCommandInvocation",
  "cloudwatch:DescribeAlarms",
] as const;

const arns = ({ partition, region, account }: AccountContext) => ({
  routeTables: `arn:${partition}:ec2:${region}:${account}:route-table/*`,
  instances: `arn:${partition}:ec2:${region}:${account}:instance/*`,
  // AWS-owned documents have an empty account field in their ARN ("arn:aws:ssm:<region>::document/...");
  // "*" matches it, and names starting with "AWS-" are reserved to AWS, so no one else's document matches.
  document: (name: string) => `arn:${partition}:ssm:${region}:*:document/${name}`,
  group: (name: string) =>
    `arn:${partition}:autoscaling:${region}:${account}:autoScalingGroup:*:autoScalingGroupName/${name}`,
  alarms: (prefix: string) => `arn:${partition}:cloudwatch:${region}:${account}:alarm:${prefix}*`,
  // Parameter names start with "/", which the ARN does not double.
  parameter: (name: string) => `arn:${partition}:ssm:${region}:${account}:parameter${name}`,
  kmsKeys: `arn:${partition}:kms:${region}:${account}:key/*`,
});

export interface ReconcilerPolicyContext extends AccountContext {
  /** The lab's dead-letter queue, where Lambda sends the invocations that failed every retry. */
  readonly deadLetterQueueArn: string;
  /** The lab's requeue queue: the function sends delayed messages to it and is invoked by it. */
  readonly requeueQueueArn: string;
}

/**
 * The reconciler of one lab may change only that lab's resources: route tables tagged LAB_TAG=<lab>,
 * instances of the lab's Auto Scaling group (by the tag Auto Scaling puts on them, which no one can
 * change), the group itself, and the lab's per-runner alarms.
 */
export const reconcilerPolicy = (lab: LabConfig, ctx: ReconcilerPolicyContext): PolicyDocument => {
  const arn = arns(ctx);
  const group = lab.runners.autoScalingGroupName;
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ObserveLab", Effect: "Allow", Action: [...RECONCILER_READ_ACTIONS], Resource: ["*"] },
      {
        Sid: "RouteLabRouteTables",
        Effect: "Allow",
        Action: ["ec2:CreateRoute", "ec2:ReplaceRoute"],
        Resource: [arn.routeTables],
        Condition: { StringEquals: { [`ec2:ResourceTag/${LAB_TAG}`]: lab.name } },
      },
      {
        Sid: "DisableSourceDestCheckOnRunners",
        Effect: "Allow",
        Action: ["ec2:ModifyInstanceAttribute"],
        Resource: [arn.instances],
        Condition: { StringEquals: { [`ec2:ResourceTag/${ASG_TAG}`]: group } },
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
        Sid: "DeadLetters",
        Effect: "Allow",
        Action: ["sqs:SendMessage"],
        Resource: [ctx.deadLetterQueueArn],
      },
      {
        // Send a delayed request for another reconcile, and (as the queue's event source) receive it.
        Sid: "Requeue",
        Effect: "Allow",
        Action: ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        Resource: [ctx.requeueQueueArn],
      },
    ],
  };
};

/**
 * What the lab's runners need beyond AmazonSSMManagedInstanceCore (which the operator attaches): read the
 * lab's credential parameters (decrypting them through SSM only) and publish labgate's metrics.
 */
export const runnerPolicy = (lab: LabConfig, ctx: AccountContext): PolicyDocument => {
  const arn = arns(ctx);
  const parameters = lab.vpn.credentials.map(arn.parameter);
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "ReadLabCredentials", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: parameters },
      {
        // SSM decrypts a SecureString with an encryption context naming the parameter, so the key may only
        // be used for this lab's credentials. Not needed with the AWS managed key aws/ssm (its key policy
        // allows the account through SSM), needed with a customer managed key whose policy defers to IAM.
        Sid: "DecryptLabCredentials",
        Effect: "Allow",
        Action: ["kms:Decrypt"],
        Resource: [arn.kmsKeys],
        Condition: {
          StringEquals: { "kms:ViaService": `ssm.${ctx.region}.amazonaws.com` },
          "ForAnyValue:StringEquals": { "kms:EncryptionContext:PARAMETER_ARN": parameters },
        },
      },
      {
        Sid: "PublishLabgateMetrics",
        Effect: "Allow",
        Action: ["cloudwatch:PutMetricData"],
        Resource: ["*"],
        Condition: { StringEquals: { "cloudwatch:namespace": METRIC_NAMESPACE } },
      },
    ],
  };
};

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
