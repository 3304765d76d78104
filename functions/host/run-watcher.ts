import {
  CheckpointPublished,
  type CheckpointPublishedData,
  EvaluationResult,
  type EvaluationResultData,
  RolloutGroup,
  RunStatus,
  type RunStatusData,
} from "../contracts/events.ts";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import { DeadLetter, type DeadLetterRecord } from "../runtime/dead-letter.ts";
import { defineFunction, isEvent } from "../runtime/define-function.ts";
import type { WarmStartProgress } from "./warm-start.ts";

/** What a run reports while it works (the CLI renders it). */
export type RunProgress =
  | { kind: "warm-start"; progress: WarmStartProgress; cached: boolean }
  | { kind: "status"; data: RunStatusData }
  | { kind: "evaluation"; data: EvaluationResultData }
  | { kind: "checkpoint"; data: CheckpointPublishedData }
  | { kind: "dead-letter"; data: DeadLetterRecord }
  /** a line for the user from the run's set-up (e.g. an install it does first) */
  | { kind: "notice"; text: string };

/**
 * Follows a run from its events (status, evaluations, checkpoints, dead letters): `fn` is bound to
 * the run's bus like any function; `untilFinished` resolves once the learner finished and its final
 * checkpoint was evaluated on every benchmark.
 */
export class RunWatcher {
  readonly #spec: QuestATrainingSpec;
  readonly #report: (progress: RunProgress) => void;
  #finished: boolean;
  #lastStep: number;
  /** dead letters by event id (a redelivered one counts once) and their reason */
  readonly #deadLetters = new Map<string, string>();
  readonly #evaluations = new Map<string, EvaluationResultData>();
  /** response tokens of the groups sampled since `since` (a resumed run's earlier groups excluded) */
  #sampledTokens = 0;
  readonly #countedGroups = new Set<string>();
  /** the learner's training tokens/s of each step taken since `since` */
  readonly #trainTokensPerSecond = new Map<number, number>();
  readonly #samplingTokensPerSecond = new Map<number, number>();
  readonly #logProbGap = new Map<number, number>();
  readonly #since: number;
  #wake: () => void = () => {};

  constructor(options: {
    spec: QuestATrainingSpec;
    report?: (progress: RunProgress) => void;
    /** what is known before any event: a resumed learner's state */
    finished?: boolean;
    step?: number;
    /** events before this time (ms since the epoch) are from an earlier session of the run */
    since?: number;
  }) {
    this.#since = options.since ?? 0;
    this.#spec = options.spec;
    this.#report = options.report ?? (() => {});
    this.#finished = options.finished ?? false;
    this.#lastStep = options.step ?? 0;
  }

  readonly fn = defineFunction({
    name: "cli",
    consumes: [RunStatus, EvaluationResult, CheckpointPublished, DeadLetter, RolloutGroup] as const,
    emits: [],
    handle: (event) => {
      const current = Date.parse(event.time) >= this.#since;
      if (isEvent(event, RolloutGroup)) {
        // not reported: counted for the loop's throughput (a redelivered group counts once)
        if (current && !this.#countedGroups.has(event.id)) {
          this.#countedGroups.add(event.id);
          this.#sampledTokens += event.data.responseTokens;
        }
        return [];
      }
      if (isEvent(event, RunStatus)) {
        this.#lastStep = Math.max(this.#lastStep, event.data.step);
        if (current && event.data.kind === "step" && event.data.metrics) {
          this.#trainTokensPerSecond.set(event.data.step, event.data.metrics.tokensPerSecond);
          const sampling = event.data.metrics.samplingTokensPerSecond;
          if (sampling !== undefined) this.#samplingTokensPerSecond.set(event.data.step, sampling);
          const gap = event.data.metrics.logProbGap;
          if (gap !== undefined) this.#logProbGap.set(event.data.step, gap);
        }
        if (event.data.kind === "finished") this.#finished = true;
        this.#report({ kind: "status", data: event.data });
      } else if (isEvent(event, EvaluationResult)) {
        this.#evaluations.set(`${event.data.step}:${event.data.benchmark}`, event.data);
        this.#report({ kind: "evaluation", data: event.data });
      } else if (isEvent(event, CheckpointPublished)) {
        if (event.data.reason !== "policy") this.#report({ kind: "checkpoint", data: event.data });
      } else if (isEvent(event, DeadLetter)) {
        if (!this.#deadLetters.has(event.id)) this.#report({ kind: "dead-letter", data: event.data });
        this.#deadLetters.set(event.id, event.data.reason);
      }
      this.#wake();
      return [];
    },
  });

  /**
   * Evaluations a resumed run published in earlier sessions: they belong in the final table but
   * are not reported again (the watcher's consumer group committed them back then).
   */
  remember(evaluations: readonly EvaluationResultData[]): void {
    for (const data of evaluations) {
      const key = `${data.step}:${data.benchmark}`;
      if (!this.#evaluations.has(key)) this.#evaluations.set(key, data);
    }
  }

  /** the learner finished and the final checkpoint was evaluated on every benchmark */
  get complete(): boolean {
    const last = this.#spec.learner.totalSteps;
    return (
      this.#finished &&
      this.#spec.evaluation.benchmarks.every((b) => this.#evaluations.has(`${last}:${b.name}`))
    );
  }

  get step(): number {
    return this.#lastStep;
  }

  /** response tokens sampled (rollout groups, probes included) since `since` */
  get sampledTokens(): number {
    return this.#sampledTokens;
  }

  /** the mean of the learner's training tokens/s over the steps taken since `since` */
  get trainTokensPerSecond(): number | undefined {
    return meanOf(this.#trainTokensPerSecond.values());
  }

  /** the mean over the steps taken since `since` of the learner's log-prob gap to the sampler */
  get logProbGap(): number | undefined {
    return meanOf(this.#logProbGap.values());
  }

  /**
   * the mean over the steps taken since `since` of the sampling speed their groups reported (the
   * rollout engines' generated tokens per second of engine time, as run.status carries it)
   */
  get engineSamplingTokensPerSecond(): number | undefined {
    return meanOf(this.#samplingTokensPerSecond.values());
  }

  get deadLetters(): number {
    return this.#deadLetters.size;
  }

  /** dead letters counted by reason */
  get deadLetterReasons(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const reason of this.#deadLetters.values()) out[reason] = (out[reason] ?? 0) + 1;
    return out;
  }

  /** every evaluation seen, by step then benchmark */
  get evaluations(): EvaluationResultData[] {
    return [...this.#evaluations.values()].sort(
      (a, b) => a.step - b.step || a.benchmark.localeCompare(b.benchmark),
    );
  }

  /**
   * Resolves when the run is complete or `signal` aborts; rejects with `failure`'s error if that
   * settles first with one (a function's consumer died).
   */
  async untilComplete(signal: AbortSignal, failure: Promise<unknown>): Promise<void> {
    let failed: { error: unknown } | undefined;
    void failure.then(
      (error) => {
        if (error !== undefined) failed = { error };
        this.#wake();
      },
      (error: unknown) => {
        failed = { error };
        this.#wake();
      },
    );
    const onAbort = () => this.#wake();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!this.complete && !signal.aborted && failed === undefined) {
        await new Promise<void>((resolveWait) => {
          this.#wake = resolveWait;
        });
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    if (failed !== undefined) throw failed.error;
  }
}

function meanOf(values: Iterable<number>): number | undefined {
  const all = [...values];
  return all.length === 0 ? undefined : all.reduce((a, b) => a + b, 0) / all.length;
}
