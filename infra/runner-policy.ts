// The runners' policy of a lab, as data: attached by the operator to the lab's runners' role beside
// AmazonSSMManagedInstanceCore, checked by test/infra/runner-policy.test.ts with an IAM policy simulator
// with that managed policy attached.
import type { LabConfig } from "../functions/core/config.ts";
import {
  COMMAND_TAG,
  CREDENTIAL_TAG,
  HOLDER_TAG,
  LAB_TAG,
  METRIC_NAMESPACE,
  runnerHealthNamespace,
  SETUP_TAG,
  TUNNEL_TAG,
} from "../functions/core/names.ts";
import {
  type AccountContext,
  arns,
  credentialArns,
  PARAMETER_ENCRYPTION_CONTEXT,
  type PolicyDocument,
  type PolicyStatement,
  ssmViaService,
} from "./policy.ts";

export interface RunnerPolicyContext extends AccountContext {
  /** Every lab of the labs file: a lab's runners are denied every other lab's credentials. */
  readonly labs: readonly LabConfig[];
  /** The lab's credential key (infra/credential-keys.ts). */
  readonly credentialKeyArn: string;
}

/**
 * An IAM policy variable, not a template: in a request made with an instance's role credentials, IAM resolves
 * it to that instance's ARN (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-policies-for-amazon-ec2.html).
 */
// biome-ignore lint/suspicious/noTemplateCurlyInString: IAM's own placeholder syntax, written out for IAM.
const SOURCE_INSTANCE = "${ec2:SourceInstanceARN}";
/** The id of the instance a request acts on (EC2's resource condition key ec2:InstanceID), as a variable. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: IAM's own placeholder syntax, written out for IAM.
const TAGGED_INSTANCE_ID = "${ec2:InstanceID}";

/** Every action that returns a parameter's value authorizes against the parameter, except ByPath. */
const READ_ONE = ["ssm:GetParameter", "ssm:GetParameters"];
/** EC2's tagging actions: a runner writes one tag, its own tunnel report, on its own instance. */
const TAGGING = ["ec2:CreateTags", "ec2:DeleteTags"];
/** labgate's tags that only the reconciler writes: on runners (a mirror of its store) and on route tables. */
const RECONCILER_TAGS = [CREDENTIAL_TAG, SETUP_TAG, COMMAND_TAG, LAB_TAG];

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

/**
 * The paths above a credential, for GetParametersByPath: "/x/y/client-1" → ["/x/y", "/x", "/"]. Under
 * labgate's own folder every path is covered by one pattern ("/labgate/*"), whatever the number of labs.
 */
const ancestorPaths = (name: string): string[] => {
  if (name.startsWith("/labgate/")) return ["/", "/labgate", "/labgate/*"];
  const parts = name.split("/").slice(1, -1);
  return [...parts.map((_, i) => `/${parts.slice(0, parts.length - i).join("/")}`), "/"];
};

/** The folder all these parameter names share ("/labgate/bar/vpn"), or "" when only the root. */
const sharedFolder = (names: readonly string[]): string => {
  const folders = names.map((n) => n.slice(0, n.lastIndexOf("/")));
  let common = folders[0] ?? "";
  for (const f of folders) {
    while (common !== "" && f !== common && !f.startsWith(`${common}/`)) {
      common = common.slice(0, common.lastIndexOf("/"));
    }
  }
  return common;
};

/**
 * A lab's credentials as ARN patterns for a deny, few enough for IAM's policy size limit whatever the number
 * of labs and credentials: the folder they share when it is inside labgate's folder of that lab
 * (`/labgate/bar/...`, which holds nothing but bar's credentials, infra/README.md) and holds none of the
 * names in `spare`; else each parameter's ARN. Parameter names hold no wildcard character (core/config.ts),
 * so an exact ARN matches itself only.
 */
