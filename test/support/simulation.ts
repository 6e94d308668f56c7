// A long-horizon simulation of one lab in model time: labgate's real reconcile() and requeueAfter() over the
// in-memory model of AWS (functions/local/model.ts), driven by a discrete event queue that plays what AWS does
// around them:
// - the schedule (infra/patterns.ts, rate(5 minutes)); the lab's one pending requeue, fired within the minute
//   of its time as EventBridge Scheduler does (or, for comparison, main's rule: one delayed SQS message per
//   reconcile that asked for one, batched by the event source mapping within its 1 s window);
// - the events AWS sends, each an invocation: a launch (lifecycle action, then EC2 "running"), a hook completed
//   (launch successful; an abandoned launch's termination hook), a termination (EC2 "shutting-down" and
//   "terminated", terminate successful), a command finishing (command status), an alarm changing state;
// - Lambda with reserved concurrency 1 (one invocation at a time, the others wait in its queue) and its two
//   asynchronous retries of an invocation that failed, 1 and 2 minutes later;
// - Auto Scaling: a desired capacity per AZ, a replacement launched about a minute after an instance is lost,
//   abandoned or terminated, the hooks' timeouts and default results (infra/hooks.ts);
// - SSM: a command ends about a minute after it was sent (a setup fails where the scenario says so); an
//   instance whose agent never registers gets no command (the provider defers it, as on InvalidInstanceId);
// - a health alarm put by labgate leaves INSUFFICIENT_DATA 30 s later: OK if its runner's setup succeeded,
//   ALARM otherwise; after that it changes only when the scenario says so.
// The trace (invocations, actions, launches, route changes, the final world) is what properties check.
import type { Action } from "../../functions/core/actions.ts";
import type { LabConfig } from "../../functions/core/config.ts";
import type { Runner, World } from "../../functions/core/world.ts";
import { launchingRunner, memoryProvider } from "../../functions/local/model.ts";
import { labObservability } from "../../functions/reconcile/observability.ts";
import type { LabProvider } from "../../functions/reconcile/ports.ts";
import { reconcile } from "../../functions/reconcile/reconcile.ts";
import { type RequeueRequest, requeueAfter } from "../../functions/reconcile/requeue.ts";
import { LIFECYCLE_HOOKS } from "../../infra/hooks.ts";
import { SCHEDULE_EXPRESSION } from "../../infra/patterns.ts";

// Metrics stay unpublished (EMF on stdout in Lambda): a simulation reconciles thousands of times.
process.env.POWERTOOLS_METRICS_DISABLED = "true";

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

const SCHEDULE_MS = Number(/^rate\((\d+) minutes\)$/.exec(SCHEDULE_EXPRESSION)?.[1]) * MINUTE;
const hookOf = (transition: string) => {
  const hook = LIFECYCLE_HOOKS.find((h) => h.transition === transition);
  if (!hook) throw new Error(`no ${transition} hook in infra/hooks.ts`);
  return { timeoutMs: hook.heartbeatTimeout * 1000, result: hook.defaultResult };
};
const LAUNCH_HOOK = hookOf("autoscaling:EC2_INSTANCE_LAUNCHING");
const TERMINATE_HOOK = hookOf("autoscaling:EC2_INSTANCE_TERMINATING");
/** Lambda's asynchronous retries of a failed invocation: 1 minute, then 2 minutes after the failure. */
const LAMBDA_RETRY_DELAYS = [MINUTE, 2 * MINUTE] as const;

/** Who picks a runner for a scripted happening: an instance id, or the n-th live runner (of an AZ). */
export type Target = string | { readonly az?: string; readonly pick: number };

