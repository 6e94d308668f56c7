// The reconciler's policy, evaluated by an IAM policy simulator: each lab's role is allowed what its lab needs
// and denied every one of those requests on the other lab's resources. (The runners' policy and the
// credential keys: runner-policy.test.ts, credential-key.test.ts.)
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as autoScaling from "@aws-sdk/client-auto-scaling";
import * as cloudWatch from "@aws-sdk/client-cloudwatch";
import * as ec2 from "@aws-sdk/client-ec2";
import * as scheduler from "@aws-sdk/client-scheduler";
import * as sqs from "@aws-sdk/client-sqs";
import * as ssm from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import type { LabConfig } from "../../functions/core/config.ts";
import {
  ASG_TAG,
  COMMAND_TAG,
  CREDENTIAL_TAG,
  HOLDER_TAG,
  healthAlarmName,
  instanceArn,
  LAB_TAG,
  SETUP_TAG,
} from "../../functions/core/names.ts";
import { labs } from "../../infra/labs.ts";
import {
  deadLetterQueueName,
  functionName,
  LAB_ALARMS,
  labAlarmName,
  requeueRoleName,
  requeueScheduleName,
} from "../../infra/naming.ts";
import {
  type AccountContext,
  type PolicyDocument,
  RECONCILER_READ_ACTIONS,
  reconcilerPolicy,
  requeueRolePolicy,
  requeueTrustPolicy,
  toFunctionPermissions,
} from "../../infra/policy.ts";
import { ACCOUNT, type Decision, type Request, simulate as simulateRequest } from "./simulate.ts";

const account: AccountContext = { partition: "aws", region: "eu-central-1", account: ACCOUNT };
const { partition: p, region: r, account: a } = account;
const stage = "prod";
const storeArn = `arn:${p}:dynamodb:${r}:${a}:table/labgate-${stage}-store`;
const queueArn = (lab: LabConfig) => `arn:${p}:sqs:${r}:${a}:${deadLetterQueueName(stage, lab.name)}`;
const scheduleArn = (lab: LabConfig) =>
  `arn:${p}:scheduler:${r}:${a}:schedule/default/${requeueScheduleName(stage, lab.name)}`;
const requeueRoleArn = (lab: LabConfig) => `arn:${p}:iam::${a}:role/${requeueRoleName(stage, lab.name)}`;
const functionArn = (lab: LabConfig) => `arn:${p}:lambda:${r}:${a}:function:${functionName(stage, lab.name)}`;
const policyOf = (lab: LabConfig) =>
  reconcilerPolicy(lab, {
    ...account,
    deadLetterQueueArn: queueArn(lab),
    requeueScheduleArn: scheduleArn(lab),
    requeueRoleArn: requeueRoleArn(lab),
    storeTableArn: storeArn,
  });

const [foo, bar] = labs;
if (foo?.name !== "foo" || bar?.name !== "bar") throw new Error("infra/labs.ts must list foo then bar");

const simulate = (policy: PolicyDocument, req: Request): Promise<Decision> =>
  simulateRequest(req, { identity: [{ name: "labgate", policy }] });

const instance = (id: string) => `arn:${p}:ec2:${r}:${a}:instance/${id}`;
const routeTable = (id: string) => `arn:${p}:ec2:${r}:${a}:route-table/${id}`;
const alarm = (name: string) => `arn:${p}:cloudwatch:${r}:${a}:alarm:${name}`;
const parameter = (name: string) => `arn:${p}:ssm:${r}:${a}:parameter${name}`;
const group = (name: string) =>
  `arn:${p}:autoscaling:${r}:${a}:autoScalingGroup:5c1e4c1a-6a39-4b1e-9d1a-2f3e4d5c6b7a:autoScalingGroupName/${name}`;

