/**
 * The hint curriculum: stages of hint ratio p, each held until a step budget or an entropy
 * threshold. The official recipe ran p = 0.5 for ~100 steps (until the policy entropy starts to
 * fall), then p = 0.25 from that checkpoint.
 *
 * A pure state machine: feed it the learner's (step, entropy) observations; repeated or older ones
 * are ignored (events are delivered at least once). It answers the current stage and the
 * transitions the observation caused, which the caller emits as events and records in the status.
 */
import { InputError, type InputIssue } from "../runtime/errors.ts";

/**
 * When a stage ends, whichever condition is met first: `steps` = the learner's total step count
 * (counted from step 0, as in the spec), `entropyBelow` = the policy's mean token entropy.
 */
export interface StageUntil {
  steps?: number | undefined;
  entropyBelow?: number | undefined;
}

export interface CurriculumStage {
  ratio: number;
  /** absent on the last stage = hold it until training ends */
  until?: StageUntil | undefined;
}

export interface CurriculumState {
  stageIndex: number;
  /** learner step at which the current stage began */
  stageStartStep: number;
  /** highest step observed so far (-1 before any); older or repeated observations are ignored */
  lastStep: number;
  /** every stage's condition has been met */
  finished: boolean;
}

export interface CurriculumTransition {
  fromStage: number;
  /** `null` when the last stage's condition was met and the curriculum is finished */
  toStage: number | null;
  fromRatio: number;
  toRatio: number | null;
  atStep: number;
  reason: "steps" | "entropy";
  /** the entropy that triggered an entropy transition */
  entropy?: number;
}

export interface CurriculumObservation {
  step: number;
  /** mean token entropy of the policy at this step, when measured */
  entropy?: number;
}

export const initialCurriculumState: CurriculumState = {
  stageIndex: 0,
  stageStartStep: 0,
  lastStep: -1,
  finished: false,
};

/** Checks the stages; throws an InputError listing every problem with its path. */
export function validateCurriculum(
  stages: readonly CurriculumStage[],
  path = "augmentation.curriculum",
): void {
  const issues: InputIssue[] = [];
  if (stages.length === 0)
    issues.push({ path, message: "needs at least one stage", hint: "e.g. [{ ratio: 0.5 }]" });
  stages.forEach((stage, index) => {
    const at = `${path}[${index}]`;
    if (!Number.isFinite(stage.ratio) || stage.ratio < 0 || stage.ratio > 1) {
      issues.push({ path: `${at}.ratio`, message: `must be in [0, 1], got ${stage.ratio}` });
    }
    const until = stage.until;
    if (until === undefined) {
      if (index < stages.length - 1) {
        issues.push({ path: `${at}.until`, message: "every stage but the last needs an until condition" });
      }
      return;
    }
    if (until.steps === undefined && until.entropyBelow === undefined) {
      issues.push({ path: `${at}.until`, message: "set steps, entropyBelow or both" });
    }
    if (until.steps !== undefined && (!Number.isInteger(until.steps) || until.steps < 1)) {
      issues.push({ path: `${at}.until.steps`, message: `must be a whole number >= 1, got ${until.steps}` });
    }
    if (
      until.entropyBelow !== undefined &&
      (!Number.isFinite(until.entropyBelow) || until.entropyBelow <= 0)
    ) {
      issues.push({
        path: `${at}.until.entropyBelow`,
        message: `must be a positive number, got ${until.entropyBelow}`,
      });
    }
  });
  if (issues.length > 0) throw new InputError("invalid_curriculum", issues);
}

export function currentRatio(stages: readonly CurriculumStage[], state: CurriculumState): number {
  const stage = stages[state.stageIndex];
  if (stage === undefined) throw new Error(`curriculum stage ${state.stageIndex} does not exist`);
  return stage.ratio;
}

/**
 * Advances the curriculum by one observation. Step limits are checked first and may pass several
 * stages at once (a restart can deliver a late step); an entropy threshold moves at most one stage
 * per observation, since the entropy was measured under the stage that was current.
 */
export function observeCurriculum(
  stages: readonly CurriculumStage[],
  state: CurriculumState,
  observation: CurriculumObservation,
): { state: CurriculumState; transitions: CurriculumTransition[] } {
  if (state.finished || observation.step <= state.lastStep) return { state, transitions: [] };
  const transitions: CurriculumTransition[] = [];
  let next: CurriculumState = { ...state, lastStep: observation.step };
  let entropyUsed = false;
  for (;;) {
    const stage = stages[next.stageIndex];
    if (stage === undefined) throw new Error(`curriculum stage ${next.stageIndex} does not exist`);
    const until = stage.until;
    if (until === undefined) break;
    let reason: CurriculumTransition["reason"];
    let atStep: number;
    const entropy = observation.entropy;
    if (until.steps !== undefined && observation.step >= until.steps) {
      reason = "steps";
      // a stage that began after its step limit (an earlier stage ran long) ends where it began
      atStep = Math.max(until.steps, next.stageStartStep);
    } else if (
      until.entropyBelow !== undefined &&
      !entropyUsed &&
      entropy !== undefined &&
      entropy < until.entropyBelow
    ) {
      entropyUsed = true;
      reason = "entropy";
      atStep = observation.step;
    } else break;
    const toIndex = next.stageIndex + 1;
    const toStage = stages[toIndex];
    const transition: CurriculumTransition = {
      fromStage: next.stageIndex,
      toStage: toStage === undefined ? null : toIndex,
      fromRatio: stage.ratio,
      toRatio: toStage === undefined ? null : toStage.ratio,
      atStep,
      reason,
    };
    if (reason === "entropy" && observation.entropy !== undefined) transition.entropy = observation.entropy;
    transitions.push(transition);
    if (toStage === undefined) {
      next = { ...next, finished: true };
      break;
    }
    next = { ...next, stageIndex: toIndex, stageStartStep: atStep };
  }
  return { state: next, transitions };
}

/** Replays a sequence of observations from the start; what a restarted process does with the history. */
export function replayCurriculum(
  stages: readonly CurriculumStage[],
  observations: Iterable<CurriculumObservation>,
): { state: CurriculumState; transitions: CurriculumTransition[] } {
  let state = initialCurriculumState;
  const transitions: CurriculumTransition[] = [];
  for (const observation of observations) {
    const result = observeCurriculum(stages, state, observation);
    state = result.state;
    transitions.push(...result.transitions);
  }
  return { state, transitions };
}
