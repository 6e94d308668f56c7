// A reconcile report as a person reads it: one line per action (action, target, outcome, reason), then the
// findings and errors. Used by the local dry run and by `npm run resync`.
import type { Report } from "../reconcile/reconcile.ts";

type Line = Report["actions"][number];

const target = (a: Line): string => {
  const to = a.target as { instanceId?: string } | undefined;
  if (typeof a.routeTableId === "string")
    return `${a.routeTableId} ${String(a.cidr)} -> ${to?.instanceId ?? "?"}`;
  if (Array.isArray(a.alarmNames)) return a.alarmNames.join(", ");
  return String(a.instanceId ?? "");
};

/**
 * Rows as an aligned table, the first row the header: plain (two spaces between columns) for a terminal, or
 * Markdown (a README can take the benchmarks' output as it is).
 */
export const formatTable = (
  rows: readonly (readonly string[])[],
  style: "plain" | "markdown" = "plain",
): string => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  const line = (r: readonly string[]): string =>
    style === "markdown"
      ? `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`
      : r
          .map((c, i) => c.padEnd(widths[i] ?? 0))
          .join("  ")
          .trimEnd();
  const [header, ...body] = rows;
  if (!header) return "";
  const rule = style === "markdown" ? [`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`] : [];
  return [line(header), ...rule, ...body.map(line)].join("\n");
};

export const formatReport = (report: Report): string => {
  const out: string[] = [];
  out.push(`lab ${report.lab}${report.dryRun ? " (dry run: nothing was changed)" : ""} — ${report.trigger}`);
  if (report.ignored) return [...out, `ignored: ${report.ignored}`].join("\n");
  if (report.actions.length === 0) {
    // Converged means nothing is left to do, not that nothing can be done: findings say what is wrong.
    const wrong = report.findings.length + report.errors.length;
    out.push(wrong === 0 ? "no action: the lab is converged" : "no action can help now; see below");
  } else {
    out.push(
      formatTable([
        ["ACTION", "TARGET", "OUTCOME", "REASON"],
        ...report.actions.map((a) => [String(a.kind), target(a), String(a.outcome), String(a.reason)]),
      ]),
    );
  }
  for (const f of report.findings) out.push(`finding ${f.kind}: ${f.message}`);
  for (const e of report.errors) out.push(`error: ${e}`);
  return out.join("\n");
};
