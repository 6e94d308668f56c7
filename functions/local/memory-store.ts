// The store port in memory, with the same conditional semantics as the DynamoDB store: the lab in a box
// keeps its labgate state here (saved with the lab), and the contract test holds both to the same rules.
import type { RequeueEpisode } from "../core/retry.ts";
import type { AlarmState, CommandRecord } from "../core/world.ts";
import {
  type LabStore,
  type Lease,
  StoreConflict,
  type StoredLab,
  type StoredRunner,
} from "../reconcile/store.ts";

export interface MemoryStoreSnapshot {
  readonly runners: Record<string, Record<string, StoredRunner>>;
  readonly leases: Record<string, Record<string, Lease>>;
  /** By lab (absent in labs saved before there were episodes). */
  readonly requeue?: Record<string, RequeueEpisode>;
}

export class MemoryStore implements LabStore {
  private readonly runners = new Map<string, Map<string, StoredRunner>>();
  private readonly leases = new Map<string, Map<string, Lease>>();
  private readonly requeue = new Map<string, RequeueEpisode>();

  static restore(snapshot: MemoryStoreSnapshot): MemoryStore {
    const store = new MemoryStore();
    for (const [lab, runners] of Object.entries(snapshot.runners))
      store.runners.set(lab, new Map(Object.entries(runners)));
    for (const [lab, leases] of Object.entries(snapshot.leases))
      store.leases.set(lab, new Map(Object.entries(leases)));
    for (const [lab, episode] of Object.entries(snapshot.requeue ?? {})) store.requeue.set(lab, episode);
    return store;
  }

  snapshot(): MemoryStoreSnapshot {
    const plain = <T>(m: Map<string, Map<string, T>>) =>
      Object.fromEntries([...m].map(([lab, items]) => [lab, Object.fromEntries(items)]));
    return structuredClone({
      runners: plain(this.runners),
      leases: plain(this.leases),
      requeue: Object.fromEntries(this.requeue),
    });
  }

  /** The credential a runner holds (synchronous, for the lab's own displays). */
  credentialOf(lab: string, instanceId: string): string | undefined {
    return [...this.leasesOf(lab)].find(([, lease]) => lease.holder === instanceId)?.[0];
  }

  private runnersOf(lab: string): Map<string, StoredRunner> {
    const m = this.runners.get(lab) ?? new Map<string, StoredRunner>();
    this.runners.set(lab, m);
    return m;
  }

  private leasesOf(lab: string): Map<string, Lease> {
    const m = this.leases.get(lab) ?? new Map<string, Lease>();
    this.leases.set(lab, m);
    return m;
  }

  private update(lab: string, instanceId: string, change: (r: StoredRunner) => StoredRunner): void {
    const runners = this.runnersOf(lab);
    runners.set(instanceId, change(runners.get(instanceId) ?? {}));
  }

  async read(lab: string): Promise<StoredLab> {
    return structuredClone({
      runners: new Map(this.runnersOf(lab)),
      leases: new Map(this.leasesOf(lab)),
      requeue: this.requeue.get(lab),
    });
  }

  async lease(lab: string, parameter: string, instanceId: string, now: number): Promise<void> {
    const lease = this.leasesOf(lab).get(parameter);
    const own = this.runnersOf(lab).get(instanceId)?.credential;
    if ((lease !== undefined && lease.holder !== instanceId) || (own !== undefined && own !== parameter)) {
      throw new StoreConflict(
        `lease of ${parameter} to ${instanceId} refused: ${lease && lease.holder !== instanceId ? `held by ${lease.holder}` : `it holds ${own}`}`,
      );
    }
    this.leasesOf(lab).set(parameter, lease ?? { holder: instanceId, since: now });
    this.update(lab, instanceId, (r) => ({ ...r, credential: parameter }));
  }

  async release(lab: string, parameter: string, instanceId: string): Promise<void> {
    if (this.leasesOf(lab).get(parameter)?.holder !== instanceId) return;
    this.leasesOf(lab).delete(parameter);
    this.update(lab, instanceId, ({ credential: _c, ...r }) => r);
  }

