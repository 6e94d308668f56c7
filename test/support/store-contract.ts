// What every implementation of the store port must do: the DynamoDB store (against moto) and the in-memory
// store of the lab in a box pass the same cases, so the lab proves what AWS will do.
import { beforeEach, describe, expect, it } from "vitest";
import { type LabStore, StoreConflict } from "../../functions/reconcile/store.ts";

const LAB = "foo";
const K1 = "/labgate/foo/vpn/client-1";
const K2 = "/labgate/foo/vpn/client-2";
const R1 = "i-0f0000000000a0001";
const R2 = "i-0f0000000000b0001";
const T = 1_795_683_600_000;
const ID1 = "11111111-2222-4333-8444-555555555555";
const ID2 = "66666666-7777-4888-8999-aaaaaaaaaaaa";

export const storeContract = (name: string, fresh: () => Promise<LabStore>): void => {
  describe(`${name}: the store contract`, () => {
    let store: LabStore;
    beforeEach(async () => {
      store = await fresh();
    });

    const leases = async () => Object.fromEntries((await store.read(LAB)).leases);
    const runner = async (id: string) => (await store.read(LAB)).runners.get(id);

    it("leases a free key to a runner, and reads it back strongly consistent", async () => {
      await store.lease(LAB, K1, R1, T);
      expect(await leases()).toEqual({ [K1]: { holder: R1, since: T } });
      expect((await runner(R1))?.credential).toBe(K1);
    });

    it("refuses a key held by another runner, and a second key for a runner that holds one", async () => {
      await store.lease(LAB, K1, R1, T);
      await expect(store.lease(LAB, K1, R2, T)).rejects.toThrow(StoreConflict);
      await expect(store.lease(LAB, K2, R1, T)).rejects.toThrow(StoreConflict);
      expect(await leases()).toEqual({ [K1]: { holder: R1, since: T } });
    });

    it("gives one key to one runner only: a second reconcile leasing it to another runner is refused", async () => {
      // Sequential on purpose: moto's server does not serialise concurrent transactions as DynamoDB does
      // (DynamoDB rejects the loser with TransactionConflict or a failed condition); the conditions are
      // what decides, and they are what this checks.
      await store.lease(LAB, K1, R2, T);
      await expect(store.lease(LAB, K1, R1, T)).rejects.toThrow(StoreConflict);
      expect((await leases())[K1]?.holder).toBe(R2);
      expect((await runner(R1))?.credential).toBeUndefined();
    });

    it("takes a lease again by its holder as done, keeping when it was taken", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.lease(LAB, K1, R1, T + 1_000);
      expect(await leases()).toEqual({ [K1]: { holder: R1, since: T } });
    });

    it("releases a key only for its holder", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.release(LAB, K1, R2);
      expect((await leases())[K1]?.holder).toBe(R1);
      await store.release(LAB, K1, R1);
      expect(await leases()).toEqual({});
      expect((await runner(R1))?.credential).toBeUndefined();
      await store.lease(LAB, K1, R2, T);
      expect((await leases())[K1]?.holder).toBe(R2);
    });

    it("drops an orphaned lease only while its holder still holds it", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.releaseOrphan(LAB, K1, R2);
      expect((await leases())[K1]?.holder).toBe(R1);
      await store.releaseOrphan(LAB, K1, R1);
      expect(await leases()).toEqual({});
    });

    it("records a command's intent, then the command, refusing a second intent meanwhile", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.beginCommand(
        LAB,
        R1,
        { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T },
        undefined,
        K1,
      );
      expect((await runner(R1))?.sending).toEqual({ kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T });
      await expect(
        store.beginCommand(
          LAB,
          R1,
          { kind: "stop-vpn", hash: "bbbbbbbbbbbbbbbb", sentAt: T + 1 },
          undefined,
          undefined,
        ),
      ).rejects.toThrow(StoreConflict);
      const record = {
        kind: "setup",
        hash: "aaaaaaaaaaaaaaaa",
        commandId: ID1,
        status: "pending",
        sentAt: T,
      } as const;
      await store.commandSent(LAB, R1, record);
      const stored = await runner(R1);
      expect(stored?.sending).toBeUndefined();
      expect(stored?.command).toEqual(record);
    });

    it("refuses a command planned from a record that moved on, and a setup for a key the runner does not hold", async () => {
      await store.lease(LAB, K1, R1, T);
      await expect(
        store.beginCommand(LAB, R1, { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T }, ID1, K1),
      ).rejects.toThrow(StoreConflict);
      await expect(
        store.beginCommand(LAB, R1, { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T }, undefined, K2),
      ).rejects.toThrow(StoreConflict);
      expect((await runner(R1))?.sending).toBeUndefined();
    });

    it("drops an intent whose command could not be sent", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.beginCommand(
        LAB,
        R1,
        { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T },
        undefined,
        K1,
      );
      await store.abortCommand(LAB, R1, T);
      expect((await runner(R1))?.sending).toBeUndefined();
      await store.beginCommand(
        LAB,
        R1,
        { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T + 1 },
        undefined,
        K1,
      );
    });

    it("records how the latest command ended: a setup's success applies it, a stop's success clears it", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.beginCommand(
        LAB,
        R1,
        { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T },
        undefined,
        K1,
      );
      const setup = {
        kind: "setup",
        hash: "aaaaaaaaaaaaaaaa",
        commandId: ID1,
        status: "pending",
        sentAt: T,
      } as const;
      await store.commandSent(LAB, R1, setup);
      await store.recordCommand(LAB, R1, { ...setup, status: "success" }, setup.hash);
      expect(await runner(R1)).toMatchObject({ appliedSetup: setup.hash, command: { status: "success" } });

      await store.beginCommand(
        LAB,
        R1,
        { kind: "stop-vpn", hash: "bbbbbbbbbbbbbbbb", sentAt: T + 1 },
        ID1,
        undefined,
      );
      const stop = {
        kind: "stop-vpn",
        hash: "bbbbbbbbbbbbbbbb",
        commandId: ID2,
        status: "pending",
        sentAt: T + 1,
      } as const;
      await store.commandSent(LAB, R1, stop);
      // An outcome of the previous command is history now.
      await expect(store.recordCommand(LAB, R1, { ...setup, status: "failed" }, undefined)).rejects.toThrow(
        StoreConflict,
      );
      await store.recordCommand(LAB, R1, { ...stop, status: "success" }, null);
      const stored = await runner(R1);
      expect(stored?.appliedSetup).toBeUndefined();
      expect(stored?.command).toEqual({ ...stop, status: "success" });
    });

    it("records an intent that never became a command as failed", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.beginCommand(
        LAB,
        R1,
        { kind: "setup", hash: "aaaaaaaaaaaaaaaa", sentAt: T },
        undefined,
        K1,
      );
      const lost = {
        kind: "setup",
        hash: "aaaaaaaaaaaaaaaa",
        commandId: undefined,
        status: "failed",
        sentAt: T,
      } as const;
      await store.recordCommand(LAB, R1, lost, undefined);
      const stored = await runner(R1);
      expect(stored?.sending).toBeUndefined();
      expect(stored?.command).toMatchObject({ kind: "setup", status: "failed", sentAt: T });
    });

    it("adopts an older deployment's state once, with its key", async () => {
      const command = {
        kind: "setup",
        hash: "aaaaaaaaaaaaaaaa",
        commandId: ID1,
        status: "success",
        sentAt: T,
      } as const;
      await store.adopt(LAB, R1, { credential: K1, appliedSetup: "aaaaaaaaaaaaaaaa", command }, T);
      expect(await runner(R1)).toMatchObject({ credential: K1, appliedSetup: "aaaaaaaaaaaaaaaa", command });
      expect((await leases())[K1]?.holder).toBe(R1);
      await expect(store.adopt(LAB, R1, {}, T)).rejects.toThrow(StoreConflict);
      await expect(store.adopt(LAB, R2, { credential: K1 }, T)).rejects.toThrow(StoreConflict);
    });

    it("forgets a runner only once it holds no key, and records health", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.recordHealth(LAB, R1, "ALARM", T + 5);
      expect((await runner(R1))?.health).toBe("ALARM");
      await store.recordHealth(LAB, R1, "OK");
      // The last ALARM is kept once the alarm clears: it is what hysteresis measures from.
      expect(await runner(R1)).toMatchObject({ health: "OK", alarmedAt: T + 5 });
      await expect(store.forget(LAB, R1)).rejects.toThrow(StoreConflict);
      await store.release(LAB, K1, R1);
      await store.forget(LAB, R1);
      expect(await runner(R1)).toBeUndefined();
    });

    it("keeps the lab's requeue episode beside its runners and leases, replaces it, and clears it", async () => {
      await store.lease(LAB, K1, R1, T);
      expect((await store.read(LAB)).requeue).toBeUndefined();
      const episode = { reasons: [`push-setup:${R1} deferred`], attempts: 1, dueAt: T + 30_000 };
      await store.recordRequeue(LAB, episode);
      expect((await store.read(LAB)).requeue).toEqual(episode);
      // Spent: the schedule took over (no due time).
      await store.recordRequeue(LAB, { ...episode, attempts: 3, dueAt: undefined });
      const spent = (await store.read(LAB)).requeue;
      expect(spent).toMatchObject({ reasons: episode.reasons, attempts: 3 });
      expect(spent?.dueAt).toBeUndefined();
      // Another lab's episode is its own; the lab's runners and leases are untouched.
      expect((await store.read("bar")).requeue).toBeUndefined();
      expect(await leases()).toEqual({ [K1]: { holder: R1, since: T } });
      await store.recordRequeue(LAB, undefined);
      expect((await store.read(LAB)).requeue).toBeUndefined();
      expect((await runner(R1))?.credential).toBe(K1);
    });

    it("keeps each lab's items to itself", async () => {
      await store.lease(LAB, K1, R1, T);
      await store.lease("bar", K1, R2, T);
      expect(await leases()).toEqual({ [K1]: { holder: R1, since: T } });
      expect(Object.fromEntries((await store.read("bar")).leases)).toEqual({
        [K1]: { holder: R2, since: T },
      });
    });
  });
};
