/**
 * The built-in synthetic task of the embedded default: short multi-step modular arithmetic with a
 * step-by-step reference solution and a `\boxed{}` answer, sized for a tiny character-level policy
 * (prompt plus solution well under 100 characters).
 *
 *     problem:  "7+5*3-8=?"            evaluated left to right, modulo 97
 *     solution: "7+5=12\n12*3=36\n36-8=28\n\boxed{28}"
 *
 * Easy problems are 2-4 steps, mostly + and - of 1-9, with a multiplication by 2-5 in 15% of steps;
 * hard ones are chains of four multiplications ("95*3*4*3*5=?"). What makes it a task for QuestA,
 * measured on warm-started policies:
 * - the hard skill is barely known: the easy data multiplies rarely, and after a warm start that
 *   stops at a probed skill accuracy of 0.25 (`model.warmStart.stopAtSkillAccuracy`) four products
 *   in a row are right about 3% of the time (hard pass@1 0.011-0.043 at temperature 0.6, mean
 *   0.027 over seeds 0-9; a guess: 1%), while a 50% hint leaves about two (from a stop at 0.35, which starts at hard
 *   pass@1 0.03-0.06, it lifted that to 27-34%, seeds 0-1);
 * - a hint leaves fewer of the same steps: what hinted training rewards (products) is what the
 *   un-hinted problem needs, and training raises the product accuracy the chain compounds;
 * - DESIGN.md §4's lessons: hard is not longer (learned positions do not extrapolate); the modulus
 *   is prime, so multiplying by 2-5 is a bijection and no chain collapses to 0; no chain starts at 0,
 *   so hard answers spread near-uniformly over 96 values and a guess pays ~1%.
 * After 1,500 warm-start steps the share of product lines sampled right is steep in how often easy
 * steps multiply (0.05-0.21 at 12% and 0.41-0.46 at 15%, seeds 0-1; 0.78 at 20%, seed 0) and in
 * the seed (0.05-0.46 over seeds 0-3 at 15%), hence the stop at a probed accuracy. The train/eval
 * split of a problem is a hash of its text, so the splits are disjoint by construction whatever the
 * seeds, counts and difficulties.
 *
 * Variants tried and dropped:
 * - modulus 31, multiplication by 2-9 in 2% of easy steps, hard problems of 2-4 steps with at least
 *   one multiplication (the task until Dec 2026): additions were right 99% of the time but products
 *   4.5% (a guess: 3.2%), so a hint helped only when it contained the product; hinted training
 *   rewarded copying it, and plain RL, which rewarded lucky guesses, learned products faster;
 * - hard problems of 3-4 multiplications mixed with additions, modulus 97: additions stayed at
 *   0.86-0.89 per line and capped hard pass@1 whatever the products;
 * - modulus 31, easy problems of 2-6 steps multiplying in a quarter of them, hard chains of 4-5
 *   multiplications, lr 2e-4 and no KL penalty: both arms forgot addition (easy pass@1 0.25 ->
 *   0.09-0.15).
 */
import { createHash } from "node:crypto";
import { createRng, type Rng } from "../model/rng.ts";
import { InputError, type InputIssue } from "../runtime/errors.ts";
import { DEFAULT_HINT_TEMPLATE, DEFAULT_UNHINTED_TEMPLATE } from "./augmentation.ts";
import { type MathRecord, recordId } from "./record.ts";

export interface SyntheticDifficultySpec {
  minSteps: number;
  maxSteps: number;
  /** operands of + and - are drawn from [1, operandMax] */
  operandMax: number;
  /** multipliers of the rare operation are drawn from [2, multiplierMax] */
  multiplierMax: number;
  /** chance that a step uses the rare operation (multiplication) */
  rareOpRate: number;
  /** problems have at least this many rare steps (hard: 1) */
  minRareSteps: number;
  /** a prime, so multiplication by a non-zero multiplier is a bijection and never collapses to 0 */
  modulus: number;
}

export const syntheticDifficulties = {
  easy: {
    minSteps: 2,
    maxSteps: 4,
    operandMax: 9,
    multiplierMax: 5,
    rareOpRate: 0.15,
    minRareSteps: 0,
    modulus: 97,
  },
  hard: {
    minSteps: 4,
    maxSteps: 4,
    operandMax: 9,
    multiplierMax: 5,
    rareOpRate: 1,
    minRareSteps: 4,
    modulus: 97,
  },
} as const satisfies Record<string, SyntheticDifficultySpec>;

/** `mixed`: each problem is easy or hard with equal chance; an object overrides the easy settings */
export type SyntheticDifficulty = "easy" | "hard" | "mixed" | Partial<SyntheticDifficultySpec>;
export type SyntheticSplit = "train" | "eval";