/** Every change the reconciler of `lab` makes, on that lab's resources (ids differ per lab). */
const writesOf = (lab: LabConfig): Request[] => {
  const runner = { [`ec2:ResourceTag/${ASG_TAG}`]: lab.runners.autoScalingGroupName };
  const id = `i-0${lab.name}00000000a0001`;
  const rtb = `rtb-0${lab.name}0000000000001`;
  return [
    ...["ec2:ReplaceRoute", "ec2:CreateRoute", "ec2:DeleteRoute"].map((action) => ({
      what: `${action} in ${lab.name}'s route table`,
      action,
      resource: routeTable(rtb),
      context: { [`ec2:ResourceTag/${LAB_TAG}`]: lab.name },
    })),
    {
      what: `disable source/dest check on ${lab.name}'s runner`,
      action: "ec2:ModifyInstanceAttribute",
      resource: instance(id),
      context: { ...runner, "ec2:Attribute": "SourceDestCheck", "ec2:Attribute/SourceDestCheck": "false" },
    },
    {
      what: `name the holder of ${lab.name}'s credential`,
      action: "ssm:AddTagsToResource",
      resource: parameter(lab.vpn.credentials[0] ?? ""),
      context: { "aws:TagKeys": [HOLDER_TAG], [`aws:RequestTag/${HOLDER_TAG}`]: instanceArn(account, id) },
    },
    {
      what: `clear the holder of ${lab.name}'s credential`,
      action: "ssm:RemoveTagsFromResource",
      resource: parameter(lab.vpn.credentials[0] ?? ""),
      context: { "aws:TagKeys": [HOLDER_TAG] },
    },
    {
      what: `read the holder of ${lab.name}'s credential`,
      action: "ssm:ListTagsForResource",
      resource: parameter(lab.vpn.credentials[0] ?? ""),
    },
    ...["ec2:CreateTags", "ec2:DeleteTags"].map((action) => ({
      what: `${action} labgate's tags on ${lab.name}'s runner`,
      action,
      resource: instance(id),
      context: { ...runner, "aws:TagKeys": [CREDENTIAL_TAG, SETUP_TAG, COMMAND_TAG] },
    })),
    {
      what: `send a command to ${lab.name}'s runner`,
      action: "ssm:SendCommand",
      resource: instance(id),
      context: { [`ssm:resourceTag/${ASG_TAG}`]: lab.runners.autoScalingGroupName },
    },
    {
      what: `complete a lifecycle action of ${lab.name}'s group`,
      action: "autoscaling:CompleteLifecycleAction",
      resource: group(lab.runners.autoScalingGroupName),
    },
    ...["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"].map((action) => ({
      what: `${action} on ${lab.name}'s runner health alarm`,
      action,
      resource: alarm(healthAlarmName(lab.name, id)),
    })),
    {
      what: `tag ${lab.name}'s runner health alarm with its lab`,
      action: "cloudwatch:TagResource",
      resource: alarm(healthAlarmName(lab.name, id)),
      context: { [`aws:RequestTag/${LAB_TAG}`]: lab.name, "aws:TagKeys": [LAB_TAG] },
    },
    ...["dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"].map((action) => ({
      what: `${action} on ${lab.name}'s items of the store`,
      action,
      resource: storeArn,
      context: { "dynamodb:LeadingKeys": [lab.name] },
    })),
    {
      what: `dead-letter a failed event of ${lab.name}`,
      action: "sqs:SendMessage",
      resource: queueArn(lab),
    },
    ...["scheduler:CreateSchedule", "scheduler:DeleteSchedule"].map((action) => ({
      what: `${action} on ${lab.name}'s requeue schedule`,
      action,
      resource: scheduleArn(lab),
    })),
    {
      what: `pass ${lab.name}'s requeue role to EventBridge Scheduler`,
      action: "iam:PassRole",
      resource: requeueRoleArn(lab),
      context: { "iam:PassedToService": "scheduler.amazonaws.com" },
    },
  ];
};

