import { describe, expect, it } from "vitest";
import { formatTable } from "../../functions/cli/report-table.ts";

describe("tables", () => {
  const rows = [
    ["KIND", "TARGET"],
    ["replace-route", "rtb-1"],
  ];

  it("align columns for a terminal", () => {
    expect(formatTable(rows)).toBe("KIND           TARGET\nreplace-route  rtb-1");
  });

  it("print Markdown with a header rule", () => {
    expect(formatTable(rows, "markdown")).toBe(
      "| KIND          | TARGET |\n|---------------|--------|\n| replace-route | rtb-1  |",
    );
  });
});
