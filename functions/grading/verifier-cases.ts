import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import type { GradingMode } from "../contracts/grading-mode.ts";
import { answersEqual } from "./equivalence.ts";
import { extractAnswer, extractBoxed, extractFinalAnswer } from "./extract.ts";
import { gradeResponse } from "./reward.ts";

/**
 * One labelled grader case (test/fixtures/verifier-cases, SOURCE.md there): graders' own test
 * cases (`equivalence`, `extraction`), math-verify's test suite (`math_verify`) and free-form
 * responses (`response`).
 */
export const VerifierCaseSchema = z.object({
  id: z.string(),
  gold: z.string().nullable(),
  pred: z.string().nullable(),
  expected: z.boolean(),
  kind: z.enum(["equivalence", "extraction", "math_verify", "response"]),
  config: z.object({ call: z.string() }).passthrough().optional(),
  math_expected: z.boolean().optional(),
});
export type VerifierCase = z.infer<typeof VerifierCaseSchema>;

/** the labelled case sets checked in under test/fixtures/verifier-cases */
export const CaseSets = ["shared", "math-verify", "responses"] as const;
export type CaseSet = (typeof CaseSets)[number];

/** the folder of one case set, in this repository */
export function caseSetDir(set: CaseSet): string {
  return fileURLToPath(new URL(`../../test/fixtures/verifier-cases/${set}`, import.meta.url));
}

/**
 * A verdict in math-verify's own protocol, the one every grader is compared in: both the gold and
 * the whole prediction go through extraction, with one configuration for every case. A null gold
 * asks that nothing be extracted. Python's str(None) is "None", as upstream passed it.
 */
export function protocolVerdict(c: VerifierCase, mode: GradingMode): boolean {
  const [gold, pred] = protocolPair(c);
  if (gold === null) return extractFinalAnswer(pred, { mode }) === null;
  return gradeResponse(gold, pred, { mode }).equal;
}

/** the (gold, prediction) a grader sees; a null gold only for extraction cases that expect nothing */
export function protocolPair(c: VerifierCase): [string | null, string] {
  const pred = c.pred ?? "None";
  if (c.gold === null) return [c.kind === "extraction" ? null : "None", pred];
  return [c.gold, pred];
}

export const CaseDecisionsSchema = z.object({
  description: z.string(),
  decisions: z.array(
    z.object({ id: z.string(), label: z.boolean(), verdict: z.boolean(), reason: z.string().min(20) }),
  ),
});
export type CaseDecisions = z.infer<typeof CaseDecisionsSchema>;

/** reads every *.jsonl file of a case folder, validating each line */
export function loadVerifierCases(dir: string): VerifierCase[] {
  const cases: VerifierCase[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl"))
    .sort()) {
    readFileSync(join(dir, file), "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (line.trim() === "") return;
        const parsed = VerifierCaseSchema.safeParse(JSON.parse(line));
        if (!parsed.success) throw new Error(`${file}:${i + 1}: ${parsed.error.message}`);
        cases.push(parsed.data);
      });
  }
  return cases;
}

/** upstream calls that grade a whole response (so the answer is extracted first) */
const RESPONSE_CALLS = /MathVerify|gsm8k_reward_fn|accuracy_reward|RewardMathFn|math_dapo|prime_math/;
/** upstream extractors that only read \boxed{} */
const BOXED_ONLY_CALLS =
  /extract_boxed_answer|last_boxed_only_string|remove_boxed|tunix math_utils\.extract_answer/;

/** geometry3k protocol (AReaL): the last [...] group, else the last number */
function geometry3kAnswer(text: string): string {
  const brackets = [...text.matchAll(/\[([^[\]]*)\]/g)];
  const last = brackets[brackets.length - 1];
  if (last) return last[1]!;
  const numbers = [...text.matchAll(/-?\d+(?:\.\d+)?/g)];
  return numbers[numbers.length - 1]?.[0] ?? "";
}

/**
 * Our verdict on a case, reproducing the upstream call's protocol around our grader: which side is
 * a full response (extract first), which is a bare answer, and the geometry3k bracket convention.
 * Python's str(None) is "None", as upstream passed it.
 */
export function verdictFor(c: VerifierCase): boolean {
  const gold = c.gold ?? "None";
  const pred = c.pred ?? "None";
  const call = c.config?.call ?? "";
  if (c.kind === "extraction") {
    // the upstream extractors read boxed / "answer is" only: strict mode is their protocol
    const extracted = BOXED_ONLY_CALLS.test(call)
      ? extractBoxed(pred)
      : /choice_answer_clean/.test(call)
        ? pred
        : extractAnswer(pred, { mode: "strict" });
    if (c.gold === null) return extracted === null;
    return extracted !== null && answersEqual(gold, extracted).equal;
  }
  if (/geometry3k/.test(call)) return answersEqual(geometry3kAnswer(gold), geometry3kAnswer(pred)).equal;
  // these upstream graders read free-form responses (math-verify and its kin): lenient mode
  if (RESPONSE_CALLS.test(call))
    return answersEqual(
      extractAnswer(gold, { mode: "lenient" }) ?? gold,
      extractAnswer(pred, { mode: "lenient" }) ?? pred,
    ).equal;
  return answersEqual(gold, pred).equal;
}