describe("reconciler policy", () => {
  for (const [self, other] of [
    [foo, bar],
    [bar, foo],
  ] as const) {
    for (const req of writesOf(self)) {
      it(`allows ${self.name}'s role to ${req.what}`, async () => {
        expect(await simulate(policyOf(self), req)).toBe("Allowed");
      });
    }
    for (const req of writesOf(other)) {
      it(`denies ${self.name}'s role to ${req.what}`, async () => {
        expect(await simulate(policyOf(self), req)).not.toBe("Allowed");
      });
    }
  }

  it("confines each lab's function to its own items of the one store table (dynamodb:LeadingKeys)", async () => {
    const request = (keys: string[]): Request => ({
      what: `UpdateItem on ${keys.join(" and ")}`,
      action: "dynamodb:UpdateItem",
      resource: storeArn,
      context: { "dynamodb:LeadingKeys": keys },
    });
    expect(await simulate(policyOf(foo), request(["foo"]))).toBe("Allowed");
    expect(await simulate(policyOf(foo), request(["bar"]))).toBe("ImplicitlyDenied");
    expect(await simulate(policyOf(foo), request(["foo", "bar"]))).toBe("ImplicitlyDenied");
    // Another table of the account is not the store.
    const other = { ...request(["foo"]), resource: `arn:${p}:dynamodb:${r}:${a}:table/someone-elses` };
    expect(await simulate(policyOf(foo), other)).toBe("ImplicitlyDenied");
  });

  it("creates no schedule but its lab's requeue, and passes its requeue role to EventBridge Scheduler only", async () => {
    const create = (name: string): Request => ({
      what: name,
      action: "scheduler:CreateSchedule",
      resource: `arn:${p}:scheduler:${r}:${a}:schedule/default/${name}`,
    });
    expect(await simulate(policyOf(foo), create(requeueScheduleName(stage, "foo")))).toBe("Allowed");
    for (const name of [requeueScheduleName("other", "foo"), "labgate-prod-foo-requeue-2", "nightly-job"])
      expect(await simulate(policyOf(foo), create(name)), name).toBe("ImplicitlyDenied");
    // Another group's schedule of the same name is not the lab's.
    const grouped = { ...create("x"), resource: scheduleArn(foo).replace("/default/", "/other/") };
    expect(await simulate(policyOf(foo), grouped)).toBe("ImplicitlyDenied");
    // The role is the lab's own, passed to Scheduler only (not to Lambda, EC2...).
    const pass = (role: string, service: string): Request => ({
      what: `${role} to ${service}`,
      action: "iam:PassRole",
      resource: role,
      context: { "iam:PassedToService": service },
    });
    expect(await simulate(policyOf(foo), pass(requeueRoleArn(foo), "scheduler.amazonaws.com"))).toBe(
      "Allowed",
    );
    for (const service of ["lambda.amazonaws.com", "ec2.amazonaws.com", "events.amazonaws.com"])
      expect(await simulate(policyOf(foo), pass(requeueRoleArn(foo), service)), service).toBe(
        "ImplicitlyDenied",
      );
    const admin = `arn:${p}:iam::${a}:role/Admin`;
    expect(await simulate(policyOf(foo), pass(admin, "scheduler.amazonaws.com"))).toBe("ImplicitlyDenied");
  });

  it("lets each lab's requeue role invoke that lab's function and nothing else", async () => {
    const invoke = (fn: string): Request => ({ what: fn, action: "lambda:InvokeFunction", resource: fn });
    for (const [self, other] of [
      [foo, bar],
      [bar, foo],
    ] as const) {
      const role = requeueRolePolicy(functionArn(self));
      expect(await simulate(role, invoke(functionArn(self))), self.name).toBe("Allowed");
      expect(await simulate(role, invoke(functionArn(other))), other.name).toBe("ImplicitlyDenied");
      const write = { what: "update", action: "lambda:UpdateFunctionCode", resource: functionArn(self) };
      expect(await simulate(role, write)).toBe("ImplicitlyDenied");
    }
  });

  it("lets EventBridge Scheduler of this account alone assume a requeue role", async () => {
    const assume = (principal: string, sourceAccount: string): Promise<Decision> =>
      simulateRequest(
        {
          what: `${principal} from ${sourceAccount}`,
          principal,
          action: "sts:AssumeRole",
          resource: requeueRoleArn(foo),
          context: { "aws:SourceAccount": sourceAccount },
        },
        { identity: [], resource: requeueTrustPolicy(account) },
      );
    expect(await assume("scheduler.amazonaws.com", a)).toBe("Allowed");
    expect(await assume("scheduler.amazonaws.com", "210987654321")).not.toBe("Allowed");
    expect(await assume("lambda.amazonaws.com", a)).not.toBe("Allowed");
    expect(await assume("events.amazonaws.com", a)).not.toBe("Allowed");
  });

  it("allows the reads the reconciler needs to observe its lab", async () => {
    for (const action of RECONCILER_READ_ACTIONS) {
      const resource = action === "cloudwatch:DescribeAlarms" ? alarm("*") : "*";
      expect(await simulate(policyOf(foo), { what: action, action, resource }), action).toBe("Allowed");
    }
  });

  it("runs only the AWS-RunShellScript document", async () => {
    const doc = (name: string) => `arn:${p}:ssm:${r}:${a}:document/${name}`;
    const send = (name: string): Request => ({ what: name, action: "ssm:SendCommand", resource: doc(name) });
    expect(await simulate(policyOf(foo), send("AWS-RunShellScript"))).toBe("Allowed");
    for (const name of ["AWS-RunPowerShellScript", "AWS-RunRemoteScript", "my-own-document"]) {
      expect(await simulate(policyOf(foo), send(name)), name).toBe("ImplicitlyDenied");
    }
  });

  it("refuses to change routes in route tables without the lab tag", async () => {
    const req = { what: "untagged", action: "ec2:ReplaceRoute", resource: routeTable("rtb-0untagged000001") };
    expect(await simulate(policyOf(foo), req)).toBe("ImplicitlyDenied");
  });

  it("refuses instances outside the lab's group, even tagged with the lab", async () => {
    const context = { [`ec2:ResourceTag/${LAB_TAG}`]: "foo" };
    const req = { what: "x", action: "ec2:ModifyInstanceAttribute", resource: instance("i-0x"), context };
    expect(await simulate(policyOf(foo), req)).toBe("ImplicitlyDenied");
  });

  it("refuses tag keys other than labgate's own, and tag calls without keys", async () => {
    const runner = { [`ec2:ResourceTag/${ASG_TAG}`]: "foo-runners" };
    for (const keys of [[LAB_TAG], [CREDENTIAL_TAG, "Name"], ["aws:autoscaling:groupName"]]) {
      const context = { ...runner, "aws:TagKeys": keys };
      const req = { what: keys.join(","), action: "ec2:CreateTags", resource: instance("i-0f"), context };
      expect(await simulate(policyOf(foo), req), keys.join(",")).toBe("ImplicitlyDenied");
    }
    const all = { what: "delete all", action: "ec2:DeleteTags", resource: instance("i-0f"), context: runner };
    expect(await simulate(policyOf(foo), all)).toBe("ImplicitlyDenied");
  });

  it("changes no attribute of a runner but its source/destination check, and only turns it off", async () => {
    const modify = (attribute: string, value: string): Request => ({
      what: `${attribute}=${value}`,
      action: "ec2:ModifyInstanceAttribute",
      resource: instance("i-0f"),
      context: {
        [`ec2:ResourceTag/${ASG_TAG}`]: "foo-runners",
        "ec2:Attribute": attribute,
        [`ec2:Attribute/${attribute}`]: value,
      },
    });
    expect(await simulate(policyOf(foo), modify("SourceDestCheck", "false"))).toBe("Allowed");
    for (const [attribute, value] of [
      ["SourceDestCheck", "true"],
      ["UserData", "IyEvYmluL3NoCnJlYm9vdAo="],
      ["userData", "IyEvYmluL3NoCnJlYm9vdAo="],
      ["InstanceType", "c7i.48xlarge"],
      ["DisableApiTermination", "true"],
      ["DisableApiTermination", "false"],
      ["InstanceInitiatedShutdownBehavior", "terminate"],
      ["GroupId", "sg-0badbadbadbadbad0"],
    ] as const) {
      expect(await simulate(policyOf(foo), modify(attribute, value)), attribute).toBe("ImplicitlyDenied");
    }
    const unnamed = {
      what: "no attribute",
      action: "ec2:ModifyInstanceAttribute",
      resource: instance("i-0f"),
    };
    const context = { [`ec2:ResourceTag/${ASG_TAG}`]: "foo-runners" };
    expect(await simulate(policyOf(foo), { ...unnamed, context })).toBe("ImplicitlyDenied");
  });

  it("tags credential parameters with the holder key only, an instance ARN, and never without keys", async () => {
    const tag = (
      context: Record<string, string | string[]>,
      name = foo.vpn.credentials[0] ?? "",
    ): Request => ({
      what: `${name} ${JSON.stringify(context)}`,
      action: "ssm:AddTagsToResource",
      resource: parameter(name),
      context,
    });
    const holder = { [`aws:RequestTag/${HOLDER_TAG}`]: instanceArn(account, "i-0f0000000000a0001") };
    const denied = [
      tag({ ...holder, "aws:TagKeys": [HOLDER_TAG, "Owner"] }),
      tag({ "aws:TagKeys": [CREDENTIAL_TAG], [`aws:RequestTag/${CREDENTIAL_TAG}`]: "x" }),
      tag({ "aws:TagKeys": [HOLDER_TAG], [`aws:RequestTag/${HOLDER_TAG}`]: "i-0f0000000000a0001" }),
      tag({ ...holder }),
      tag({ ...holder, "aws:TagKeys": [HOLDER_TAG] }, "/labgate/foo/vpn/not-listed"),
    ];
    for (const req of denied) expect(await simulate(policyOf(foo), req), req.what).toBe("ImplicitlyDenied");
    const removeAll = { what: "remove all", action: "ssm:RemoveTagsFromResource", resource: parameter("/x") };
    expect(await simulate(policyOf(foo), removeAll)).toBe("ImplicitlyDenied");
  });

  it("refuses to tag route tables (which would hand a table to a lab)", async () => {
    const context = { [`ec2:ResourceTag/${LAB_TAG}`]: "foo", "aws:TagKeys": [LAB_TAG] };
    const req = { what: "tag rtb", action: "ec2:CreateTags", resource: routeTable("rtb-0f"), context };
    expect(await simulate(policyOf(foo), req)).toBe("ImplicitlyDenied");
  });

  it("leaves the lab alarms infra creates to infra", async () => {
    for (const name of Object.values(LAB_ALARMS).map((kind) => labAlarmName("foo", kind))) {
      for (const action of ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"]) {
        const req = { what: name, action, resource: alarm(name) };
        expect(await simulate(policyOf(foo), req), `${action} ${name}`).toBe("ImplicitlyDenied");
      }
    }
  });

  it("refuses health alarms that carry actions", async () => {
    const req = {
      what: "alarm with action",
      action: "cloudwatch:PutMetricAlarm",
      resource: alarm(healthAlarmName("foo", "i-0f")),
      context: { "cloudwatch:AlarmActions": [`arn:${p}:automate:${r}:ec2:terminate`] },
    };
    expect(await simulate(policyOf(foo), req)).toBe("ImplicitlyDenied");
  });

  it("tags health alarms only with the lab's own tag", async () => {
    const tag = (context: Record<string, string | string[]>): Request => ({
      what: JSON.stringify(context),
      action: "cloudwatch:TagResource",
      resource: alarm(healthAlarmName("foo", "i-0f")),
      context,
    });
    const denied = [
      { [`aws:RequestTag/${LAB_TAG}`]: "bar", "aws:TagKeys": [LAB_TAG] },
      { [`aws:RequestTag/${LAB_TAG}`]: "foo", "aws:TagKeys": [LAB_TAG, "Owner"] },
    ];
    for (const context of denied) {
      expect(await simulate(policyOf(foo), tag(context)), JSON.stringify(context)).toBe("ImplicitlyDenied");
    }
  });

  it("allows every AWS call the adapters in functions/aws make", () => {
    const dir = join(import.meta.dirname, "../../functions/aws");
    const source = readdirSync(dir)
      .filter((f) => f.endsWith(".ts"))
      .map((f) => readFileSync(join(dir, f), "utf8"))
      .join("\n");
    const operations = new Set(
      [...source.matchAll(/\bnew (\w+)Command\(|\bpaginate(\w+)\(/g)].map((m) => m[1] ?? m[2] ?? ""),
    );
    const services = [
      ["ec2", ec2],
      ["autoscaling", autoScaling],
      ["ssm", ssm],
      ["cloudwatch", cloudWatch],
      ["sqs", sqs],
      ["scheduler", scheduler],
    ] as const;
    // The store's document-client commands (functions/aws/store.ts), as the IAM actions they need: a
    // transaction needs the action of each item it writes.
    const documentCommands: Readonly<Record<string, readonly string[]>> = {
      Query: ["dynamodb:Query"],
      Update: ["dynamodb:UpdateItem"],
      Delete: ["dynamodb:DeleteItem"],
      Put: ["dynamodb:PutItem"],
      TransactWrite: ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
    };
    const granted = new Set(policyOf(foo).Statement.flatMap((s) => s.Action));
    expect(operations.size).toBeGreaterThan(0);
    for (const op of operations) {
      const needed = documentCommands[op];
      if (needed !== undefined) {
        for (const action of needed) expect(granted.has(action), `${action} (${op})`).toBe(true);
        continue;
      }
      const service = services.find(([, sdk]) => `${op}Command` in sdk)?.[0];
      expect(
        service,
        `${op}: not an EC2, Auto Scaling, SSM, CloudWatch, SQS or Scheduler operation`,
      ).toBeDefined();
      expect(granted.has(`${service}:${op}`), `${service}:${op} is not in the reconciler's policy`).toBe(
        true,
      );
      // CreateSchedule also passes the schedule's role (Service Authorization Reference, EventBridge Scheduler).
      if (op === "CreateSchedule")
        expect(granted.has("iam:PassRole"), "iam:PassRole (CreateSchedule)").toBe(true);
    }
  });

  it("grants nothing beyond its statements (no wildcard actions, writes scoped to resources)", () => {
    for (const s of policyOf(foo).Statement) {
      for (const action of s.Action) expect(action, s.Sid).not.toMatch(/\*/);
      if (s.Resource.includes("*")) expect(s.Sid).toBe("ObserveLab");
    }
  });

  it("becomes SST function permissions without losing a condition", () => {
    const policy = policyOf(foo);
    const permissions = toFunctionPermissions(policy);
    expect(permissions).toHaveLength(policy.Statement.length);
    permissions.forEach((perm, i) => {
      const s = policy.Statement[i];
      expect(perm.actions).toEqual(s?.Action);
      expect(perm.resources).toEqual(s?.Resource);
      const back: Record<string, Record<string, string[]>> = {};
      for (const c of perm.conditions ?? []) back[c.test] = { ...back[c.test], [c.variable]: c.values };
      const want = Object.fromEntries(
        Object.entries(s?.Condition ?? {}).map(([test, keys]) => [
          test,
          Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, typeof v === "string" ? [v] : v])),
        ]),
      );
      expect(back).toEqual(want);
    });
  });
});
