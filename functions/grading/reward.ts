import { answersEqual, type EquivalenceOptions } from "./equivalence.ts";
import { DEFAULT_MAX_RESPONSE_CHARS, extractAnswer } from "./extract.ts";

export const GradeReasons = ["correct", "no_answer", "mismatch", "timeout", "parse_error"] as const;
export type GradeReason = (typeof GradeReasons)[number];

export interface GradeResult {
  reward: number;
  equal: boolean;
  extracted: string | null;
  reason: GradeReason;
  /** why, in words, for timeouts and parse errors */
  detail?: string;
}

export interface GradeOptions extends EquivalenceOptions {
  /** reward for a correct answer (official QuestA: 0/1 correctness x 5) */
  scale?: number;
  /** longest response considered (default 1,000,000 characters) */
  maxResponseChars?: number;
}

/** official QuestA reward scale */
export const DEFAULT_REWARD_SCALE = 5;

/**
 * Grades one model response against a plain-string gold answer: `scale` when the extracted final
 * answer equals the gold, 0 otherwise, with the reason. Synchronous, bounded, never throws.
 */
export function gradeResponse(gold: string, response: string, options: GradeOptions = {}): GradeResult {
  const scale = options.scale ?? DEFAULT_REWARD_SCALE;
  if (typeof gold !== "string" || typeof response !== "string") {
    // the official release passed the gold as a list and silently scored 0: make that loud
    return {
      reward: 0,
      equal: false,
      extracted: null,
      reason: "parse_error",
      detail: "gold and response must be strings",
    };
  }
  const maxResponse = options.maxResponseChars ?? DEFAULT_MAX_RESPONSE_CHARS;
  if (response.length > maxResponse) {
    return {
      reward: 0,
      equal: false,
      extracted: null,
      reason: "parse_error",
      detail: `response longer than ${maxResponse} characters`,
    };
  }
  let extracted: string | null;
  try {
    extracted = extractAnswer(response, maxResponse);
  } catch (e) {
    return { reward: 0, equal: false, extracted: null, reason: "parse_error", detail: String(e) };
  }
  if (extracted === null) return { reward: 0, equal: false, extracted: null, reason: "no_answer" };
  const verdict = answersEqual(gold, extracted, options);
  const result: GradeResult = {
    reward: verdict.equal ? scale : 0,
    equal: verdict.equal,
    extracted,
    reason: verdict.equal ? "correct" : verdict.reason === "equal" ? "mismatch" : verdict.reason,
  };
  if (verdict.detail !== undefined) result.detail = verdict.detail;
  return result;
}
