/**
 * What other processes read of the learner's stored state: how far it got and how many accepted
 * groups wait for its next step. The learn function owns and writes these objects
 * (functions/learn/learner.ts); the rollout process resumes from them and follows them
 * (functions/host/rollout-process.ts), because while its staleness gate holds a question a Kafka
 * consumer fetches nothing else, so the checkpoint event that would open the gate never arrives.
 *
 * Objects, under the run's keys:
 *   learner/state.json               the learner's state; LearnerSharedStateSchema is the part others rely on
 *   learner/pending/<group key>.json an accepted group waiting for a step (stale once its key is in `consumed`)
 */
import { z } from "zod";
import type { ObjectStore } from "../runtime/object-store.ts";
import { readStoredJson } from "../runtime/stored-json.ts";
import type { RunKeys } from "./run-keys.ts";

export const learnerStateKey = (keys: RunKeys): string => keys.key("learner", "state.json");
export const learnerPendingFolder = (keys: RunKeys): string => keys.folder("learner", "pending");
export const learnerPendingKey = (keys: RunKeys, groupKey: string): string =>
  keys.key("learner", "pending", `${groupKey}.json`);

/** the part of `learner/state.json` other processes rely on; the learner's own schema extends it */
export const LearnerSharedStateSchema = z.object({
  /** the last committed step (0 before the first) */
  step: z.int().min(0),
  curriculum: z.object({ stageIndex: z.int().min(0) }),
  finished: z.boolean(),
  /** group keys trained on, per step, for the last few steps */
  consumed: z.array(z.object({ step: z.int(), keys: z.array(z.string()) })),
});

/** How far the learner got, read from its stored state without loading weights (other processes' view). */
export interface LearnerProgress {
  step: number;
  stage: number;
  finished: boolean;
  /** accepted groups waiting for the next step */
  pendingCount: number;
}

/** Reads a learner object; undefined when absent. One that fails its schema is corrupt for good (DeadLetterError). */
export async function readLearnerJson<T>(
  store: ObjectStore,
  key: string,
  schema: z.ZodType<T>,
): Promise<T | undefined> {
  return readStoredJson(store, key, schema, "corrupt_learner_state");
}

/** Reads the learner's progress from the store; a learner that never ran is at step 0. */
export async function readLearnerProgress(store: ObjectStore, keys: RunKeys): Promise<LearnerProgress> {
  const state = await readLearnerJson(store, learnerStateKey(keys), LearnerSharedStateSchema);
  const consumed = new Set(state?.consumed.flatMap((c) => c.keys) ?? []);
  const pending = (await store.list(learnerPendingFolder(keys))).filter(
    (info) => !consumed.has(info.key.slice(info.key.lastIndexOf("/") + 1).replace(/\.json$/, "")),
  );
  return {
    step: state?.step ?? 0,
    stage: state?.curriculum.stageIndex ?? 0,
    finished: state?.finished ?? false,
    pendingCount: pending.length,
  };
}
