import { z } from "zod";

/**
 * How a response's final answer is read. `strict`: only marked answers count (\boxed{}, "the
 * answer is", "Final Answer:"), so an RL policy learns to mark its answer. `lenient`: also
 * free-form answers (a choice letter after "Answer", the last math span, a bare answer, the last
 * number), as math-verify reads them; for evaluation reports and `questa grade`.
 */
export const GradingModeSchema = z.enum(["strict", "lenient"]);
export type GradingMode = z.infer<typeof GradingModeSchema>;
export const GradingModes = GradingModeSchema.options;

/** the RL reward's default: the policy is rewarded only for answers it marked */
export const DEFAULT_REWARD_MODE: GradingMode = "strict";
/** evaluation reports' and the CLI's default: read the answer however it was written */
export const DEFAULT_REPORT_MODE: GradingMode = "lenient";
