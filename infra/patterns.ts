// The EventBridge event patterns of a lab's rules on the default bus, as data: infra/reconciler.ts deploys
// them and test/infra/patterns.test.ts matches the samples in events/ against them.
// Pattern syntax: https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern.html
import type { LabConfig } from "../functions/core/config.ts";
import { ASG_TAG, commandMarkerPrefix, TUNNEL_TAG } from "../functions/core/names.ts";
import { healthAlarmPrefix, type RuleKind } from "./naming.ts";

/** A leaf of an event pattern: literal values, or the comparison operators labgate uses. */
export type PatternValue =
  | string
  | number
  | boolean
  | null
  | { readonly prefix: string }
  | { readonly "anything-but": readonly string[] };
export interface EventPattern {
  readonly [field: string]: readonly PatternValue[] | EventPattern;
}

/** How often the schedule repairs drift that no event announced (a lost event, a hand-edited route). */
export const SCHEDULE_EXPRESSION = "rate(5 minutes)";

export const LIFECYCLE_DETAIL_TYPES = [
  "EC2 Instance-launch Lifecycle Action",
  "EC2 Instance-terminate Lifecycle Action",
] as const;
/** A runner entering or leaving service: routes move to it (or off it) without waiting for the schedule. */
export const GROUP_ACTIVITY_DETAIL_TYPES = [
  "EC2 Instance Launch Successful",
  "EC2 Instance Terminate Successful",
] as const;

/** EC2 states in which a runner stops (or starts again) being able to carry routes. */
export const WATCHED_INSTANCE_STATES = [
  "running",
  "stopping",
  "stopped",
  "shutting-down",
  "terminated",
] as const;

/** SSM command statuses that are not final: the reconciler only cares when a command has finished. */
export const UNFINISHED_COMMAND_STATUSES = ["Pending", "InProgress", "Cancelling"] as const;

export type PatternRuleKind = Exclude<RuleKind, "schedule">;

/** The event pattern of each event-driven rule of a lab. */
export const labEventPatterns = (lab: LabConfig): Readonly<Record<PatternRuleKind, EventPattern>> => ({
  // Lifecycle actions of the lab's group, and the group's launch/terminate results.
  autoscaling: {
    source: ["aws.autoscaling"],
    "detail-type": [...LIFECYCLE_DETAIL_TYPES, ...GROUP_ACTIVITY_DETAIL_TYPES],
    detail: { AutoScalingGroupName: [lab.runners.autoScalingGroupName] },
  },
  // EC2 state-change notifications carry only the instance id and state, not the group: this rule cannot be
  // narrowed to the lab, so every lab's function hears every instance and the handler drops foreign ones
  // after one cheap check (LabProvider.ownsInstance).
  "instance-state": {
    source: ["aws.ec2"],
    "detail-type": ["EC2 Instance State-change Notification"],
    detail: { state: [...WATCHED_INSTANCE_STATES] },
  },
  // Only the per-runner tunnel health alarms the reconciler manages; the lab alarms infra creates share
  // the lab's prefix but not `tunnel-`, so they do not trigger reconciles.
  "health-alarm": {
    source: ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    detail: { alarmName: [{ prefix: healthAlarmPrefix(lab.name) }] },
  },
  // A runner of the lab changed its tunnel report (its tunnel watch's verdict, on its own instance): the event
  // carries every tag of the instance, among them the group Auto Scaling tagged it with. EventBridge
  // delivers these on a best-effort basis: the health alarm stays the backstop.
  // https://docs.aws.amazon.com/tag-editor/latest/userguide/tag-monitor.html
  "tunnel-report": {
    source: ["aws.tag"],
    "detail-type": ["Tag Change on Resource"],
    detail: {
      service: ["ec2"],
      "resource-type": ["instance"],
      "changed-tag-keys": [TUNNEL_TAG],
      tags: { [ASG_TAG]: [lab.runners.autoScalingGroupName] },
    },
  },
  // Commands labgate sent for this lab: the first line of every command is the lab's marker. EventBridge
  // matches an array field when any element matches, so the prefix applies to each command line.
  "command-status": {
    source: ["aws.ssm"],
    "detail-type": ["EC2 Command Status-change Notification"],
    detail: {
      status: [{ "anything-but": [...UNFINISHED_COMMAND_STATUSES] }],
      parameters: { commands: [{ prefix: commandMarkerPrefix(lab.name) }] },
    },
  },
});
