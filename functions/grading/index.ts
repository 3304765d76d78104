export {
  DEFAULT_REPORT_MODE,
  DEFAULT_REWARD_MODE,
  type GradingMode,
  GradingModeSchema,
  GradingModes,
} from "../contracts/grading-mode.ts";
export type { Answer } from "./answer-structure.ts";
export {
  answersEqual,
  DEFAULT_MAX_ANSWER_CHARS,
  type EquivalenceOptions,
  type EquivalenceReason,
  EquivalenceReasons,
  type EquivalenceResult,
} from "./equivalence.ts";
export {
  DEFAULT_MAX_RESPONSE_CHARS,
  type Extraction,
  type ExtractionKind,
  ExtractionKinds,
  type ExtractOptions,
  extractAnswer,
  extractBoxed,
  extractFinalAnswer,
  extractGold,
} from "./extract.ts";
export { GraderPool, type GraderPoolOptions } from "./grader-pool.ts";
export { DEFAULT_TOLERANCE, type Tolerance } from "./numeric.ts";
export {
  DEFAULT_REWARD_SCALE,
  type Grade,
  type GradeOptions,
  type GradeReason,
  GradeReasons,
  type GradeResult,
  gradeAnswer,
  gradeResponse,
} from "./reward.ts";
