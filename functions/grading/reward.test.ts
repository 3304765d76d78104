import { describe, expect, it } from "vitest";
import { DEFAULT_REWARD_SCALE, gradeResponse } from "./reward.ts";

describe("gradeResponse", () => {
  it("scores a correct response with the full scale when the gold is a plain string", () => {
    // the official QuestA release passed the gold as a list and silently scored every sample 0
    const result = gradeResponse(
      "204",
      "Adding the cases gives 204 in total, so the answer is $\\boxed{204}$.",
    );
    expect(DEFAULT_REWARD_SCALE).toBe(5);
    expect(result).toEqual({ reward: 5, equal: true, extracted: "204", reason: "correct" });
  });

  it("refuses a non-string gold loudly instead of scoring 0 as a mismatch", () => {
    const listGold = ["204"] as unknown as string;
    expect(gradeResponse(listGold, "\\boxed{204}")).toMatchObject({ reward: 0, reason: "parse_error" });
  });

  it("uses the given scale", () => {
    expect(gradeResponse("1/2", "The answer is 0.5", { scale: 1 }).reward).toBe(1);
  });

  it("gives each failure its reason", () => {
    expect(gradeResponse("7", "I could not finish.")).toMatchObject({
      reward: 0,
      reason: "no_answer",
      extracted: null,
    });
    expect(gradeResponse("7", "\\boxed{8}")).toMatchObject({ reward: 0, reason: "mismatch", extracted: "8" });
    expect(gradeResponse("7", "\\boxed{}")).toMatchObject({ reward: 0, reason: "no_answer" });
  });

  it("grades the synthetic arithmetic task's boxed integers", () => {
    for (let n = 0; n < 97; n++) {
      const response = `step 1: ${n} + 0 = ${n}\nfinal: \\boxed{${n}}`;
      expect(gradeResponse(String(n), response).reward).toBe(5);
      expect(gradeResponse(String((n + 1) % 97), response).reward).toBe(0);
    }
  });

  it("accepts either answer order for a two-answer problem", () => {
    const gold = "\\frac{-1+\\sqrt{17}}{2}, \\frac{-1-\\sqrt{17}}{2}";
    const response = "Both roots work: $\\boxed{\\frac{-1-\\sqrt{17}}{2}, \\frac{-1+\\sqrt{17}}{2}}$";
    expect(gradeResponse(gold, response).equal).toBe(true);
  });
});

const ADVERSARIAL: ReadonlyArray<readonly [string, string, string]> = [
  ["deep parentheses", "1", `\\boxed{${"(".repeat(50_000)}1${")".repeat(50_000)}}`],
  ["deep braces", "1", `\\boxed{${"{".repeat(100_000)}1${"}".repeat(100_000)}}`],
  ["deep fractions", "1", `\\boxed{${"\\frac{1}{".repeat(3000)}1${"}".repeat(3000)}}`],
  ["power tower", "1", "\\boxed{10^{10^{10}}}"],
  ["taller tower", "10^{10^{10}}", "\\boxed{10^{10^{10^{10}}}}"],
  ["symbolic tower", "x", "\\boxed{x^{10^{10^{10}}}}"],
  ["huge factorial", "1", "\\boxed{(10^{10})!}"],
  ["factorial", "1", "\\boxed{100000!}"],
  ["huge power", "1", "\\boxed{99999999^{99999999}}"],
  ["huge binomial", "1", "\\boxed{\\binom{10^{9}}{5\\cdot 10^{8}}}"],
  ["long integer", "1", `\\boxed{${"9".repeat(3900)}}`],
  ["megabyte of text", "1", "a".repeat(1_000_000)],
  ["megabyte of unclosed boxes", "1", "\\boxed{".repeat(100_000)],
  ["megabyte answer", "1", `The answer is ${"1+".repeat(400_000)}1`],
  ["megabyte of dollars", "1", "$".repeat(999_999)],
  ["megabyte of dots", "1", `${".".repeat(999_990)}a`],
  ["long unit-like words", "1", `\\boxed{1 ${"a".repeat(3000)}}`],
  ["many list items", "1", `\\boxed{${"1,".repeat(1500)}1}`],
  ["long sum", "1", `\\boxed{${"x+".repeat(1900)}1}`],
  ["relation chain", "1", `\\boxed{${"1=".repeat(1000)}1}`],
  ["wide matrix", "1", `\\boxed{\\begin{pmatrix}${"1&".repeat(1000)}1\\end{pmatrix}}`],
  ["many plus-minus", "1", `\\boxed{${"1\\pm ".repeat(500)}1}`],
  ["huge gold", "9".repeat(5000), "\\boxed{1}"],
  ["over-long response", "1", `\\boxed{1}${" ".repeat(1_000_001)}`],
];

describe("gradeResponse on adversarial input", () => {
  // a generous hang guard only; no timing assertions
  it.each(ADVERSARIAL)("%s returns not-equal with a reason", { timeout: 10_000 }, (_name, gold, response) => {
    const result = gradeResponse(gold, response);
    expect(result.equal).toBe(false);
    expect(result.reward).toBe(0);
    expect(["no_answer", "mismatch", "timeout", "parse_error"]).toContain(result.reason);
  });
});
