import type { CurriculumStageChangedData } from "../contracts/events.ts";
import type { CurriculumTransition } from "../questa/curriculum.ts";

/**
 * The `curriculum.stage` event of a transition, or `undefined` for the end of the last stage (the
 * run's status records that as the end of the curriculum; there is no next stage to announce).
 */
export function curriculumStageChangedData(
  run: string,
  transition: CurriculumTransition,
): CurriculumStageChangedData | undefined {
  if (transition.toStage === null || transition.toRatio === null) return undefined;
  const data: CurriculumStageChangedData = {
    run,
    fromStage: transition.fromStage,
    toStage: transition.toStage,
    ratio: transition.toRatio,
    step: transition.atStep,
    reason: transition.reason,
  };
  if (transition.entropy !== undefined) data.entropy = transition.entropy;
  return data;
}
