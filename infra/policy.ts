// IAM policies as data: what a lab's reconciler function may do, and what its runners' instance role needs.
// Pure functions of the lab's configuration and the account, used by infra/ and checked by
// test/infra/policy.test.ts with an IAM policy simulator. Actions, resources and condition keys follow the
// Service Authorization Reference (https://docs.aws.amazon.com/service-authorization/latest/reference/).
import type { LabConfig } from "../functions/core/config.ts";
import {
  type AccountContext,
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  HOLDER_TAG,
  LAB_TAG,
  METRIC_NAMESPACE,
  runnerHealthNamespace,
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
  // Parameter names start with "/", which the ARN does not double; the root path "/" is "parameter/".
  parameter: (name: string) => `arn:${partition}:ssm:${region}:${account}:parameter${name}`,
  role: (name: string) => `arn:${partition}:iam::${account}:role/${name}`,
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

export { arns };

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
  const credentials = credentialArns(lab, ctx);
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
        // Send a delayed request for another reconcile, and (as the queue's event source) receive it.
        Sid: "Requeue",
        Effect: "Allow",
        Action: ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
        Resource: [ctx.requeueQueueArn],
      },
    ],
  };
};

export interface RunnerPolicyContext extends AccountContext {
  /** Every lab of the labs file: a lab's runners are denied every other lab's credentials. */
  readonly labs: readonly LabConfig[];
  /** The lab's credential key (infra/credential-keys.ts). */
  readonly credentialKeyArn: string;
}

/** An IAM policy variable (not a template): a request made with an instance's role credentials resolves it to that instance's ARN. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: IAM's own placeholder syntax, written out for IAM.
const SOURCE_INSTANCE = "${ec2:SourceInstanceARN}";

/** Every action that returns a parameter's value authorizes against the parameter, except ByPath. */
const READ_ONE = ["ssm:GetParameter", "ssm:GetParameters"];
const CHANGE = [
  "ssm:GetParameterHistory",
  "ssm:PutParameter",
  "ssm:DeleteParameter",
  "ssm:DeleteParameters",
  "ssm:LabelParameterVersion",
  "ssm:UnlabelParameterVersion",
  "ssm:AddTagsToResource",
  "ssm:RemoveTagsFromResource",
];

/** "/labgate/foo/vpn/client-1" → ["/labgate/foo/vpn", "/labgate/foo", "/labgate", "/"]. */
const ancestorPaths = (name: string): string[] => {
  const parts = name.split("/").slice(1, -1);
  return [...parts.map((_, i) => `/${parts.slice(0, parts.length - i).join("/")}`), "/"];
};

/**
 * The lab's runners' policy, attached beside AmazonSSMManagedInstanceCore (which allows ssm:GetParameter on
 * every parameter): it allows what they need and, because the managed policy's grants cannot be taken back
 * otherwise, denies explicitly:
 * - every other lab's credential parameters, any action (and decrypting with their encryption context);
 * - the lab's own credentials to any instance but their lease holder (HOLDER_TAG = `ec2:SourceInstanceARN`),
 *   and to a caller that is no instance at all;
 * - changing, tagging or reading the history of the lab's credentials;
 * - GetParametersByPath on every ancestor path of a credential (it authorizes against the path, not the
 *   parameters it returns: https://docs.aws.amazon.com/systems-manager/latest/userguide/ps-retrieval-authorization.html);
 * - publishing to any labgate namespace but the lab's runner health namespace.
 */
export const runnerPolicy = (lab: LabConfig, ctx: RunnerPolicyContext): PolicyDocument => {
  const arn = arns(ctx);
  const own = credentialArns(lab, ctx);
  const others = ctx.labs.filter((l) => l.name !== lab.name).flatMap((l) => credentialArns(l, ctx));
  const everyCredential = [lab, ...ctx.labs.filter((l) => l.name !== lab.name)].flatMap(
    (l) => l.vpn.credentials,
  );
  const ancestors = [...new Set(everyCredential.flatMap(ancestorPaths))].sort().map(arn.parameter);
  const namespace = runnerHealthNamespace(lab.name);
  const statements: PolicyStatement[] = [
    { Sid: "ReadHeldLabCredential", Effect: "Allow", Action: ["ssm:GetParameter"], Resource: own },
    {
      // The lab's key lets only this role decrypt, and only like this (infra/key-policy.ts): both must allow.
      Sid: "DecryptLabCredentialsThroughSsm",
      Effect: "Allow",
      Action: ["kms:Decrypt"],
      Resource: [ctx.credentialKeyArn],
      Condition: {
        StringEquals: { "kms:ViaService": ssmViaService(ctx.region), [PARAMETER_ENCRYPTION_CONTEXT]: own },
      },
    },
    {
      Sid: "PublishLabHealth",
      Effect: "Allow",
      Action: ["cloudwatch:PutMetricData"],
      Resource: ["*"],
      Condition: { StringEquals: { "cloudwatch:namespace": namespace } },
    },
    ...(others.length === 0
      ? []
      : [
          {
            Sid: "DenyOtherLabsCredentials",
            Effect: "Deny",
            Action: ["ssm:*"],
            Resource: others,
          } as const,
          {
            // Whatever key another lab's parameter is still encrypted with (aws/ssm before its migration).
            Sid: "DenyDecryptingOtherLabsCredentials",
            Effect: "Deny",
            Action: ["kms:Decrypt"],
            Resource: ["*"],
            Condition: { StringEquals: { [PARAMETER_ENCRYPTION_CONTEXT]: others } },
          } as const,
        ]),
    {
      // A missing tag, or another instance's ARN in it, is "not equal": only the holder reads.
      Sid: "DenyLabCredentialsToAllButTheirHolder",
      Effect: "Deny",
      Action: READ_ONE,
      Resource: own,
      Condition: { StringNotEquals: { [`aws:ResourceTag/${HOLDER_TAG}`]: SOURCE_INSTANCE } },
    },
    {
      // Without an instance the variable above does not resolve and that statement would not apply.
      Sid: "DenyLabCredentialsOffInstance",
      Effect: "Deny",
      Action: READ_ONE,
      Resource: own,
      Condition: { Null: { "ec2:SourceInstanceARN": "true" } },
    },
    { Sid: "DenyChangingLabCredentials", Effect: "Deny", Action: CHANGE, Resource: own },
    {
      Sid: "DenyCredentialsByPath",
      Effect: "Deny",
      Action: ["ssm:GetParametersByPath"],
      Resource: ancestors,
    },
    {
      // The reconciler's namespace and every other lab's, even with a policy that allows PutMetricData on "*".
      Sid: "DenyOtherLabgateNamespaces",
      Effect: "Deny",
      Action: ["cloudwatch:PutMetricData"],
      Resource: ["*"],
      Condition: {
        StringLike: { "cloudwatch:namespace": [METRIC_NAMESPACE, `${METRIC_NAMESPACE}/*`] },
        StringNotEquals: { "cloudwatch:namespace": namespace },
      },
    },
  ];
  return { Version: "2012-10-17", Statement: statements };
};

/**
 * IAM's limit on a managed policy document, whitespace not counted
 * (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html). The runners' policy lists
 * every lab's credentials: a labs file that grows past it must fail the deployment, not the runners.
 */
export const MANAGED_POLICY_MAX_CHARS = 6144;
export const policySize = (policy: PolicyDocument): number => JSON.stringify(policy).length;

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