const denyPatterns = (lab: LabConfig, spare: readonly string[], ctx: AccountContext): string[] => {
  const folder = sharedFolder(lab.vpn.credentials);
  const labsFolder = `/labgate/${lab.name}`;
  const inLabsFolder = folder === labsFolder || folder.startsWith(`${labsFolder}/`);
  if (!inLabsFolder || spare.some((n) => n.startsWith(`${folder}/`))) return credentialArns(lab, ctx);
  return [`${arns(ctx).parameter(folder)}/*`];
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
 * - publishing to any labgate namespace but the lab's runner health namespace;
 * - writing a tunnel report (TUNNEL_TAG) anywhere but on its own instance, and labgate's other tags anywhere
 *   (a runner tagging a route table for its lab would have the reconciler route it).
 * It allows one write besides reads and metrics: the tunnel report on the runner's own instance.
 */
export const runnerPolicy = (lab: LabConfig, ctx: RunnerPolicyContext): PolicyDocument => {
  const arn = arns(ctx);
  const own = credentialArns(lab, ctx);
  const otherLabs = ctx.labs.filter((l) => l.name !== lab.name);
  const others = otherLabs.flatMap((l) => denyPatterns(l, lab.vpn.credentials, ctx));
  // The lab's own credentials in the denies, by folder too (a folder holding another lab's: one by one).
  const ownDenied = denyPatterns(
    lab,
    otherLabs.flatMap((l) => l.vpn.credentials),
    ctx,
  );
  const everyCredential = [lab, ...otherLabs].flatMap((l) => l.vpn.credentials);
  const ancestors = [...new Set(everyCredential.flatMap(ancestorPaths))].sort().map(arn.parameter);
  const namespace = runnerHealthNamespace(lab.name);
  const instances = `arn:${ctx.partition}:ec2:${ctx.region}:${ctx.account}:instance/*`;
  // The instance being tagged, by the resource's own ec2:InstanceID: equal to the caller's only on itself.
  const itself = `arn:${ctx.partition}:ec2:${ctx.region}:${ctx.account}:instance/${TAGGED_INSTANCE_ID}`;
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
    {
      // Its own tunnel watch's verdict, on its own instance only (the instance tagged is the one the request
      // comes from): the report can only ever count against the runner that writes it (core/rules/runner.ts).
      Sid: "ReportOwnTunnel",
      Effect: "Allow",
      Action: ["ec2:CreateTags"],
      Resource: [instances],
      Condition: {
        ArnEquals: { "ec2:SourceInstanceARN": itself },
        "ForAllValues:StringEquals": { "aws:TagKeys": [TUNNEL_TAG] },
      },
    },
    {
      // No report on another runner, of this lab or another, whatever else the role is granted; none off the
      // instance either (without ec2:SourceInstanceARN, "not equal" holds).
      Sid: "DenyTunnelReportsOnOthers",
      Effect: "Deny",
      Action: TAGGING,
      Resource: [instances],
      Condition: {
        ArnNotEquals: { "ec2:SourceInstanceARN": itself },
        "ForAnyValue:StringEquals": { "aws:TagKeys": [TUNNEL_TAG] },
      },
    },
    {
      Sid: "DenyReconcilerTags",
      Effect: "Deny",
      Action: TAGGING,
      Resource: ["*"],
      Condition: { "ForAnyValue:StringEquals": { "aws:TagKeys": RECONCILER_TAGS } },
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
            Condition: { StringLike: { [PARAMETER_ENCRYPTION_CONTEXT]: others } },
          } as const,
        ]),
    {
      // A missing tag, or another instance's ARN in it, is "not equal": only the holder reads.
      Sid: "DenyLabCredentialsToAllButTheirHolder",
      Effect: "Deny",
      Action: READ_ONE,
      Resource: ownDenied,
      Condition: { StringNotEquals: { [`aws:ResourceTag/${HOLDER_TAG}`]: SOURCE_INSTANCE } },
    },
    {
      // Without an instance the variable above does not resolve and that statement would not apply.
      Sid: "DenyLabCredentialsOffInstance",
      Effect: "Deny",
      Action: READ_ONE,
      Resource: ownDenied,
      Condition: { Null: { "ec2:SourceInstanceARN": "true" } },
    },
    { Sid: "DenyChangingLabCredentials", Effect: "Deny", Action: CHANGE, Resource: ownDenied },
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