  async releaseOrphan(lab: string, parameter: string, holder: string): Promise<void> {
    if (this.leasesOf(lab).get(parameter)?.holder === holder) this.leasesOf(lab).delete(parameter);
  }

  async beginCommand(
    lab: string,
    instanceId: string,
    intent: Pick<CommandRecord, "kind" | "hash" | "sentAt">,
    expectedCommandId: string | undefined,
    credential: string | undefined,
  ): Promise<void> {
    const r = this.runnersOf(lab).get(instanceId) ?? {};
    const why =
      r.sending !== undefined
        ? "another command is being sent"
        : r.command?.commandId !== expectedCommandId
          ? `its last command is ${r.command?.commandId ?? "none"}, not ${expectedCommandId ?? "none"}`
          : credential !== undefined && r.credential !== credential
            ? `it does not hold ${credential}`
            : undefined;
    if (why !== undefined) throw new StoreConflict(`${intent.kind} on ${instanceId} refused: ${why}`);
    this.update(lab, instanceId, (x) => ({ ...x, sending: intent }));
  }

  async commandSent(lab: string, instanceId: string, record: CommandRecord): Promise<void> {
    const r = this.runnersOf(lab).get(instanceId);
    if (r?.sending?.sentAt !== record.sentAt)
      throw new StoreConflict(`no intent of ${instanceId} sent at ${record.sentAt}`);
    this.update(lab, instanceId, ({ sending: _s, ...x }) => ({ ...x, command: record }));
  }

  async abortCommand(lab: string, instanceId: string, sentAt: number): Promise<void> {
    if (this.runnersOf(lab).get(instanceId)?.sending?.sentAt !== sentAt) return;
    this.update(lab, instanceId, ({ sending: _s, ...x }) => x);
  }

  async recordCommand(
    lab: string,
    instanceId: string,
    record: CommandRecord,
    appliedSetup: string | null | undefined,
  ): Promise<void> {
    const r = this.runnersOf(lab).get(instanceId);
    const current =
      record.commandId === undefined
        ? r?.sending?.sentAt === record.sentAt
        : r?.command?.commandId === record.commandId && r.sending === undefined;
    if (!current)
      throw new StoreConflict(
        `the record of ${instanceId} moved on since ${record.commandId ?? "the intent"}`,
      );
    this.update(lab, instanceId, ({ sending: _s, appliedSetup: applied, ...x }) => ({
      ...x,
      command: record,
      ...(appliedSetup === null ? {} : { appliedSetup: appliedSetup ?? applied }),
    }));
  }

  async recordHealth(lab: string, instanceId: string, health: AlarmState, alarmedAt?: number): Promise<void> {
    this.update(lab, instanceId, (r) => ({
      ...r,
      health,
      ...(alarmedAt === undefined ? {} : { alarmedAt }),
    }));
  }

  async adopt(lab: string, instanceId: string, state: StoredRunner, now: number): Promise<void> {
    if (this.runnersOf(lab).has(instanceId)) throw new StoreConflict(`${instanceId} has a record already`);
    if (state.credential !== undefined && this.leasesOf(lab).has(state.credential))
      throw new StoreConflict(`${state.credential} is leased already`);
    if (state.credential !== undefined)
      this.leasesOf(lab).set(state.credential, { holder: instanceId, since: now });
    this.runnersOf(lab).set(instanceId, structuredClone(state));
  }

  async forget(lab: string, instanceId: string): Promise<void> {
    if (this.runnersOf(lab).get(instanceId)?.credential !== undefined)
      throw new StoreConflict(`${instanceId} still holds a lease`);
    this.runnersOf(lab).delete(instanceId);
  }

  async recordRequeue(lab: string, episode: RequeueEpisode | undefined): Promise<void> {
    if (episode === undefined) this.requeue.delete(lab);
    else this.requeue.set(lab, structuredClone(episode));
  }
}
