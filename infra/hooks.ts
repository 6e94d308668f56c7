// The lifecycle hooks labgate puts on each lab's existing runner group, as data (infra/runners.ts deploys
// them). Their defaults are the safe outcome when labgate does not answer in time: a runner that was never
// set up is abandoned (Auto Scaling terminates it and launches another), a leaving runner goes anyway.
import { LAUNCH_HOOK, TERMINATE_HOOK } from "../functions/core/names.ts";

export interface LifecycleHookSpec {
  readonly name: string;
  readonly transition: "autoscaling:EC2_INSTANCE_LAUNCHING" | "autoscaling:EC2_INSTANCE_TERMINATING";
  /** Seconds Auto Scaling waits for CompleteLifecycleAction (30 to 7200). */
  readonly heartbeatTimeout: number;
  readonly defaultResult: "CONTINUE" | "ABANDON";
}

export const LIFECYCLE_HOOKS: readonly LifecycleHookSpec[] = [
  {
    name: LAUNCH_HOOK,
    transition: "autoscaling:EC2_INSTANCE_LAUNCHING",
    // Boot and SSM agent registration (a few minutes), the setup command (its SSM execution timeout is
    // 15 minutes), the tunnel coming up and the first health report, with room for one retry by the schedule.
    heartbeatTimeout: 30 * 60,
    defaultResult: "ABANDON",
  },
  {
    name: TERMINATE_HOOK,
    transition: "autoscaling:EC2_INSTANCE_TERMINATING",
    // Moving the routes off the runner takes seconds and stopping its VPN a short command; ten minutes
    // leaves room for a reconcile queued behind others (reserved concurrency 1) and one scheduled retry.
    heartbeatTimeout: 10 * 60,
    defaultResult: "CONTINUE",
  },
];
