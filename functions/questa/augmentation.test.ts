import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import {
  type AugmentationParams,
  Augmenter,
  augmentRecord,
  augmentRecords,
  type Tokenizer,
} from "./augmentation.ts";
import type { MathRecord } from "./record.ts";
import { codePointLength, codePointPrefix, solutionAfterThink } from "./solution-text.ts";

function record(problem: string, solution: string | undefined, answer: string): MathRecord {
  return {
    id: `t-${problem.length}`,
    source: "test",
    problem,
    answer,
    ...(solution === undefined ? {} : { solution }),
  };
}

function promptOf(rec: MathRecord, params: AugmentationParams): string | undefined {
  const outcome = augmentRecord(rec, params);
  return outcome.kind === "augmented" ? outcome.question.prompt : undefined;
}

// expected prompts worked by hand and cross-checked against the official add_prefix.py logic
describe("augmentation, byte for byte (official QuestA format)", () => {
  it("cuts the first half of the solution in characters after '## Hint.' with no separator", () => {
    // solution is 48 characters; int(48 * 0.5) = 24
    const rec = record("Compute 3+4.", "Add the numbers: 3+4=7. The answer is \\boxed{7}.", "7");
    expect(promptOf(rec, { ratio: 0.5 })).toBe("Compute 3+4.\n\n## Hint.Add the numbers: 3+4=7. ");
  });

  it("gives the un-hinted prompt (problem + blank line) when the prefix is under 10 characters", () => {
    // 16 characters; int(16 * 0.5) = 8 < 10
    const rec = record("Compute 3+4.", "3+4=7, \\boxed{7}", "7");
    const outcome = augmentRecord(rec, { ratio: 0.5 });
    expect(outcome.kind === "augmented" && outcome.question).toMatchObject({
      prompt: "Compute 3+4.\n\n",
      hinted: false,
      hintChars: 0,
    });
  });

  it("uses the text after the last </think>, unstripped", () => {
    // after </think>: "\nMove 2 across: x=5+2=7.\nSo x=\\boxed{7}." is 40 characters; int(40 * 0.25) = 10
    const rec = record(
      "Find x if x-2=5.",
      "<think>maybe 7? check: 7-2=5</think>\nMove 2 across: x=5+2=7.\nSo x=\\boxed{7}.",
      "7",
    );
    expect(promptOf(rec, { ratio: 0.25 })).toBe("Find x if x-2=5.\n\n## Hint.\nMove 2 ac");
  });

  it("counts characters as Unicode code points like Python, not UTF-16 units", () => {
    // 𝑥 is one code point but two UTF-16 units; Python gives this exact prompt
    const rec = record("Let 𝑥=3. Find 2𝑥.", "Double 𝑥: 2𝑥 = 2·3 = 6 ✓ 𝑥𝑥𝑥 so \\boxed{6}", "6");
    expect(promptOf(rec, { ratio: 0.5 })).toBe("Let 𝑥=3. Find 2𝑥.\n\n## Hint.Double 𝑥: 2𝑥 = 2·3 =");
  });

  it("takes 500 characters of a 1,000-character solution at p = 0.5", () => {
    const solution = `${"abcdefghij".repeat(99)}=\\boxed{7}`;
    expect(solution.length).toBe(1000);
    const outcome = augmentRecord(record("P", solution, "7"), { ratio: 0.5 });
    if (outcome.kind !== "augmented") throw new Error("dropped");
    expect(outcome.question.hintChars).toBe(500);
    expect(outcome.question.prompt).toBe(`P\n\n## Hint.${solution.slice(0, 500)}`);
  });

  it("truncates like Python int(): 100 * 0.57 = 56.99999999999999 gives 56", () => {
    const solution = `${"x".repeat(91)}\\boxed{1}`;
    expect(solution.length).toBe(100);
    const rec = record("P", solution, "1");
    const outcome = augmentRecord(rec, { ratio: 0.57 });
    expect(outcome.kind === "augmented" && outcome.question.hintChars).toBe(56);
  });
});

