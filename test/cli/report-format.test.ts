// A report says "converged" only when nothing is wrong: a lab with findings and no possible action is not.
import { describe, expect, it } from "vitest";
import { formatReport } from "../../functions/cli/report-table.ts";

const report = {
  lab: "foo",
  dryRun: false,
  trigger: "schedule",
  actions: [],
  findings: [],
  errors: [],
};

describe("formatReport", () => {
  it("calls a lab with nothing to do and nothing wrong converged", () => {
    expect(formatReport(report)).toContain("no action: the lab is converged");
  });

  it("does not call an unreachable lab converged", () => {
    const text = formatReport({
      ...report,
      findings: [
        {
          kind: "lab-unreachable",
          message: "lab foo is unreachable: no runner can carry its traffic (2 live runner(s))",
        },
      ],
    });
    expect(text).not.toContain("converged");
    expect(text).toMatch(/no action can help now[\s\S]*finding lab-unreachable: lab foo is unreachable/);
  });

  it("does not call a lab whose reconcile failed converged", () => {
    expect(formatReport({ ...report, errors: ["observe: throttled"] })).not.toContain("converged");
  });
});
