import { describe, expect, it } from "vitest";
import { gradeResponse } from "../grading/index.ts";
import { InputError } from "../runtime/errors.ts";
import { Augmenter } from "./augmentation.ts";
import {
  generateSyntheticProblems,
  rareStepResultSpans,
  type SyntheticProblem,
  syntheticDifficulties,
  syntheticSplitOf,
  syntheticVocabulary,
} from "./synthetic-task.ts";

const MODULUS: number = syntheticDifficulties.hard.modulus;

/** evaluates "17+5*3-8=?" left to right modulo the task's prime, independently of the generator */
function evaluate(problem: string, modulus = MODULUS): number {
  const tokens = problem.replace(/=\?$/, "").match(/\d+|[+*-]/g) ?? [];
  let value = Number(tokens[0]);
  for (let i = 1; i < tokens.length; i += 2) {
    const operand = Number(tokens[i + 1]);
    if (tokens[i] === "+") value = (value + operand) % modulus;
    else if (tokens[i] === "-") value = (((value - operand) % modulus) + modulus) % modulus;
    else value = (value * operand) % modulus;
  }
  return value;
}

const hard = generateSyntheticProblems({ seed: 7, count: 3000, split: "train", difficulty: "hard" });
const easy = generateSyntheticProblems({ seed: 7, count: 3000, split: "train", difficulty: "easy" });

describe("synthetic task", () => {
  it("is reproducible by seed and differs across seeds", () => {
    const again = generateSyntheticProblems({ seed: 7, count: 3000, split: "train", difficulty: "hard" });
    expect(again).toEqual(hard);
    const other = generateSyntheticProblems({ seed: 8, count: 50, split: "train", difficulty: "hard" });
    expect(other.map((p) => p.problem)).not.toEqual(hard.slice(0, 50).map((p) => p.problem));
  });

  it("keeps train and eval disjoint by construction, whatever the seed and difficulty", () => {
    const evalSet = [
      ...generateSyntheticProblems({ seed: 1, count: 500, split: "eval", difficulty: "hard" }),
      ...generateSyntheticProblems({ seed: 2, count: 500, split: "eval", difficulty: "easy" }),
    ];
    const trainProblems = new Set([...hard, ...easy].map((p) => p.problem));
    expect(evalSet.filter((p) => trainProblems.has(p.problem))).toEqual([]);
    expect(evalSet.every((p) => syntheticSplitOf(p.problem) === "eval")).toBe(true);
    expect(hard.every((p) => syntheticSplitOf(p.problem) === "train")).toBe(true);
    expect(new Set(hard.map((p) => p.problem)).size).toBe(hard.length);
  });

  it("writes correct step-by-step solutions with a boxed answer the grader accepts", () => {
    const sample = [...hard.slice(0, 300), ...easy.slice(0, 300)];
    for (const problem of sample) {
      expect(problem.answer).toBe(String(evaluate(problem.problem)));
      const lines = problem.solution.split("\n");
      expect(lines).toHaveLength(problem.steps + 1);
      expect(lines.at(-1)).toBe(`\\boxed{${problem.answer}}`);
      expect(gradeResponse(problem.answer, problem.solution).equal).toBe(true);
      expect(gradeResponse(problem.answer, `\\boxed{${(Number(problem.answer) + 1) % MODULUS}}`).equal).toBe(
        false,
      );
    }
  });

  it("makes hard problems chains of the rare operation inside the easy length range", () => {
    const rate = (set: SyntheticProblem[]) =>
      set.reduce((n, p) => n + p.rareSteps, 0) / set.reduce((n, p) => n + p.steps, 0);
    // easy data multiplies in ~15% of steps: the warm start learns products only partly
    expect(rate(easy)).toBeGreaterThan(0.12);
    expect(rate(easy)).toBeLessThan(0.18);
    expect(hard.every((p) => p.rareSteps === p.steps && p.steps === 4)).toBe(true);
    expect(hard.every((p) => /^\d+(\*[2-5]){4}=\?$/.test(p.problem))).toBe(true);
    const steps = easy.map((p) => p.steps);
    expect(Math.min(...steps)).toBe(2);
    expect(Math.max(...steps)).toBe(4);
  });

  it("locates each product's result in a solution, newline included, and nothing else", () => {
    const solution = "95*3=91\n91+4=95\n95*3=91\n\\boxed{91}";
    const spans = rareStepResultSpans(solution);
    expect(spans.map(({ start, end }) => solution.slice(start, end))).toEqual(["91\n", "91\n"]);
    expect(spans[1]?.start).toBe(21);
    expect(rareStepResultSpans("7+5=12\n12-8=4\n\\boxed{4}")).toEqual([]);
  });

  it("never starts a chain at 0 and spreads answers near-uniformly over the residues", () => {
    expect(hard.every((p) => !p.problem.startsWith("0"))).toBe(true);
    const counts = new Array<number>(MODULUS).fill(0);
    for (const p of hard) counts[Number(p.answer)]!++;
    // multiplication by 2-5 is a bijection modulo a prime: a guess is right 1/MODULUS of the time
    expect(counts[0]).toBe(0);
    counts.shift();
    const expected = hard.length / (MODULUS - 1);
    expect(Math.min(...counts)).toBeGreaterThan(expected * 0.4);
    expect(Math.max(...counts)).toBeLessThan(expected * 1.6);
  });

  it("stays short for a tiny character-level policy, and its vocabulary covers every prompt", () => {
    const augmenter = new Augmenter({ ratio: 0.5, minPrefixChars: 3 });
    const used = new Set<string>();
    let longest = 0;
    for (const problem of [...hard, ...easy]) {
      const outcome = augmenter.augment(problem);
      if (outcome.kind !== "augmented") throw new Error(`dropped ${problem.problem}`);
      const text = outcome.question.prompt + problem.solution;
      longest = Math.max(longest, text.length);
      for (const char of text) used.add(char);
    }
    expect(longest).toBeLessThanOrEqual(100);
    const vocabulary = syntheticVocabulary();
    expect([...used].filter((char) => !vocabulary.includes(char))).toEqual([]);
  });

  it("mixes difficulties and accepts custom settings", () => {
    const mixed = generateSyntheticProblems({ seed: 3, count: 200, split: "train", difficulty: "mixed" });
    expect(new Set(mixed.map((p) => p.difficulty))).toEqual(new Set(["easy", "hard"]));
    const custom = generateSyntheticProblems({
      seed: 3,
      count: 20,
      split: "eval",
      difficulty: { minSteps: 3, maxSteps: 3, rareOpRate: 0, modulus: 11, operandMax: 5, multiplierMax: 3 },
    });
    expect(custom.every((p) => p.steps === 3 && p.difficulty === "custom" && Number(p.answer) < 11)).toBe(
      true,
    );
    expect(custom.every((p) => p.answer === String(evaluate(p.problem, 11)))).toBe(true);
    expect(() =>
      generateSyntheticProblems({ seed: 0, count: 1, split: "train", difficulty: { modulus: 10 } }),
    ).toThrow(InputError);
    expect(() =>
      generateSyntheticProblems({
        seed: 0,
        count: 10,
        split: "eval",
        difficulty: { minSteps: 1, maxSteps: 1, modulus: 3, operandMax: 1, multiplierMax: 2 },
      }),
    ).toThrow(/distinct eval problems/);
  });
});
