import { DEFAULT_REWARD_MODE, type GradingMode } from "../contracts/grading-mode.ts";
import { answersEqual, type EquivalenceOptions } from "./equivalence.ts";
import {
  DEFAULT_MAX_RESPONSE_CHARS,
  type ExtractionKind,
  extractFinalAnswer,
  extractGold,
} from "./extract.ts";

export const GradeReasons = ["correct", "no_answer", "mismatch", "timeout", "parse_error"] as const;
export type GradeReason = (typeof GradeReasons)[number];

export interface GradeResult {
  reward: number;
  equal: boolean;
  extracted: string | null;
  reason: GradeReason;
  /** how the response was read: strict (marked answers only) or lenient */
  mode: GradingMode;
  /** where the extracted answer came from (boxed, marker, math span, ...) */
  extractedBy?: ExtractionKind;
  /** why, in words, for timeouts and parse errors */
  detail?: string;
}

export interface GradeOptions extends EquivalenceOptions {
  /** reward for a correct answer (official QuestA: 0/1 correctness x 5) */
  scale?: number;
  /** longest response considered (default 1,000,000 characters) */
  maxResponseChars?: number;
  /** strict (default, the RL reward): only marked answers; lenient: free-form answers too */
  mode?: GradingMode;
}

/**
 * Grades a response against a plain-string gold answer: what rollout and evaluate need from the
 * grader, with the run's scale and mode already chosen (functions/host/function-services.ts gradeFor).
 */
export type Grade = (
  gold: string,
  response: string,
) => Promise<{ reward: number; correct: boolean; extracted: string | null; reason: string }>;

/** official QuestA reward scale */
export const DEFAULT_REWARD_SCALE = 5;

/** extracted gold answers: every sample of a group is graded against the same gold */
const goldAnswers = new Map<string, string>();
const GOLD_CACHE_SIZE = 4096;

function goldAnswerOf(gold: string): string {
  const hit = goldAnswers.get(gold);
  if (hit !== undefined) return hit;
  const answer = extractGold(gold).answer;
  if (goldAnswers.size >= GOLD_CACHE_SIZE) {
    const oldest = goldAnswers.keys().next().value;
    if (oldest !== undefined) goldAnswers.delete(oldest);
  }
  goldAnswers.set(gold, answer);
  return answer;
}

/**
 * Grades one model response against a plain-string gold answer: `scale` when the extracted final
 * answer equals the gold, 0 otherwise, with the reason and the mode. The gold may be a bare answer
 * or a worked solution (its boxed or marked answer is used). Synchronous, bounded, never throws.
 */
export function gradeResponse(gold: string, response: string, options: GradeOptions = {}): GradeResult {
  const scale = options.scale ?? DEFAULT_REWARD_SCALE;
  const mode = options.mode ?? DEFAULT_REWARD_MODE;
  if (typeof gold !== "string" || typeof response !== "string") {
    // the official release passed the gold as a list and silently scored 0: make that loud
    return notStrings(mode, "gold and response");
  }
  const maxResponse = options.maxResponseChars ?? DEFAULT_MAX_RESPONSE_CHARS;
  if (response.length > maxResponse) {
    return parseError(mode, `response longer than ${maxResponse} characters`);
  }
  let found: ReturnType<typeof extractFinalAnswer>;
  let goldAnswer: string;
  try {
    found = extractFinalAnswer(response, { mode, maxChars: maxResponse });
    goldAnswer = goldAnswerOf(gold);
  } catch (e) {
    return { reward: 0, equal: false, extracted: null, reason: "parse_error", mode, detail: String(e) };
  }
  if (found === null) return { reward: 0, equal: false, extracted: null, reason: "no_answer", mode };
  return {
    ...graded(answersEqual(goldAnswer, found.answer, options), found.answer, scale, mode),
    extractedBy: found.kind,
  };
}

/**
 * Grades a bare answer (already extracted, e.g. a dataset's prediction column) against a gold:
 * no extraction on the answer side, the gold read as gradeResponse reads it. `mode` is recorded in
 * the result; it decides nothing here, since the answer is taken as given.
 */
export function gradeAnswer(gold: string, answer: string, options: GradeOptions = {}): GradeResult {
  const scale = options.scale ?? DEFAULT_REWARD_SCALE;
  const mode = options.mode ?? DEFAULT_REWARD_MODE;
  if (typeof gold !== "string" || typeof answer !== "string") {
    return notStrings(mode, "gold and answer");
  }
  return graded(answersEqual(goldAnswerOf(gold), answer, options), answer, scale, mode);
}

/** the result of comparing an extracted answer with the gold */
function graded(
  verdict: ReturnType<typeof answersEqual>,
  extracted: string,
  scale: number,
  mode: GradingMode,
): GradeResult {
  return {
    reward: verdict.equal ? scale : 0,
    equal: verdict.equal,
    extracted,
    reason: verdict.equal ? "correct" : verdict.reason === "equal" ? "mismatch" : verdict.reason,
    mode,
    ...(verdict.detail === undefined ? {} : { detail: verdict.detail }),
  };
}

/** the result for inputs that are not strings (a caller's mistake, reported rather than thrown) */
function notStrings(mode: GradingMode, what: string): GradeResult {
  return parseError(mode, `${what} must be strings`);
}

/** no reward for input the grader cannot read, with why */
function parseError(mode: GradingMode, detail: string): GradeResult {
  return { reward: 0, equal: false, extracted: null, reason: "parse_error", mode, detail };
}
