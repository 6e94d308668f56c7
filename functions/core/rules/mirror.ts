// labgate's tags on its runners mirror the store for people (the console, `aws ec2 describe-instances`).
// The adapters update them with every store write; this repairs whatever drifted (a failed tag write, a hand
// edit) on runners this plan does not write anyway. Tags are never read back as state.
import { formatCommandTag } from "../command-tag.ts";
import { COMMAND_TAG, CREDENTIAL_TAG, SETUP_TAG } from "../names.ts";
import type { Planning } from "./planning.ts";

export const repairMirrors = (p: Planning, written: ReadonlySet<string>): void => {
  if (!p.known("store")) return;
  for (const r of p.live) {
    if (written.has(r.instanceId)) continue;
    const want: Readonly<Record<string, string | undefined>> = {
      [CREDENTIAL_TAG]: r.credential,
      [SETUP_TAG]: r.appliedSetup,
      [COMMAND_TAG]: r.command === undefined ? undefined : formatCommandTag(r.command),
    };
    const have: Readonly<Record<string, string | undefined>> = {
      [CREDENTIAL_TAG]: r.mirror.credential,
      [SETUP_TAG]: r.mirror.appliedSetup,
      [COMMAND_TAG]: r.mirror.command,
    };
    const tags: Record<string, string | null> = {};
    for (const [key, value] of Object.entries(want)) {
      if (value !== have[key]) tags[key] = value ?? null;
    }
    if (Object.keys(tags).length === 0) continue;
    p.add({
      kind: "mirror-tags",
      id: `mirror-tags:${r.instanceId}`,
      after: [],
      instanceId: r.instanceId,
      tags,
      reason: `labgate's tags on ${r.instanceId} differ from its store (${Object.keys(tags).join(", ")}): rewritten`,
    });
  }
};