/** Something that happens to the lab at a time (ms after the start), outside labgate. */
export type Scripted = { readonly at: number } & (
  | { readonly kind: "kill"; readonly target: Target }
  | { readonly kind: "alarm"; readonly target: Target; readonly state: "OK" | "ALARM" }
  /** Auto Scaling's desired capacity of an AZ changes (scale-out launches, scale-in terminates the newest). */
  | { readonly kind: "capacity"; readonly az: string; readonly desired: number }
  /** A deployment changes the lab's configuration: reconciles from then on use it. */
  | { readonly kind: "config"; readonly lab: LabConfig }
  /** An extra invocation (AWS delivers an event twice, or late). */
  | { readonly kind: "event"; readonly trigger: string }
);

export interface Scenario {
  readonly lab: LabConfig;
  /** The lab at the start; its `now` is the start of model time. */
  readonly world: World;
  readonly hours: number;
  /** Desired capacity per AZ; by default the live runners per AZ at the start. */
  readonly capacity?: Readonly<Record<string, number>>;
  readonly happenings?: readonly Scripted[];
  /** Instances whose SSM agent never registers (ids, or a test on a runner: every launch in an AZ...). */
  readonly agentNeverRegisters?: readonly string[] | ((runner: Runner) => boolean);
  /** How long after its launch an instance's agent registers (default 0: at once). */
  readonly agentRegistersAfterMs?: number;
  /** Whether a setup fails on an instance (default: none does). */
  readonly setupFails?: (instanceId: string, hash: string) => boolean;
  /** Whether carrying out an action fails at a time (an AWS error): the invocation fails, Lambda retries it. */
  readonly actionFails?: (action: Action, at: number) => boolean;
  /** labgate's rule (the default), or main's before it: a delayed message from every reconcile that asks. */
  readonly requeue?: "scheduler" | "every-time";
  /** Seeds the timings (the scheduler's minute, Lambda durations, launch and command delays). */
  readonly seed?: number;
  /** Called with the world (and the lab as configured then) after everything that happens: invariants. */
  readonly inspect?: (world: World, lab: LabConfig) => void;
}

export type Source = "schedule" | "event" | "requeue" | "retry";

export interface Invocation {
  /** When it reached Lambda (ms since the epoch); `startedAt` is when it ran (concurrency 1). */
  readonly at: number;
  readonly startedAt: number;
  readonly source: Source;
  readonly trigger: string;
  /** The requeue attempt a requeue invocation carries. */
  readonly attempt?: number;
  readonly errors: readonly string[];
  /** What the requeue decision after it was (functions/core/retry.ts), or "every-time". */
  readonly requeue: string;
}

export interface Trace {
  readonly start: number;
  readonly hours: number;
  readonly invocations: readonly Invocation[];
  readonly actions: readonly {
    readonly at: number;
    readonly id: string;
    readonly kind: string;
    readonly outcome: string;
  }[];
  readonly launches: readonly { readonly at: number; readonly instanceId: string; readonly az: string }[];
  readonly routeChanges: readonly {
    readonly at: number;
    readonly routeTableId: string;
    readonly cidr: string;
    readonly from: string | undefined;
    readonly to: string | undefined;
  }[];
  /** The most requeues ever pending at once (schedules, or messages in the queue). */
  readonly maxPending: number;
  readonly world: World;
}

/** How many of `items` fall in each hour of the trace (the last, partial hour left out). */
export const perHour = (trace: Trace, items: readonly { readonly at: number }[]): number[] =>
  Array.from(
    { length: Math.floor(trace.hours) },
    (_, h) =>
      items.filter((i) => i.at >= trace.start + h * HOUR && i.at < trace.start + (h + 1) * HOUR).length,
  );

/** A small seeded generator (mulberry32), so that a scenario and its seed always play the same. */
const generator = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
};

/** The events, in time order (first in, first out at one time). */
class Agenda {
  private readonly items: { at: number; seq: number; run: () => Promise<void> | void }[] = [];
  private seq = 0;

  add(at: number, run: () => Promise<void> | void): void {
    const item = { at, seq: this.seq++, run };
    let i = this.items.length;
    while (i > 0 && (this.items[i - 1]?.at ?? 0) > at) i--;
    this.items.splice(i, 0, item);
  }

