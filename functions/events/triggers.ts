// Parsing at the edge: every event the reconciler accepts becomes a Trigger, or a rejection that says why.
// A trigger is only a hint that the lab may have changed; the reconciler always re-reads the whole lab.
import { z } from "zod";
import { ASG_TAG, TUNNEL_TAG } from "../core/names.ts";
import { REQUEUE_EVENT_SOURCE } from "../core/retry.ts";
import { parseTunnelReport, type TunnelReport } from "../core/tunnel-report.ts";

export type Trigger =
  | {
      readonly kind: "lifecycle";
      readonly transition: "launch" | "terminate";
      readonly group: string;
      readonly instanceId: string;
    }
  | { readonly kind: "group-activity"; readonly group: string; readonly instanceId: string | undefined }
  | { readonly kind: "instance-state"; readonly instanceId: string; readonly state: string }
  | { readonly kind: "alarm"; readonly alarmName: string; readonly state: string }
  /**
   * A runner's tunnel watch changed its report (the TUNNEL_TAG on its instance). `report` is the tag's value as
   * the event carries it (undefined when removed or malformed); `group` the instance's Auto Scaling group tag.
   */
  | {
      readonly kind: "tunnel-report";
      readonly instanceId: string;
      readonly group: string | undefined;
      readonly report: TunnelReport | undefined;
    }
  | {
      readonly kind: "command-status";
      readonly commandId: string;
      readonly status: string;
      readonly firstLine: string | undefined;
    }
  | { readonly kind: "schedule" }
  /** A reconcile asked for by an earlier one: the lab's requeue schedule (functions/aws/requeue.ts). */
  | { readonly kind: "requeue"; readonly reason: string; readonly attempt: number }
  | { readonly kind: "resync"; readonly dryRun: boolean };

export type Parsed =
  | { readonly ok: true; readonly trigger: Trigger }
  | { readonly ok: false; readonly reason: string };

const envelope = <S extends string, T extends z.ZodType>(
  source: S,
  detailTypes: readonly [string, ...string[]],
  detail: T,
) => z.object({ source: z.literal(source), "detail-type": z.enum(detailTypes), detail });

const instanceId = z.string().regex(/^i-[0-9a-f]{8,17}$/);

const lifecycle = envelope(
  "aws.autoscaling",
  ["EC2 Instance-launch Lifecycle Action", "EC2 Instance-terminate Lifecycle Action"],
  z.object({
    AutoScalingGroupName: z.string().min(1),
    EC2InstanceId: instanceId,
    LifecycleTransition: z.enum([
      "autoscaling:EC2_INSTANCE_LAUNCHING",
      "autoscaling:EC2_INSTANCE_TERMINATING",
    ]),
  }),
);
const groupActivity = envelope(
  "aws.autoscaling",
  [
    "EC2 Instance Launch Successful",
    "EC2 Instance Terminate Successful",
    "EC2 Instance Launch Unsuccessful",
    "EC2 Instance Terminate Unsuccessful",
  ],
  z.object({ AutoScalingGroupName: z.string().min(1), EC2InstanceId: instanceId.optional() }),
);
const instanceState = envelope(
  "aws.ec2",
  ["EC2 Instance State-change Notification"],
  z.object({ "instance-id": instanceId, state: z.string().min(1) }),
);
const alarm = envelope(
  "aws.cloudwatch",
  ["CloudWatch Alarm State Change"],
  z.object({ alarmName: z.string().min(1), state: z.object({ value: z.string() }) }),
);
/** EventBridge's "Tag Change on Resource" of an EC2 instance whose TUNNEL_TAG changed. */
const tagChange = envelope(
  "aws.tag",
  ["Tag Change on Resource"],
  z.object({
    "changed-tag-keys": z.array(z.string()).refine((keys) => keys.includes(TUNNEL_TAG), {
      message: `must include ${TUNNEL_TAG}`,
    }),
    service: z.literal("ec2"),
    "resource-type": z.literal("instance"),
    tags: z.record(z.string(), z.string()),
  }),
).extend({
  resources: z.tuple([z.string().regex(/^arn:[^:]+:ec2:[^:]*:\d*:instance\/i-[0-9a-f]{8,17}$/)]),
});
const commandStatus = envelope(
  "aws.ssm",
  ["EC2 Command Status-change Notification"],
  z.object({
    "command-id": z.string().min(1),
    status: z.string(),
    parameters: z.object({ commands: z.array(z.string()).optional() }).optional(),
  }),
);
const schedule = envelope("aws.events", ["Scheduled Event"], z.unknown());
/** The input of the lab's requeue schedule, as EventBridge Scheduler passes it to the function. */
const requeued = z.strictObject({
  source: z.literal(REQUEUE_EVENT_SOURCE),
  reason: z.string(),
  attempt: z.number().int().min(1),
});
const resync = z.strictObject({ action: z.literal("resync"), dryRun: z.boolean().default(false) });