export interface SyntheticProblem extends MathRecord {
  solution: string;
  difficulty: "easy" | "hard" | "custom";
  steps: number;
  /** steps that use the rare operation */
  rareSteps: number;
}

export interface GenerateSyntheticOptions {
  seed: number;
  count: number;
  split: SyntheticSplit;
  difficulty: SyntheticDifficulty;
  /** fraction of the problem space assigned to eval; default 0.2 */
  evalFraction?: number;
  /** source name recorded in each problem; default `synthetic` */
  source?: string;
}

const DEFAULT_EVAL_FRACTION = 0.2;
const RARE_OP = "*";

/** Generates `count` distinct problems of one split; the same options give the same problems. */
export function generateSyntheticProblems(options: GenerateSyntheticOptions): SyntheticProblem[] {
  return generateSyntheticProblemsWith(createRng(options.seed), options);
}

/** As `generateSyntheticProblems`, drawing from the given random source. */
export function generateSyntheticProblemsWith(
  rng: Rng,
  options: Omit<GenerateSyntheticOptions, "seed">,
): SyntheticProblem[] {
  const evalFraction = options.evalFraction ?? DEFAULT_EVAL_FRACTION;
  const plans = difficultyPlans(options.difficulty);
  validate(
    options.count,
    evalFraction,
    plans.map((plan) => plan.spec),
  );
  const source = options.source ?? "synthetic";
  const problems: SyntheticProblem[] = [];
  const seen = new Set<string>();
  // the split takes ~evalFraction of draws and duplicates are rare; the cap catches tiny custom spaces
  const maxDraws = 1000 + options.count * 200;
  for (let draws = 0; problems.length < options.count; draws++) {
    if (draws >= maxDraws) {
      throw new InputError("synthetic_space_too_small", [
        {
          path: "synthetic.count",
          message: `found only ${problems.length} distinct ${options.split} problems in ${maxDraws} draws`,
          hint: "ask for fewer problems or widen the difficulty (more steps, larger operands)",
        },
      ]);
    }
    const plan = plans.length === 1 ? plans[0]! : plans[Math.floor(rng.next() * plans.length)]!;
    const drawn = drawProblem(rng, plan.spec);
    if (seen.has(drawn.problem) || syntheticSplitOf(drawn.problem, evalFraction) !== options.split) continue;
    seen.add(drawn.problem);
    problems.push({
      id: recordId(source, drawn.problem),
      source,
      problem: drawn.problem,
      answer: String(drawn.answer),
      solution: drawn.solution,
      difficulty: plan.label,
      steps: drawn.steps,
      rareSteps: drawn.rareSteps,
    });
  }
  return problems;
}

/** Which split a problem belongs to: a hash of its text against the eval fraction. */
export function syntheticSplitOf(problem: string, evalFraction = DEFAULT_EVAL_FRACTION): SyntheticSplit {
  const digest = createHash("sha256").update(`questa-synthetic-split\u0000${problem}`).digest();
  return digest.readUInt32BE(0) / 4294967296 < evalFraction ? "eval" : "train";
}

/**
 * Every character the task and the prompt templates can produce, sorted: what a character-level
 * tokenizer for the synthetic task needs (plus its own special tokens).
 */
export function syntheticVocabulary(
  templates: readonly string[] = [DEFAULT_HINT_TEMPLATE, DEFAULT_UNHINTED_TEMPLATE],
): string[] {
  const chars = new Set<string>("0123456789+-*=?\n\\boxed{}");
  for (const template of templates) {
    for (const char of template.replace(/\{(problem|hint)\}/g, "")) chars.add(char);
  }
  return [...chars].sort();
}

/**
 * Where a reference solution states the result of a rare step (multiplication): for each such line,
 * the character span of its result and the line's end (`"95*3=91\n"` -> the span of `91\n`; the
 * last line ends before `\boxed`). What a probe of the hard skill scores.
 */
export function rareStepResultSpans(solution: string): Array<{ start: number; end: number }> {
  const spans: Array<{ start: number; end: number }> = [];
  let lineStart = 0;
  for (const line of solution.split("\n")) {
    const equals = line.indexOf("=");
    if (equals > 0 && line.slice(0, equals).includes(RARE_OP)) {
      // the newline after the result is part of it: "9" is not "91"
      const end = Math.min(lineStart + line.length + 1, solution.length);
      spans.push({ start: lineStart + equals + 1, end });
    }
    lineStart += line.length + 1;
  }
  return spans;
}

interface Plan {
  label: SyntheticProblem["difficulty"];
  spec: SyntheticDifficultySpec;
}

