import { z } from "zod";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { readStoredJson } from "../runtime/stored-json.ts";

/**
 * Passes over the training set. The learner needs `totalSteps * promptsPerStep` accepted groups and
 * the success-rate filter drops many, so one pass over the kept problems is rarely enough: once
 * `NEXT_EPOCH_AT` of the current pass has come back from rollout (and every probe of the stage is
 * decided), the augment function emits the next pass, reshuffled. A new curriculum stage starts
 * again at epoch 0 with its own hints; nothing more is emitted once the run has finished.
 */
export const NEXT_EPOCH_AT = 0.75;

export const EpochProgressSchema = z.object({
  stage: z.int().min(0),
  epoch: z.int().min(0),
  /** questions of the stage set (probed or emitted) */
  questions: z.int().min(0),
  /** hard-filter decisions made in this stage, and how many kept their question */
  decided: z.int().min(0),
  kept: z.int().min(0),
  /** training groups of (stage, epoch) answered so far */
  answered: z.int().min(0),
  finished: z.boolean(),
});
export type EpochProgress = z.infer<typeof EpochProgressSchema>;

export function progressKey(runPrefix: string): string {
  return `${runPrefix}/augmented/progress.json`;
}

export async function readProgress(
  store: ObjectStore,
  runPrefix: string,
): Promise<EpochProgress | undefined> {
  return readStoredJson(store, progressKey(runPrefix), EpochProgressSchema, "corrupt_epoch_progress");
}

export async function writeProgress(
  store: ObjectStore,
  runPrefix: string,
  progress: EpochProgress,
): Promise<void> {
  await store.put(progressKey(runPrefix), JSON.stringify(progress), { contentType: "application/json" });
}

/** whether the pass in progress is far enough along to emit the next one */
export function nextEpochDue(progress: EpochProgress, hardFilterEnabled: boolean): boolean {
  if (progress.finished) return false;
  const size = hardFilterEnabled ? progress.kept : progress.questions;
  if (hardFilterEnabled && progress.decided < progress.questions) return false;
  if (size === 0) return false;
  return progress.answered >= Math.ceil(size * NEXT_EPOCH_AT);
}

/** a deterministic reshuffle of a pass: order by hash of (seed, stage, epoch, id) */
export function shuffleForEpoch<T extends { questionId: string }>(
  items: readonly T[],
  seed: string,
  stage: number,
  epoch: number,
): T[] {
  return items
    .map((item) => ({ item, rank: sha256Hex(`${seed}\n${stage}\n${epoch}\n${item.questionId}`) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0))
    .map((entry) => entry.item);
}

/** serialises read-modify-write of the progress object within this process */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.#tails.set(
      key,
      next.catch(() => undefined),
    );
    return next;
  }
}