  next(before: number): { at: number; run: () => Promise<void> | void } | undefined {
    const first = this.items[0];
    if (!first || first.at >= before) return undefined;
    this.items.shift();
    return first;
  }
}

const isLive = (r: Runner): boolean => r.state !== "terminated";
const inService = (r: Runner): boolean =>
  isLive(r) && (r.lifecycle === "Pending:Wait" || r.lifecycle === "InService");

export const simulate = async (scenario: Scenario): Promise<Trace> => {
  const start = scenario.world.now;
  const end = start + scenario.hours * HOUR;
  const random = generator(scenario.seed ?? 1);
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const agenda = new Agenda();
  const { logger, metrics } = labObservability(scenario.lab.name, { quiet: true });
  const quiet = { info: () => {}, warn: () => {} };

  let now = start;
  let lab = scenario.lab;
  const launchedAt = new Map<string, number>();
  const never = scenario.agentNeverRegisters;
  const neverRegisters = (r: Runner): boolean =>
    typeof never === "function" ? never(r) : (never ?? []).includes(r.instanceId);
  const model = memoryProvider(scenario.world, {
    agentRegistered: (id) => {
      const r = model.world().runners.find((x) => x.instanceId === id);
      if (!r || neverRegisters(r)) return false;
      return now - (launchedAt.get(id) ?? Number.NEGATIVE_INFINITY) >= (scenario.agentRegistersAfterMs ?? 0);
    },
  });
  const provider: LabProvider = {
    observe: model.observe,
    ownsInstance: model.ownsInstance,
    apply: async (action, l) => {
      if (scenario.actionFails?.(action, now))
        throw Object.assign(new Error(`${action.id} failed (injected)`), { name: "InternalError" });
      return model.apply(action, l);
    },
  };
  const world = () => model.world();
  const runner = (id: string) => world().runners.find((r) => r.instanceId === id);
  const change = (id: string, patch: (r: Runner) => Partial<Runner>) =>
    model.change((w) => ({
      ...w,
      runners: w.runners.map((r) => (r.instanceId === id ? { ...r, ...patch(r) } : r)),
    }));

  const invocations: Invocation[] = [];
  const actions: { at: number; id: string; kind: string; outcome: string }[] = [];
  const launches: { at: number; instanceId: string; az: string }[] = [];
  const routeChanges: Trace["routeChanges"][number][] = [];
  let maxPending = 0;

  // ---- Lambda: one invocation at a time, two retries of a failed one ----------------------------------
  interface Request {
    readonly source: Source;
    readonly trigger: string;
    readonly attempt?: number;
    readonly retries: number;
  }
  let busyUntil = start;
  const invoke = (at: number, request: Request): void =>
    agenda.add(at, () => {
      const begin = Math.max(at, busyUntil);
      busyUntil = begin + between(1_000, 4_000);
      const finish = busyUntil;
      agenda.add(begin, () => run(at, begin, finish, request));
    });

  const run = async (arrived: number, begin: number, finish: number, request: Request): Promise<void> => {
    now = begin;
    model.change((w) => ({ ...w, now: begin }));
    const before = world();
    const {
      runnerIds: _ids,
      again,
      ...report
    } = await reconcile(lab, provider, {
      dryRun: false,
      trigger: request.trigger,
      logger,
      metrics,
    });
    const violation = report.errors.find((e) => e.includes("ModelViolation"));
    if (violation) throw new Error(`at +${(begin - start) / MINUTE} min, ${request.trigger}: ${violation}`);
    for (const a of report.actions)
      actions.push({ at: begin, id: String(a.id), kind: String(a.kind), outcome: a.outcome });
    const decision = await requeueAfterRun(again, request, begin);
    invocations.push({
      at: arrived,
      startedAt: begin,
      source: request.source,
      trigger: request.trigger,
      ...(request.attempt !== undefined && { attempt: request.attempt }),
      errors: report.errors,
      requeue: decision,
    });
    if (report.errors.length > 0 && request.retries < LAMBDA_RETRY_DELAYS.length) {
      const delay = LAMBDA_RETRY_DELAYS[request.retries] ?? MINUTE;
      invoke(finish + delay, { ...request, source: "retry", retries: request.retries + 1 });
    }
    awsReacts(before, world(), begin);
  };

  // ---- the requeue: labgate's rule through requeueAfter, or main's -------------------------------------
  let pending: { id: number } | undefined;
  let requeues = 0;
  let messages = 0;
  let batchUntil = Number.NEGATIVE_INFINITY;
  const requeueAfterRun = async (
    again: Parameters<typeof requeueAfter>[0],
    request: Request,
    t: number,
  ): Promise<string> => {
    if (scenario.requeue === "every-time") {
      if (again.reasons.length === 0) return "none";
      // One message 30 s later; the event source mapping batches what becomes visible within 1 s.
      const visible = t + 30_000;
      messages++;
      maxPending = Math.max(maxPending, messages);
      agenda.add(visible, () => {
        messages--;
        if (visible <= batchUntil) return;
        batchUntil = visible + 1_000;
        invoke(batchUntil, {
          source: "requeue",
          trigger: `requeue (${again.reasons.join("; ")})`,
          retries: 0,
        });
      });
      return "every-time";
    }
    const decision = await requeueAfter(again, {
      now: t,
      firedAttempt: request.source === "requeue" || request.source === "retry" ? request.attempt : undefined,
      log: quiet,
      requeuer: {
        record: async (episode) => model.change((w) => ({ ...w, requeue: episode })),
        schedule: async (r: RequeueRequest) => schedule(r),
      },
    });
    return decision.outcome;
  };

  /** One schedule of a fixed name: a new one replaces the pending one; it fires within its minute. */
  const schedule = (request: RequeueRequest): void => {
    const id = ++requeues;
    pending = { id };
    maxPending = Math.max(maxPending, 1);
    const minute = Math.floor(request.at / MINUTE) * MINUTE;
    const fireAt = Math.max(now + 1_000, minute + between(0, 59_000));
    agenda.add(fireAt, () => {
      if (pending?.id !== id) return;
      pending = undefined;
      invoke(fireAt, {
        source: "requeue",
        trigger: `requeue (${request.reason})`,
        attempt: request.attempt,
        retries: 0,
      });
    });
  };

  // ---- what AWS does and tells ---------------------------------------------------------------------------
  const event = (at: number, trigger: string) => invoke(at, { source: "event", trigger, retries: 0 });
  const waitingSince = new Map<string, number>();

  const enterWait = (id: string, state: "Pending:Wait" | "Terminating:Wait", t: number): void => {
    waitingSince.set(id, t);
    const hook = state === "Pending:Wait" ? LAUNCH_HOOK : TERMINATE_HOOK;
    agenda.add(t + hook.timeoutMs, () => {
      const r = runner(id);
      if (r?.lifecycle !== state || waitingSince.get(id) !== t) return;
      // The hook timed out: its default result.
      if (state === "Pending:Wait" && hook.result === "ABANDON") abandon(id, now);
      else if (state === "Pending:Wait") {
        change(id, () => ({ lifecycle: "InService" }));
        event(now + 2_000, `group activity launch of ${id} successful`);
      } else terminate(id, now);
    });
  };

  const abandon = (id: string, t: number): void => {
    change(id, () => ({ lifecycle: "Terminating:Wait" }));
    enterWait(id, "Terminating:Wait", t);
    event(t + 2_000, `lifecycle terminate ${id} (launch abandoned)`);
    keepCapacity(t);
  };

  /** EC2 terminates the instance: its routes become blackholes. */
  const terminate = (id: string, t: number): void => {
    model.change((w) => ({
      ...w,
      runners: w.runners.map((r) =>
        r.instanceId === id ? { ...r, state: "terminated", lifecycle: undefined, healthAlarm: undefined } : r,
      ),
      routeTables: Object.fromEntries(
        Object.entries(w.routeTables).map(([rt, table]) => [
          rt,
          {
            ...table,
            routes: Object.fromEntries(
              Object.entries(table.routes).map(([cidr, route]) => [
                cidr,
                route.instanceId === id ? { ...route, blackhole: true } : route,
              ]),
            ),
          },
        ]),
      ),
    }));
    terminated(id, t);
  };

  const terminated = (id: string, t: number): void => {
    waitingSince.delete(id);
    event(t + 1_000, `instance ${id} shutting-down`);
    event(t + 30_000, `instance ${id} terminated`);
    event(t + 31_000, `group activity terminate of ${id} successful`);
    keepCapacity(t);
  };

  // Auto Scaling keeps each AZ at its desired capacity, launching a replacement about a minute later.
  const desired = new Map<string, number>();
  for (const r of scenario.world.runners.filter(inService)) desired.set(r.az, (desired.get(r.az) ?? 0) + 1);
  for (const [az, n] of Object.entries(scenario.capacity ?? {})) desired.set(az, n);
  const launching = new Map<string, number>();
  let launched = 0;
  const keepCapacity = (t: number): void => {
    for (const [az, want] of desired) {
      const have = world().runners.filter((r) => r.az === az && inService(r)).length;
      for (let i = have + (launching.get(az) ?? 0); i < want; i++) {
        launching.set(az, (launching.get(az) ?? 0) + 1);
        agenda.add(t + between(45_000, 75_000), () => launch(az));
      }
    }
  };

  const launch = (az: string): void => {
    launching.set(az, (launching.get(az) ?? 1) - 1);
    const have = world().runners.filter((r) => r.az === az && inService(r)).length;
    if (have >= (desired.get(az) ?? 0)) return;
    const n = ++launched;
    const id = `i-0e${n.toString(16).padStart(15, "0")}`;
    const r = launchingRunner(id, az, `10.0.${200 + Math.floor(n / 250)}.${(n % 250) + 1}`);
    model.change((w) => ({ ...w, runners: [...w.runners, r] }));
    launchedAt.set(id, now);
    launches.push({ at: now, instanceId: id, az });
    enterWait(id, "Pending:Wait", now);
    event(now + 5_000, `lifecycle launch ${id}`);
    event(now + 20_000, `instance ${id} running`);
  };

  const scaleIn = (az: string, t: number): void => {
    const newest = world()
      .runners.filter((r) => r.az === az && r.lifecycle === "InService" && isLive(r))
      .sort((a, b) => (launchedAt.get(b.instanceId) ?? 0) - (launchedAt.get(a.instanceId) ?? 0))[0];
    if (!newest) return;
    change(newest.instanceId, () => ({ lifecycle: "Terminating:Wait" }));
    enterWait(newest.instanceId, "Terminating:Wait", t);
    event(t + 2_000, `lifecycle terminate ${newest.instanceId}`);
  };

  /** What AWS does after a reconcile changed the world: the events it sends, commands it runs, alarms. */
  const awsReacts = (before: World, after: World, t: number): void => {
    for (const r of after.runners) {
      const was = before.runners.find((x) => x.instanceId === r.instanceId);
      if (!was) continue;
      if (was.lifecycle === "Pending:Wait" && r.lifecycle === "InService") {
        waitingSince.delete(r.instanceId);
        event(t + 2_000, `group activity launch of ${r.instanceId} successful`);
      }
      if (was.lifecycle === "Pending:Wait" && r.lifecycle === "Terminating:Wait") {
        enterWait(r.instanceId, "Terminating:Wait", t);
        event(t + 2_000, `lifecycle terminate ${r.instanceId} (launch abandoned)`);
        keepCapacity(t);
      }
      if (isLive(was) && !isLive(r)) terminate(r.instanceId, t);
      const command = r.command;
      if (command?.commandId && command.status === "pending" && was.command?.commandId !== command.commandId)
        finishCommand(r.instanceId, command.commandId, command.kind, command.hash, t);
      if (was.healthAlarm === undefined && r.healthAlarm === "INSUFFICIENT_DATA")
        agenda.add(t + 30_000, () => firstEvaluation(r.instanceId));
    }
    for (const [id, table] of Object.entries(after.routeTables)) {
      for (const [cidr, route] of Object.entries(table.routes)) {
        const previous = before.routeTables[id]?.routes[cidr]?.instanceId;
        if (previous !== route.instanceId)
          routeChanges.push({ at: t, routeTableId: id, cidr, from: previous, to: route.instanceId });
      }
    }
  };

  const finishCommand = (id: string, commandId: string, kind: string, hash: string, t: number): void =>
    agenda.add(t + between(45_000, 75_000), () => {
      const r = runner(id);
      if (r?.command?.commandId !== commandId || r.state !== "running" || r.commandOutcome) return;
      const ok = kind !== "setup" || !scenario.setupFails?.(id, hash);
      change(id, () => ({ commandOutcome: ok ? "success" : "failed" }));
      event(now + 1_000, `command ${commandId} ${ok ? "Success" : "Failed"}`);
    });

  const firstEvaluation = (id: string): void => {
    const r = runner(id);
    if (r?.healthAlarm !== "INSUFFICIENT_DATA") return;
    const healthy = r.commandOutcome === "success" || r.appliedSetup !== undefined;
    setAlarm(id, healthy ? "OK" : "ALARM");
  };

  const setAlarm = (id: string, state: "OK" | "ALARM"): void => {
    const r = runner(id);
    if (r?.healthAlarm === undefined || r.healthAlarm === state) return;
    // CloudWatch dates every change of state (StateUpdatedTimestamp).
    change(id, () => ({ healthAlarm: state, healthSince: now }));
    event(now + 1_000, `alarm labgate-${lab.name}-tunnel-${id} ${state}`);
  };

  const resolve = (target: Target): Runner | undefined => {
    if (typeof target === "string") return runner(target);
    const live = world()
      .runners.filter((r) => isLive(r) && (target.az === undefined || r.az === target.az))
      .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    return live.length === 0 ? undefined : live[target.pick % live.length];
  };

  const happen = (h: Scripted): void => {
    switch (h.kind) {
      case "kill": {
        const r = resolve(h.target);
        if (r) terminate(r.instanceId, now);
        break;
      }
      case "alarm": {
        const r = resolve(h.target);
        if (r) setAlarm(r.instanceId, h.state);
        break;
      }
      case "capacity":
        desired.set(h.az, h.desired);
        for (let n = world().runners.filter((r) => r.az === h.az && inService(r)).length; n > h.desired; n--)
          scaleIn(h.az, now);
        keepCapacity(now);
        break;
      case "config":
        lab = h.lab;
        break;
      case "event":
        event(now, h.trigger);
        break;
    }
  };

  // ---- the run -------------------------------------------------------------------------------------------
  const phase = between(0, SCHEDULE_MS - 1);
  for (let t = start + phase; t < end; t += SCHEDULE_MS)
    invoke(t, { source: "schedule", trigger: "schedule", retries: 0 });
  for (const h of scenario.happenings ?? []) agenda.add(start + h.at, () => happen(h));
  for (const r of scenario.world.runners.filter((x) => x.lifecycle === "Pending:Wait"))
    enterWait(r.instanceId, "Pending:Wait", start);
  agenda.add(start, () => keepCapacity(start));

  for (let item = agenda.next(end); item; item = agenda.next(end)) {
    now = Math.max(now, item.at);
    model.change((w) => ({ ...w, now }));
    await item.run();
    scenario.inspect?.(world(), lab);
  }
  return {
    start,
    hours: scenario.hours,
    invocations,
    actions,
    launches,
    routeChanges,
    maxPending,
    world: world(),
  };
};
