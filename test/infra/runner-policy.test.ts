// The runners' policy, simulated as it is used: attached to a lab's runner role beside
// AmazonSSMManagedInstanceCore (which allows ssm:GetParameter on every parameter), with the credentials
// encrypted by their lab's key. A credential is read only by its lab's runner that holds its lease.
import { describe, expect, it } from "vitest";
import {
  COMMAND_TAG,
  CREDENTIAL_TAG,
  instanceArn,
  LAB_TAG,
  METRIC_NAMESPACE,
  METRICS,
  runnerHealthNamespace,
  SETUP_TAG,
  TUNNEL_TAG,
} from "../../functions/core/names.ts";
import { labs } from "../../infra/labs.ts";
import { MANAGED_POLICY_MAX_CHARS, policySize, runnerPolicy } from "../../infra/runner-policy.ts";
import {
  ADMINISTRATOR_ACCESS,
  account,
  bar,
  type Credential,
  decrypt,
  foo,
  getParameter,
  holderOn,
  keyArn,
  parameterArn,
  reads,
  runner,
  runnerPolicyOf,
} from "./callers.ts";
import { CLOUDWATCH_AGENT_SERVER_POLICY } from "./fixtures/managed-policies.ts";
import { type Request, simulate } from "./simulate.ts";

const A1 = "i-0f0000000000a0001";
const A2 = "i-0f0000000000a0002";
const B1 = "i-0b0000000000b0001";