describe("augmentation rules", () => {
  it("drops and counts rows whose answer is not in the solution, or that have no solution", () => {
    const batch = augmentRecords(
      [
        record("a", "the value is \\boxed{12}", "12"),
        record("b", "no answer here at all", "9"),
        record("c", undefined, "3"),
        record("d", "<think>it is 4</think> so the result is 5", "4"),
      ],
      new Augmenter({ ratio: 0.5 }),
    );
    expect(batch.counts).toEqual({
      input: 4,
      augmented: 1,
      hinted: 1,
      unhinted: 0,
      dropped: { "answer-not-in-solution": 2, "missing-solution": 1 },
    });
    expect(batch.dropped.map((d) => d.reason)).toEqual([
      "answer-not-in-solution",
      "missing-solution",
      "answer-not-in-solution",
    ]);
  });

  it("keeps answerless-solution rows un-hinted when the answer check is off", () => {
    const outcome = augmentRecord(record("Q?", undefined, "3"), {
      ratio: 0.5,
      requireAnswerInSolution: false,
    });
    expect(outcome.kind === "augmented" && outcome.question.prompt).toBe("Q?\n\n");
  });

  it("gives un-hinted prompts at ratio 0", () => {
    const outcome = augmentRecord(record("Q?", "a long enough solution: \\boxed{3}", "3"), { ratio: 0 });
    expect(outcome.kind === "augmented" && outcome.question).toMatchObject({
      prompt: "Q?\n\n",
      hinted: false,
    });
  });

  it("renders custom templates literally (no $-patterns, placeholders in the problem stay text)", () => {
    const rec = record("Cost is $& {hint}", "Step one: pay $5 then \\boxed{5}", "5");
    const prompt = promptOf(rec, {
      ratio: 1,
      template: "<q>{problem}</q><h>{hint}</h>",
      unhintedTemplate: "<q>{problem}</q>",
    });
    expect(prompt).toBe("<q>Cost is $& {hint}</q><h>Step one: pay $5 then \\boxed{5}</h>");
  });

  it("measures lines: whole lines with their line breaks", () => {
    const solution = "line one here\nline two here\nline three\n\\boxed{4}";
    const rec = record("P", solution, "4");
    expect(promptOf(rec, { ratio: 0.5, unit: "lines" })).toBe("P\n\n## Hint.line one here\nline two here\n");
    expect(promptOf(rec, { ratio: 0.74, unit: "lines" })).toBe("P\n\n## Hint.line one here\nline two here\n");
    expect(promptOf(rec, { ratio: 1, unit: "lines" })).toBe(`P\n\n## Hint.${solution}`);
  });

  it("measures tokens with the tokenizer it is given", () => {
    // a word tokenizer: each space-separated word (with its leading space) is one token
    const vocabulary: string[] = [];
    const tokenizer: Tokenizer = {
      encode: (text) =>
        (text.match(/\s*\S+/g) ?? []).map((piece) => {
          const at = vocabulary.indexOf(piece);
          return at >= 0 ? at : vocabulary.push(piece) - 1;
        }),
      decode: (ids) => ids.map((id) => vocabulary[id]).join(""),
    };
    const rec = record("P", "alpha beta gamma delta \\boxed{8}", "8");
    const outcome = augmentRecord(rec, { ratio: 0.5, unit: "tokens", tokenizer });
    expect(outcome.kind === "augmented" && outcome.question).toMatchObject({
      prompt: "P\n\n## Hint.alpha beta",
      hintLength: 2,
      hintChars: 10,
    });
  });

  it("is deterministic: the same input gives the same bytes", () => {
    const rec = record("Compute.", "<think>x</think>Some solution text with \\boxed{42} at the end", "42");
    const a = JSON.stringify(augmentRecord(rec, { ratio: 0.5 }));
    const b = JSON.stringify(augmentRecord(structuredClone(rec), { ratio: 0.5 }));
    expect(a).toBe(b);
  });

  it("rejects bad parameters naming every field", () => {
    let error: unknown;
    try {
      new Augmenter({ ratio: 1.5, unit: "tokens", template: "{problem} only", minPrefixChars: -1 });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).issues.map((issue) => issue.path)).toEqual([
      "augmentation.ratio",
      "augmentation.unit",
      "augmentation.minPrefixChars",
      "augmentation.template",
    ]);
  });
});

describe("solution text helpers", () => {
  it("splits on the last </think> like Python's split()[-1]", () => {
    expect(solutionAfterThink("a</think>b</think>c")).toBe("c");
    expect(solutionAfterThink("plain")).toBe("plain");
    expect(solutionAfterThink("ends</think>")).toBe("");
  });

  it("counts and slices code points, lone surrogates counting as one", () => {
    expect(codePointLength("a😀b")).toBe(3);
    expect(codePointPrefix("a😀b", 2)).toBe("a😀");
    expect(codePointLength("x\uD800y")).toBe(3);
    expect(codePointPrefix("x\uD800y", 2)).toBe("x\uD800");
  });
});
