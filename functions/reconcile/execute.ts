// The executor: carries out a plan's actions in waves. Independent actions run in parallel; an action
// runs once every action it waits on (`after`) is done, and is skipped when one of them failed or was deferred.
import type { Action } from "../core/actions.ts";
import type { ApplyOutcome } from "./ports.ts";

export type Result =
  | { readonly id: string; readonly outcome: "done" }
  | { readonly id: string; readonly outcome: "deferred"; readonly why: string }
  | { readonly id: string; readonly outcome: "failed"; readonly error: string }
  | { readonly id: string; readonly outcome: "skipped"; readonly why: string };

export const execute = async (
  actions: readonly Action[],
  apply: (action: Action) => Promise<ApplyOutcome>,
): Promise<Map<string, Result>> => {
  const results = new Map<string, Result>();
  const inPlan = new Set(actions.map((a) => a.id));
  const depsOf = (a: Action): string[] => a.after.filter((id) => inPlan.has(id));
  let pending = [...actions];
  while (pending.length > 0) {
    const ready: Action[] = [];
    for (const a of pending) {
      const unmet = depsOf(a).find((id) => results.has(id) && results.get(id)?.outcome !== "done");
      if (unmet !== undefined) {
        results.set(a.id, {
          id: a.id,
          outcome: "skipped",
          why: `it waits on ${unmet}, which did not succeed`,
        });
      } else if (depsOf(a).every((id) => results.get(id)?.outcome === "done")) {
        ready.push(a);
      }
    }
    pending = pending.filter((a) => !results.has(a.id) && !ready.includes(a));
    if (ready.length === 0) {
      for (const a of pending)
        results.set(a.id, { id: a.id, outcome: "skipped", why: "its dependencies form a cycle" });
      break;
    }
    const wave = await Promise.allSettled(ready.map((a) => apply(a)));
    wave.forEach((settled, i) => {
      const id = (ready[i] as Action).id;
      if (settled.status === "rejected")
        results.set(id, { id, outcome: "failed", error: errorText(settled.reason) });
      else if (settled.value.status === "deferred")
        results.set(id, { id, outcome: "deferred", why: settled.value.why });
      else results.set(id, { id, outcome: "done" });
    });
  }
  return results;
};

const errorText = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