describe("runner policy, with AmazonSSMManagedInstanceCore attached", () => {
  for (const [self, other, id, otherId] of [
    [foo, bar, A1, B1],
    [bar, foo, B1, A1],
  ] as const) {
    const own = (holder?: string): Credential => ({
      lab: self,
      name: self.vpn.credentials[0] ?? "",
      ...(holder ? { holder } : {}),
    });

    it(`lets the ${self.name} runner that holds a ${self.name} credential read it (GetParameter, decrypt through SSM)`, async () => {
      const me = runner(self, id);
      for (const name of self.vpn.credentials) {
        const c: Credential = { lab: self, name, holder: holderOn(id) };
        expect(await getParameter(me, c), name).toBe("Allowed");
        expect(await decrypt(me, c), name).toBe("Allowed");
      }
    });

    it(`denies a ${self.name} runner every credential of ${other.name}, held by anyone or nobody, on any key`, async () => {
      const me = runner(self, id);
      for (const name of other.vpn.credentials) {
        for (const holder of [holderOn(otherId), holderOn(id), undefined]) {
          for (const key of ["lab", "aws/ssm"] as const) {
            const c: Credential = { lab: other, name, key, ...(holder ? { holder } : {}) };
            expect(await getParameter(me, c), `${name} ${holder} ${key}`).toBe("ExplicitlyDenied");
            expect(await getParameter(me, c, "ssm:GetParameters"), name).toBe("ExplicitlyDenied");
            expect(await decrypt(me, c), `${name} ${key}`).toBe("ExplicitlyDenied");
          }
        }
      }
    });

    it(`denies a ${self.name} runner the ${self.name} credentials it does not hold`, async () => {
      const me = runner(self, id);
      for (const c of [own(holderOn(A2)), own(holderOn(otherId)), own()]) {
        expect(await getParameter(me, c), c.holder ?? "no holder").toBe("ExplicitlyDenied");
        expect(await getParameter(me, c, "ssm:GetParameters"), c.holder ?? "no holder").toBe(
          "ExplicitlyDenied",
        );
        expect(await reads(me, c)).toBe(false);
      }
    });
  }

  it("stops what the runner policy of before allowed: with it and aws/ssm, a foo runner read bar's credentials", async () => {
    // The runner policy labgate emitted before (commit 704be7d), which only added grants, with the credentials on
    // the default key aws/ssm as infra/README.md then advised: the simulator lets a foo runner read bar's key.
    const before = {
      Version: "2012-10-17",
      Statement: [
        { Effect: "Allow", Action: ["ssm:GetParameter"], Resource: foo.vpn.credentials.map(parameterArn) },
        {
          Effect: "Allow",
          Action: ["kms:Decrypt"],
          Resource: [`arn:aws:kms:${account.region}:${account.account}:key/*`],
          Condition: {
            StringEquals: { "kms:ViaService": `ssm.${account.region}.amazonaws.com` },
            "ForAnyValue:StringEquals": {
              "kms:EncryptionContext:PARAMETER_ARN": foo.vpn.credentials.map(parameterArn),
            },
          },
        },
        {
          Effect: "Allow",
          Action: ["cloudwatch:PutMetricData"],
          Resource: ["*"],
          Condition: { StringEquals: { "cloudwatch:namespace": "labgate" } },
        },
      ],
    };
    const then = runner(foo, A1);
    const thenCaller = {
      ...then,
      identity: [then.identity[0], { name: "before", policy: before }].flatMap((x) => (x ? [x] : [])),
    };
    const barsKey: Credential = {
      lab: bar,
      name: bar.vpn.credentials[0] ?? "",
      key: "aws/ssm",
      holder: holderOn(B1),
    };
    expect(await reads(thenCaller, barsKey)).toBe(true);
    expect(await reads(runner(foo, A1), barsKey)).toBe(false);
  });

  it("denies the role's credentials used off the instance (no ec2:SourceInstanceARN), even on a held credential", async () => {
    const { "ec2:SourceInstanceARN": _, ...offInstance } = runner(foo, A1).context;
    const caller = { ...runner(foo, A1), context: offInstance };
    const c: Credential = { lab: foo, name: foo.vpn.credentials[0] ?? "", holder: holderOn(A1) };
    expect(await getParameter(caller, c)).toBe("ExplicitlyDenied");
  });

  it("denies the other ways to a credential's value: its history, and GetParametersByPath on any path above it", async () => {
    const me = runner(foo, A1);
    for (const lab of labs) {
      const held: Credential = { lab, name: lab.vpn.credentials[0] ?? "", holder: holderOn(A1) };
      expect(await getParameter(me, held, "ssm:GetParameterHistory"), lab.name).toBe("ExplicitlyDenied");
      for (const path of [`/labgate/${lab.name}/vpn`, `/labgate/${lab.name}`, "/labgate", "/labgate/x"]) {
        const req: Request = {
          what: path,
          action: "ssm:GetParametersByPath",
          resource: parameterArn(path),
          principal: me.principal,
          context: me.context,
        };
        expect(await simulate(req, { identity: me.identity }), path).toBe("ExplicitlyDenied");
      }
    }
    // The root path too; its ARN ("parameter/") names no parameter, which the simulator cannot evaluate.
    const byPath = runnerPolicyOf(foo).Statement.find((s) => s.Action.includes("ssm:GetParametersByPath"));
    expect(byPath?.Effect).toBe("Deny");
    expect(byPath?.Resource).toContain(parameterArn("/"));
  });

  it("refuses a runner any change to its lab's credentials, above all naming itself their holder", async () => {
    const me = runner(foo, A1);
    const c: Credential = { lab: foo, name: foo.vpn.credentials[1] ?? "", holder: holderOn(A2) };
    for (const action of [
      "ssm:AddTagsToResource",
      "ssm:RemoveTagsFromResource",
      "ssm:PutParameter",
      "ssm:DeleteParameter",
      "ssm:LabelParameterVersion",
    ]) {
      const req: Request = {
        what: action,
        action,
        resource: parameterArn(c.name),
        principal: me.principal,
        context: me.context,
      };
      // Even if some other policy on the role allowed everything.
      const identity = [
        ...me.identity,
        {
          name: "everything",
          policy: { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "*", Resource: "*" }] },
        },
      ];
      expect(await simulate(req, { identity }), action).toBe("ExplicitlyDenied");
    }
  });

  it("decrypts only through SSM and only with the encryption context of one of its lab's credentials", async () => {
    const me = runner(foo, A1);
    const c: Credential = { lab: foo, name: foo.vpn.credentials[0] ?? "", holder: holderOn(A1) };
    expect(await decrypt(me, c, { "kms:ViaService": `s3.${account.region}.amazonaws.com` })).toBe(
      "ExplicitlyDenied",
    );
    expect(
      await decrypt(me, c, {
        "kms:EncryptionContext:PARAMETER_ARN": parameterArn(bar.vpn.credentials[0] ?? ""),
      }),
    ).toBe("ExplicitlyDenied");
    expect(
      await decrypt(me, c, {
        "kms:EncryptionContext:PARAMETER_ARN": parameterArn("/labgate/foo/vpn/not-listed"),
      }),
    ).not.toBe("Allowed");
  });
});

