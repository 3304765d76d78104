export type { Answer } from "./answer-structure.ts";
export {
  answersEqual,
  DEFAULT_MAX_ANSWER_CHARS,
  type EquivalenceOptions,
  type EquivalenceReason,
  EquivalenceReasons,
  type EquivalenceResult,
} from "./equivalence.ts";
export { DEFAULT_MAX_RESPONSE_CHARS, extractAnswer, extractBoxed } from "./extract.ts";
export { GraderPool, type GraderPoolOptions } from "./grader-pool.ts";
export { DEFAULT_TOLERANCE, type Tolerance } from "./numeric.ts";
export {
  DEFAULT_REWARD_SCALE,
  type GradeOptions,
  type GradeReason,
  GradeReasons,
  type GradeResult,
  gradeResponse,
} from "./reward.ts";
