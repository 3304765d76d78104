import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CaseDecisionsSchema, caseSetDir, loadVerifierCases, verdictFor } from "./verifier-cases.ts";

// graders' own test cases, copied into test/fixtures/verifier-cases/shared (SOURCE.md there)
const cases = loadVerifierCases(caseSetDir("shared"));
const decisions = CaseDecisionsSchema.parse(
  JSON.parse(readFileSync(new URL("./case-decisions.json", import.meta.url), "utf8")),
).decisions;
const decisionById = new Map(decisions.map((d) => [d.id, d]));

describe("shared verifier cases", () => {
  it("loads every case file", () => {
    expect(cases.length).toBeGreaterThanOrEqual(231);
    expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length);
  });

  it("records each decision against a real case and its real label", () => {
    for (const d of decisions) {
      const c = cases.find((x) => x.id === d.id);
      expect(c, d.id).toBeDefined();
      expect(c?.expected, d.id).toBe(d.label);
      expect(d.verdict, d.id).not.toBe(d.label);
    }
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const expected = decisionById.get(c.id)?.verdict ?? c.expected;
    expect(verdictFor(c)).toBe(expected);
  });

  it("agrees with at least 99% of the labels a mathematician would give", () => {
    // math_expected is the case authors' own mathematical label where the upstream one is a protocol artefact
    const agreeing = cases.filter((c) => verdictFor(c) === (c.math_expected ?? c.expected)).length;
    expect(agreeing / cases.length).toBeGreaterThanOrEqual(0.99);
  });
});
