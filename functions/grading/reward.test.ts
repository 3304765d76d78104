import { describe, expect, it } from "vitest";
import { DEFAULT_REWARD_SCALE, gradeAnswer, gradeResponse } from "./reward.ts";

describe("gradeResponse", () => {
  it("scores a correct response with the full scale when the gold is a plain string", () => {
    // the official QuestA release passed the gold as a list and silently scored every sample 0
    const result = gradeResponse(
      "204",
      "Adding the cases gives 204 in total, so the answer is $\\boxed{204}$.",
    );
    expect(DEFAULT_REWARD_SCALE).toBe(5);
    expect(result).toEqual({
      reward: 5,
      equal: true,
      extracted: "204",
      reason: "correct",
      mode: "strict",
      extractedBy: "boxed",
    });
  });

  it("rewards only marked answers in strict mode (the default) and free-form ones in lenient mode", () => {
    const unmarked = "Adding the cases gives 204 in total.";
    expect(gradeResponse("204", unmarked)).toMatchObject({ reward: 0, reason: "no_answer", mode: "strict" });
    expect(gradeResponse("204", unmarked, { mode: "lenient" })).toMatchObject({
      reward: 5,
      reason: "correct",
      mode: "lenient",
      extracted: "204",
      extractedBy: "last_number",
    });
    expect(gradeResponse("204", "\\boxed{204}", { mode: "lenient" }).extractedBy).toBe("boxed");
  });

  it("reads a worked solution given as the gold by its boxed answer", () => {
    const gold = "Since $25<30<36$, the sum lies between $\\boxed{12\\text{ and }13}$.";
    expect(gradeResponse(gold, "So it lies between \\boxed{12} and \\boxed{13}.").equal).toBe(true);
  });

  it("grades a bare answer without extraction", () => {
    expect(gradeAnswer("\\frac12", "0.5")).toMatchObject({ equal: true, reward: 5, extracted: "0.5" });
    expect(gradeAnswer("7", "8", { mode: "lenient", scale: 1 })).toMatchObject({
      equal: false,
      reward: 0,
      reason: "mismatch",
      mode: "lenient",
    });
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
  // free-form reading (lenient): scans stay linear on repetitive text
  ["many inline spans", "1", `${"$x$ and ".repeat(60_000)}done`],
  ["unclosed display brackets", "1", `${"\\(".repeat(200_000)}2`],
  ["many answer words", "1", `${"answer ".repeat(100_000)}2`],
  ["long comma run", "1", `${"1,".repeat(300_000)}2`],
  ["long spaced digits", "1", `${"9 ".repeat(300_000)}9`],
  ["many hash markers", "1", `${"#### x\n".repeat(100_000)}2`],
  ["nested inequality chain", "x<1", `$${"x<".repeat(1000)}1$`],
  ["matrix products", "1", `$${"\\begin{pmatrix}9&9\\\\9&9\\end{pmatrix}".repeat(8)}$`],
];

describe("gradeResponse on adversarial input", () => {
  // a generous hang guard only; no timing assertions
  it.each(ADVERSARIAL)("%s returns not-equal with a reason", { timeout: 20_000 }, (_name, gold, response) => {
    for (const mode of ["strict", "lenient"] as const) {
      const result = gradeResponse(gold, response, { mode });
      expect(result.equal, mode).toBe(false);
      expect(result.reward).toBe(0);
      expect(result.mode).toBe(mode);
      expect(["no_answer", "mismatch", "timeout", "parse_error"]).toContain(result.reason);
    }
  });
});
