import {
  CheckpointPublished,
  CurriculumStageChanged,
  EvaluationResult,
  RunStatus,
} from "../functions/contracts/events.ts";
import type { BenchmarkScore, QuestATrainingStatus } from "../functions/contracts/questatraining.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";

/**
 * What the run's events say about its progress, folded from the status, checkpoints and evaluations
 * topics. The fold is monotonic (newest step wins, flags only turn on), so replaying events after a
 * restart or an at-least-once redelivery gives the same result, and it can resume from `.status`.
 */
export interface RunProgress {
  started: boolean;
  finished: boolean;
  failed: boolean;
  message?: string | undefined;
  step?: number | undefined;
  stage?: number | undefined;
  hintRatio?: number | undefined;
  latestCheckpoint?: { step: number; uri: string; time: string } | undefined;
  latestEvaluation: Record<string, BenchmarkScore>;
}

export const emptyProgress = (): RunProgress => ({
  started: false,
  finished: false,
  failed: false,
  latestEvaluation: {},
});

/** Seeds the fold from a status the operator wrote earlier. */
export function progressFromStatus(status: QuestATrainingStatus | undefined): RunProgress {
  const progress = emptyProgress();
  if (!status) return progress;
  progress.started = status.step !== undefined || status.phase === "Running";
  progress.finished = status.phase === "Succeeded";
  progress.step = status.step;
  progress.stage = status.stage;
  progress.hintRatio = status.hintRatio;
  progress.latestCheckpoint = status.latestCheckpoint;
  progress.latestEvaluation = { ...(status.latestEvaluation ?? {}) };
  return progress;
}

const newer = (a: number | undefined, b: number) => (a === undefined ? b : Math.max(a, b));

/** Folds one event into the progress; events of other types or with invalid data are ignored. */
export function foldRunEvent(progress: RunProgress, event: CloudEvent<unknown>): RunProgress {
  switch (event.type) {
    case RunStatus.type: {
      const parsed = RunStatus.data.safeParse(event.data);
      if (!parsed.success) return progress;
      const data = parsed.data;
      const next: RunProgress = { ...progress, started: true };
      const isNewest = progress.step === undefined || data.step >= progress.step;
      next.step = newer(progress.step, data.step);
      if (isNewest) {
        next.stage = data.stage;
        next.hintRatio = data.hintRatio;
      }
      if (data.kind === "finished") next.finished = true;
      if (data.kind === "failed") {
        next.failed = true;
        next.message = data.message ?? "the run reported a failure";
      }
      return next;
    }
    case CurriculumStageChanged.type: {
      const parsed = CurriculumStageChanged.data.safeParse(event.data);
      if (!parsed.success) return progress;
      const data = parsed.data;
      if (progress.stage !== undefined && data.toStage < progress.stage) return progress;
      return {
        ...progress,
        started: true,
        stage: data.toStage,
        hintRatio: data.ratio,
        step: newer(progress.step, data.step),
      };
    }
    case CheckpointPublished.type: {
      const parsed = CheckpointPublished.data.safeParse(event.data);
      if (!parsed.success) return progress;
      const data = parsed.data;
      if (progress.latestCheckpoint && progress.latestCheckpoint.step > data.step) return progress;
      return { ...progress, latestCheckpoint: { step: data.step, uri: data.manifest.uri, time: event.time } };
    }
    case EvaluationResult.type: {
      const parsed = EvaluationResult.data.safeParse(event.data);
      if (!parsed.success) return progress;
      const data = parsed.data;
      const previous = progress.latestEvaluation[data.benchmark];
      if (previous && previous.step > data.step) return progress;
      const score: BenchmarkScore = {
        step: data.step,
        passAt1: data.passAt1,
        passAtK: data.passAtK,
        time: event.time,
      };
      return { ...progress, latestEvaluation: { ...progress.latestEvaluation, [data.benchmark]: score } };
    }
    default:
      return progress;
  }
}

export function foldRunEvents(progress: RunProgress, events: readonly CloudEvent<unknown>[]): RunProgress {
  return events.reduce(foldRunEvent, progress);
}

/** Mean pass@1 over the benchmarks evaluated at the newest evaluated step. */
export function latestPassAt1(progress: RunProgress): number | undefined {
  const scores = Object.values(progress.latestEvaluation);
  if (scores.length === 0) return undefined;
  const step = Math.max(...scores.map((s) => s.step));
  const latest = scores.filter((s) => s.step === step);
  return latest.reduce((sum, s) => sum + s.passAt1, 0) / latest.length;
}