describe("runner health metrics", () => {
  const put = (namespace: string): Request => ({
    what: namespace,
    action: "cloudwatch:PutMetricData",
    resource: "*",
    context: { "cloudwatch:namespace": namespace },
  });
  const as = (caller: ReturnType<typeof runner>, req: Request) =>
    simulate(
      { ...req, principal: caller.principal, context: { ...caller.context, ...req.context } },
      { identity: caller.identity },
    );

  it("lets each lab's runners publish in their lab's namespace only", async () => {
    expect(runnerHealthNamespace("foo")).toBe("labgate/foo");
    expect(await as(runner(foo, A1), put("labgate/foo"))).toBe("Allowed");
    expect(await as(runner(bar, B1), put("labgate/bar"))).toBe("Allowed");
    expect(await as(runner(foo, A1), put("AWS/EC2"))).toBe("ImplicitlyDenied");
  });

  it("denies a foo runner bar's namespace and the reconciler's (LabUnreachable, Failovers...), even with CloudWatchAgentServerPolicy", async () => {
    expect(METRICS.labUnreachable).toBe("LabUnreachable");
    for (const caller of [
      runner(foo, A1),
      runner(foo, A1, [{ name: "CloudWatchAgentServerPolicy", policy: CLOUDWATCH_AGENT_SERVER_POLICY }]),
    ]) {
      for (const namespace of ["labgate/bar", METRIC_NAMESPACE, "labgate/foo/x", "labgate/"]) {
        expect(await as(caller, put(namespace)), namespace).toBe("ExplicitlyDenied");
      }
    }
  });
});

describe("runner tunnel reports", () => {
  const instance = (id: string) => instanceArn(account, id);
  const tag = (
    caller: ReturnType<typeof runner>,
    resource: string,
    tags: Readonly<Record<string, string>>,
    action = "ec2:CreateTags",
  ) =>
    simulate(
      {
        what: `${action} ${JSON.stringify(tags)} on ${resource} by ${caller.principal}`,
        action,
        resource,
        principal: caller.principal,
        context: {
          ...caller.context,
          // What EC2 puts in the request for the instance being tagged.
          ...(resource.includes(":instance/") ? { "ec2:InstanceID": resource.split("/").pop() ?? "" } : {}),
          "aws:TagKeys": Object.keys(tags),
          ...Object.fromEntries(Object.entries(tags).map(([k, v]) => [`aws:RequestTag/${k}`, v])),
        },
      },
      { identity: caller.identity },
    );
  const down = { [TUNNEL_TAG]: "down 2026-11-26T09:19:58Z" };
  const withEverything = (lab: typeof foo, id: string) =>
    runner(lab, id, [{ name: "AdministratorAccess", policy: ADMINISTRATOR_ACCESS }]);

  it("lets a runner report its own tunnel on its own instance", async () => {
    expect(await tag(runner(foo, A1), instance(A1), down)).toBe("Allowed");
    expect(await tag(runner(bar, B1), instance(B1), { [TUNNEL_TAG]: "up 2026-11-26T09:20:04Z" })).toBe(
      "Allowed",
    );
  });

  it("refuses a runner a report on any other runner, of its lab or another, even with every other permission", async () => {
    for (const caller of [runner(foo, A1), withEverything(foo, A1)]) {
      for (const other of [A2, B1]) {
        const decision = await tag(caller, instance(other), down);
        expect(decision, other).not.toBe("Allowed");
        expect(await tag(caller, instance(other), down, "ec2:DeleteTags"), other).not.toBe("Allowed");
      }
    }
    expect(await tag(withEverything(foo, A1), instance(B1), down)).toBe("ExplicitlyDenied");
  });

  it("lets a runner write no other tag, not even on itself: not labgate's mirror, not another key beside its report", async () => {
    const me = runner(foo, A1);
    for (const key of [CREDENTIAL_TAG, SETUP_TAG, COMMAND_TAG]) {
      expect(await tag(me, instance(A1), { [key]: "x" }), key).toBe("ExplicitlyDenied");
      expect(await tag(me, instance(A1), { ...down, [key]: "x" }), key).toBe("ExplicitlyDenied");
    }
    expect(await tag(me, instance(A1), { Name: "x" })).toBe("ImplicitlyDenied");
    expect(await tag(me, instance(A1), { ...down, Name: "x" })).toBe("ImplicitlyDenied");
    expect(await tag(me, instance(A1), down, "ec2:DeleteTags")).toBe("ImplicitlyDenied");
  });

  it("refuses a report made with the role's credentials off the instance (no ec2:SourceInstanceARN)", async () => {
    const { "ec2:SourceInstanceARN": _, ...offInstance } = withEverything(foo, A1).context;
    expect(await tag({ ...withEverything(foo, A1), context: offInstance }, instance(A1), down)).toBe(
      "ExplicitlyDenied",
    );
  });

  it("denies a runner labgate's own tags anywhere, with every other permission: a route table tagged for its lab would be routed", async () => {
    const me = withEverything(foo, A1);
    const table = `arn:aws:ec2:${account.region}:${account.account}:route-table/rtb-0123456789abcdef0`;
    expect(await tag(me, table, { [LAB_TAG]: "foo" })).toBe("ExplicitlyDenied");
    expect(await tag(me, instance(A1), { [CREDENTIAL_TAG]: foo.vpn.credentials[0] ?? "" })).toBe(
      "ExplicitlyDenied",
    );
    // The role's other permissions still work where labgate has nothing to say.
    expect(await tag(me, table, { Name: "mine" })).toBe("Allowed");
  });
});

