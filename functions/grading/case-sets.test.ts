/**
 * math-verify's own test suite and the free-form response set, graded in math-verify's generic
 * protocol (both the gold and the whole prediction go through extraction, one configuration for
 * every case). Lenient mode must agree with each label or with a recorded decision; strict mode
 * must never call a case equal that lenient calls different (it reads a subset of answers).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CaseDecisionsSchema, caseSetDir, loadVerifierCases, protocolVerdict } from "./verifier-cases.ts";

const decisions = CaseDecisionsSchema.parse(
  JSON.parse(readFileSync(new URL("./math-verify-decisions.json", import.meta.url), "utf8")),
).decisions;
const decisionById = new Map(decisions.map((d) => [d.id, d]));

describe.each([
  ["math-verify", 269, 0.98],
  ["responses", 60, 0.98],
] as const)("%s cases", (set, atLeast, agreement) => {
  const cases = loadVerifierCases(caseSetDir(set));

  it("loads every case, each id once", () => {
    expect(cases.length).toBeGreaterThanOrEqual(atLeast);
    expect(new Set(cases.map((c) => c.id)).size).toBe(cases.length);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s (lenient)", (_id, c) => {
    expect(protocolVerdict(c, "lenient")).toBe(decisionById.get(c.id)?.verdict ?? c.expected);
  });

  it(`agrees with at least ${agreement * 100}% of the labels in lenient mode`, () => {
    const agreeing = cases.filter((c) => protocolVerdict(c, "lenient") === c.expected).length;
    expect(agreeing / cases.length).toBeGreaterThanOrEqual(agreement);
  });

  it("strict mode accepts no case that lenient mode rejects", () => {
    const extra = cases.filter(
      (c) => c.gold !== null && protocolVerdict(c, "strict") && !protocolVerdict(c, "lenient"),
    );
    expect(extra.map((c) => c.id)).toEqual([]);
  });
});

describe("math-verify decisions", () => {
  it("name real cases, their real labels, and differ from them", () => {
    const cases = new Map(loadVerifierCases(caseSetDir("math-verify")).map((c) => [c.id, c]));
    for (const d of decisions) {
      expect(cases.get(d.id)?.expected, d.id).toBe(d.label);
      expect(d.verdict, d.id).not.toBe(d.label);
    }
  });
});
