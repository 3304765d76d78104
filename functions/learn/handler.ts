import { CheckpointPublished, CurriculumStageChanged, RolloutGroup, RunStatus } from "../contracts/events.ts";
import { defineFunction, type FunctionDeps } from "../runtime/define-function.ts";
import type { Learner } from "./learner.ts";

export interface LearnServices {
  /** opened with `Learner.open` (restores the latest step after a restart) */
  learner: Learner;
}

/**
 * The learn function: consumes rollout groups, rejects those outside the success-rate bounds,
 * runs a policy update every `promptsPerStep` groups and publishes policy updates, checkpoints,
 * curriculum stage changes and step status (see Learner).
 */
export const learnFunction = defineFunction({
  name: "learn",
  consumes: [RolloutGroup] as const,
  emits: [CheckpointPublished, CurriculumStageChanged, RunStatus],
  handle: (event, deps: FunctionDeps<LearnServices>) => deps.services.learner.onGroup(event.data),
});