describe("runner policy document", () => {
  /** IAM's ARN matching: `*` any run of characters, `?` one. */
  const matches = (pattern: string, arn: string) =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, "\\$&")
        .replaceAll("*", ".*")
        .replaceAll("?", ".")}$`,
    ).test(arn);
  const deniedTo = (policy: ReturnType<typeof runnerPolicyOf>) =>
    policy.Statement.find((s) => s.Sid === "DenyOtherLabsCredentials")?.Resource ?? [];

  it("fits IAM's size limit for a managed policy, also with many labs", () => {
    for (const lab of labs) expect(policySize(runnerPolicyOf(lab))).toBeLessThan(MANAGED_POLICY_MAX_CHARS);
    const many = Array.from({ length: 12 }, (_, i) => ({
      ...foo,
      name: `lab${i}`,
      vpn: { ...foo.vpn, credentials: [1, 2, 3, 4].map((n) => `/labgate/lab${i}/vpn/client-${n}`) },
    }));
    const policy = runnerPolicy(many[0] ?? foo, { ...account, labs: many, credentialKeyArn: keyArn(foo) });
    expect(policySize(policy)).toBeLessThan(MANAGED_POLICY_MAX_CHARS);
  });

  it("covers every credential of every other lab, and none of its own lab's", () => {
    for (const lab of labs) {
      const denied = deniedTo(runnerPolicyOf(lab));
      for (const other of labs) {
        for (const name of other.vpn.credentials) {
          const hit = denied.some((pattern) => matches(pattern, parameterArn(name)));
          expect(hit, `${lab.name} denied ${name}`).toBe(other !== lab);
        }
      }
    }
  });

  it("names another lab's credentials one by one when they are not alone in labgate's folder of that lab", async () => {
    const shared = (lab: typeof foo, names: string[]) => ({
      ...lab,
      vpn: { ...lab.vpn, credentials: names },
    });
    const a = shared(foo, ["/ci/vpn/a-1", "/ci/vpn/a-2"]);
    const b = shared(bar, ["/ci/vpn/b-1", "/labgate/bar/vpn/b-2"]);
    const policy = runnerPolicy(a, { ...account, labs: [a, b], credentialKeyArn: keyArn(foo) });
    expect([...deniedTo(policy)].sort()).toEqual(b.vpn.credentials.map(parameterArn).sort());
    const me = {
      ...runner(a, A1),
      identity: [runner(a, A1).identity[0], { name: "labgate", policy }].flatMap((x) => (x ? [x] : [])),
    };
    for (const name of b.vpn.credentials) {
      expect(await getParameter(me, { lab: b, name, holder: holderOn(A1) }), name).toBe("ExplicitlyDenied");
    }
    expect(await getParameter(me, { lab: a, name: "/ci/vpn/a-1", holder: holderOn(A1) })).toBe("Allowed");
    for (const path of ["/ci/vpn", "/ci", "/labgate/bar"]) {
      const req: Request = {
        what: path,
        action: "ssm:GetParametersByPath",
        resource: parameterArn(path),
        principal: me.principal,
        context: me.context,
      };
      expect(await simulate(req, { identity: me.identity }), path).toBe("ExplicitlyDenied");
    }
  });

  it("holds the instance ARN form that the holder tag takes", () => {
    expect(instanceArn(account, A1)).toBe(`arn:aws:ec2:eu-central-1:${account.account}:instance/${A1}`);
  });
});