function difficultyPlans(difficulty: SyntheticDifficulty): Plan[] {
  if (difficulty === "easy" || difficulty === "hard") {
    return [{ label: difficulty, spec: syntheticDifficulties[difficulty] }];
  }
  if (difficulty === "mixed") {
    return [
      { label: "easy", spec: syntheticDifficulties.easy },
      { label: "hard", spec: syntheticDifficulties.hard },
    ];
  }
  return [{ label: "custom", spec: { ...syntheticDifficulties.easy, ...difficulty } }];
}

function drawProblem(
  rng: Rng,
  spec: SyntheticDifficultySpec,
): { problem: string; solution: string; answer: number; steps: number; rareSteps: number } {
  const steps = randomInt(rng, spec.minSteps, spec.maxSteps);
  const rare: boolean[] = [];
  for (let i = 0; i < steps; i++) rare.push(rng.next() < spec.rareOpRate);
  let rareSteps = rare.filter(Boolean).length;
  while (rareSteps < spec.minRareSteps) {
    const at = randomInt(rng, 0, steps - 1);
    if (!rare[at]) {
      rare[at] = true;
      rareSteps++;
    }
  }
  let value = randomInt(rng, 1, spec.modulus - 1);
  let problem = String(value);
  const lines: string[] = [];
  for (let i = 0; i < steps; i++) {
    let op: string;
    let operand: number;
    let next: number;
    if (rare[i]) {
      op = RARE_OP;
      operand = randomInt(rng, 2, spec.multiplierMax);
      next = (value * operand) % spec.modulus;
    } else if (rng.next() < 0.5) {
      op = "+";
      operand = randomInt(rng, 1, spec.operandMax);
      next = (value + operand) % spec.modulus;
    } else {
      op = "-";
      operand = randomInt(rng, 1, spec.operandMax);
      next = (((value - operand) % spec.modulus) + spec.modulus) % spec.modulus;
    }
    problem += `${op}${operand}`;
    lines.push(`${value}${op}${operand}=${next}`);
    value = next;
  }
  lines.push(`\\boxed{${value}}`);
  return { problem: `${problem}=?`, solution: lines.join("\n"), answer: value, steps, rareSteps };
}

function randomInt(rng: Rng, min: number, max: number): number {
  return min + Math.floor(rng.next() * (max - min + 1));
}

function validate(count: number, evalFraction: number, specs: readonly SyntheticDifficultySpec[]): void {
  const issues: InputIssue[] = [];
  if (!Number.isInteger(count) || count < 0)
    issues.push({ path: "synthetic.count", message: `must be a whole number >= 0, got ${count}` });
  if (!(evalFraction > 0 && evalFraction < 1)) {
    issues.push({ path: "synthetic.evalFraction", message: `must be in (0, 1), got ${evalFraction}` });
  }
  for (const spec of specs) {
    const path = "synthetic.difficulty";
    if (
      !Number.isInteger(spec.minSteps) ||
      spec.minSteps < 1 ||
      !Number.isInteger(spec.maxSteps) ||
      spec.maxSteps < spec.minSteps
    ) {
      issues.push({
        path: `${path}.maxSteps`,
        message: `steps must satisfy 1 <= minSteps <= maxSteps, got ${spec.minSteps}..${spec.maxSteps}`,
      });
    }
    if (!Number.isInteger(spec.modulus) || spec.modulus < 3 || !isPrime(spec.modulus)) {
      issues.push({
        path: `${path}.modulus`,
        message: `must be a prime >= 3, got ${spec.modulus}`,
        hint: "e.g. 97",
      });
    }
    if (!Number.isInteger(spec.operandMax) || spec.operandMax < 1) {
      issues.push({
        path: `${path}.operandMax`,
        message: `must be a whole number >= 1, got ${spec.operandMax}`,
      });
    }
    if (
      !Number.isInteger(spec.multiplierMax) ||
      spec.multiplierMax < 2 ||
      spec.multiplierMax >= spec.modulus
    ) {
      issues.push({
        path: `${path}.multiplierMax`,
        message: `must be a whole number in [2, modulus - 1], got ${spec.multiplierMax}`,
      });
    }
    if (!(spec.rareOpRate >= 0 && spec.rareOpRate <= 1)) {
      issues.push({ path: `${path}.rareOpRate`, message: `must be in [0, 1], got ${spec.rareOpRate}` });
    }
    if (!Number.isInteger(spec.minRareSteps) || spec.minRareSteps < 0 || spec.minRareSteps > spec.minSteps) {
      issues.push({
        path: `${path}.minRareSteps`,
        message: `must be a whole number in [0, minSteps], got ${spec.minRareSteps}`,
      });
    }
  }
  if (issues.length > 0) throw new InputError("invalid_synthetic_task", issues);
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