export const parseTrigger = (event: unknown): Parsed => {
  const ok = (trigger: Trigger): Parsed => ({ ok: true, trigger });
  const l = lifecycle.safeParse(event);
  if (l.success) {
    const d = l.data.detail;
    return ok({
      kind: "lifecycle",
      transition: d.LifecycleTransition === "autoscaling:EC2_INSTANCE_LAUNCHING" ? "launch" : "terminate",
      group: d.AutoScalingGroupName,
      instanceId: d.EC2InstanceId,
    });
  }
  const g = groupActivity.safeParse(event);
  if (g.success)
    return ok({
      kind: "group-activity",
      group: g.data.detail.AutoScalingGroupName,
      instanceId: g.data.detail.EC2InstanceId,
    });
  const s = instanceState.safeParse(event);
  if (s.success)
    return ok({
      kind: "instance-state",
      instanceId: s.data.detail["instance-id"],
      state: s.data.detail.state,
    });
  const a = alarm.safeParse(event);
  if (a.success)
    return ok({ kind: "alarm", alarmName: a.data.detail.alarmName, state: a.data.detail.state.value });
  const t = tagChange.safeParse(event);
  if (t.success) {
    const { tags } = t.data.detail;
    return ok({
      kind: "tunnel-report",
      instanceId: t.data.resources[0].slice(t.data.resources[0].lastIndexOf("/") + 1),
      group: tags[ASG_TAG],
      report: parseTunnelReport(tags[TUNNEL_TAG]),
    });
  }
  const c = commandStatus.safeParse(event);
  if (c.success) {
    const d = c.data.detail;
    return ok({
      kind: "command-status",
      commandId: d["command-id"],
      status: d.status,
      firstLine: d.parameters?.commands?.[0],
    });
  }
  if (schedule.safeParse(event).success) return ok({ kind: "schedule" });
  const q = requeued.safeParse(event);
  if (q.success) return ok({ kind: "requeue", reason: q.data.reason, attempt: q.data.attempt });
  const m = resync.safeParse(event);
  if (m.success) return ok({ kind: "resync", dryRun: m.data.dryRun });
  return { ok: false, reason: describeRejection(event) };
};

/** Says as precisely as it can why an event is not one the reconciler accepts. */
const describeRejection = (event: unknown): string => {
  if (event === null || typeof event !== "object")
    return `event is ${event === null ? "null" : typeof event}, not an object`;
  const e = event as Record<string, unknown>;
  if ("action" in e)
    return `manual payload must be {"action":"resync","dryRun":true|false}, got ${JSON.stringify(e).slice(0, 200)}`;
  if (e.source === REQUEUE_EVENT_SOURCE) {
    const issues = requeued.safeParse(event).error?.issues ?? [];
    return `requeue event is malformed: ${issues.map((i) => `${i.path.join(".") || "(event)"}: ${i.message}`).join("; ")}`;
  }
  if (typeof e.source === "string" && typeof e["detail-type"] === "string") {
    const known = [lifecycle, groupActivity, instanceState, alarm, tagChange, commandStatus].find(
      (schema) =>
        schema.shape.source.value === e.source &&
        (schema.shape["detail-type"].options as string[]).includes(e["detail-type"] as string),
    );
    if (known) {
      const issues = known.safeParse(event).error?.issues ?? [];
      return `${e["detail-type"]} event is malformed: ${issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`;
    }
    return `unknown event ${e.source} / ${e["detail-type"]}`;
  }
  return "event has neither source and detail-type nor a manual action";
};
