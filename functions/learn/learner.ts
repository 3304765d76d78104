import { z } from "zod";
import {
  CheckpointPublished,
  type CheckpointPublishedData,
  CurriculumStageChanged,
  type ObjectRef,
  type RolloutGroupData,
  RolloutGroupSchema,
  RunStatus,
  type StepMetrics,
} from "../contracts/events.ts";
import {
  LearnerSharedStateSchema,
  learnerPendingFolder,
  learnerPendingKey,
  learnerStateKey,
  readLearnerJson,
} from "../contracts/learner-progress.ts";
import type { Augmentation, LearnerSpec } from "../contracts/questatraining.ts";
import { eventDefinition } from "../contracts/registry.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import { type RolloutShard, RolloutShardSchema } from "../contracts/shards.ts";
import {
  type CurriculumState,
  currentRatio,
  initialCurriculumState,
  observeCurriculum,
} from "../questa/curriculum.ts";
import { computeAdvantages } from "../rl/advantages.ts";
import { judgeGroup } from "../rl/group-filter.ts";
import type { Clock } from "../runtime/clock.ts";
import { DeadLetterError, InputError, RetryableError } from "../runtime/errors.ts";
import type { EmittedEvent } from "../runtime/event-definition.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { parseStoredJson } from "../runtime/stored-json.ts";
import { removeCheckpointFolder } from "./checkpoint-folders.ts";
import type { LearnerEngine, PpoSample, PpoSettings } from "./learner-engine.ts";

/** how many recent steps' group keys are remembered to drop redelivered groups */
const CONSUMED_MEMORY_STEPS = 16;

const StoredEventSchema = z.object({ type: z.string(), key: z.string(), id: z.string(), data: z.unknown() });

/** the learner's whole state; what other processes read of it is the contract it extends */
const LearnerStateSchema = LearnerSharedStateSchema.extend({
  curriculum: LearnerSharedStateSchema.shape.curriculum.extend({
    stageStartStep: z.int().min(0),
    lastStep: z.int(),
    finished: z.boolean(),
  }),
  /** groups rejected by the success-rate filter since the last step */
  rejectedSinceStep: z.int().min(0),
  staleDropped: z.int().min(0),
  /** arrival counter: pending groups train in arrival order, also after a restart */
  arrivals: z.int().min(0),
  /** whether `learner/resume/step-<step>` holds the weights and optimiser state of `step` */
  resumable: z.boolean().default(false),
  /** events of the latest step, re-emitted if its last group is delivered again after a crash */
  lastStepEvents: z.array(StoredEventSchema),
  lastStepKeys: z.array(z.string()),
});
type LearnerState = z.infer<typeof LearnerStateSchema>;

const PendingGroupSchema = z.object({ arrival: z.int().min(0), group: RolloutGroupSchema });
type PendingGroup = z.infer<typeof PendingGroupSchema>;

export interface LearnerOptions {
  run: string;
  learner: LearnerSpec;
  curriculum: Augmentation["curriculum"];
  engine: LearnerEngine;
  store: ObjectStore;
  keys: RunKeys;
  clock: Clock;
  /** `uri` of a stored object, for claim checks */
  uri: (key: string) => string;
}

function resumeFolder(keys: RunKeys, step: number): string {
  return keys.key("learner", "resume", `step-${String(step).padStart(6, "0")}`);
}

export function groupKey(group: Pick<RolloutGroupData, "questionId" | "stage" | "epoch">): string {
  return `${group.questionId}.s${group.stage}.e${group.epoch}`;
}

function initialState(): LearnerState {
  return {
    step: 0,
    curriculum: { ...initialCurriculumState },
    consumed: [],
    rejectedSinceStep: 0,
    staleDropped: 0,
    arrivals: 0,
    resumable: false,
    finished: false,
    lastStepEvents: [],
    lastStepKeys: [],
  };
}

/**
 * The learner's state machine: buffers accepted groups, runs a policy update every
 * `promptsPerStep` groups, publishes policy updates and checkpoints, follows the curriculum.
 *
 * Crash safety: every accepted group is written to `learner/pending/` before its message is
 * committed; after each step the weights and optimiser state go to a resume folder, then
 * `learner/state.json` (atomic) records the step. A restart loads the folder of the state's step, so
 * no step is lost or repeated; redelivered groups are recognised by key and dropped. The state also
 * holds every event of the last call that ran a step, emitted again by a redelivery of any of its
 * groups and by the first call after a restart (they may never have been published).
 */
export class Learner {
  readonly #o: LearnerOptions;
  #state: LearnerState;
  #pending: PendingGroup[];
  /** a call failed part-way: memory may be ahead of the store, so the next call restores first */
  #restoreFirst = false;
  /**
   * the last committed call's events may never have been published (the process died, or the call
   * failed, after the state was written): the next call emits them again before its own. Its own
   * input may be on another partition than the one whose redelivery would re-emit them, and may
   * run a step that replaces them in the state; their ids are fixed, so a second copy is harmless.
   */
  #reannounce: boolean;
  /**
   * groups dropped (stale, or outside the success-rate bounds) since the last committed step: in
   * memory only until the step writes the state (a crash loses these counts; the groups
   * themselves are not lost: dropped is their outcome either way, and a redelivery counts again)
   */
  #uncounted = { rejected: 0, stale: 0 };

  private constructor(options: LearnerOptions, state: LearnerState, pending: PendingGroup[]) {
    this.#o = options;
    this.#state = state;
    this.#pending = pending;
    this.#reannounce = state.lastStepEvents.length > 0;
  }

  /**
   * Restores the learner from the store: the resume folder of the recorded step when there is one, else the
   * initial checkpoint (step 0), which must exist.
   */
  static async open(options: LearnerOptions): Promise<Learner> {
    const { state, pending } = await Learner.#restore(options);
    return new Learner(options, state, pending);
  }

  /** state, pending groups and engine weights as the store has them (the last committed step) */
  static async #restore(options: LearnerOptions): Promise<{ state: LearnerState; pending: PendingGroup[] }> {
    const { store, keys, engine } = options;
    const state = (await readLearnerJson(store, learnerStateKey(keys), LearnerStateSchema)) ?? initialState();
    if (options.learner.totalSteps === 0) state.finished = true; // evaluation only
    if (state.resumable) {
      await engine.loadCheckpoint(store, resumeFolder(keys, state.step));
    } else {
      await engine.loadCheckpoint(store, keys.checkpoint(0));
    }
    if (options.learner.klCoef > 0) {
      if (!engine.loadReference) {
        throw new InputError("learner.kl_to_reference", [
          {
            path: "spec.learner.klCoef",
            message: `a KL penalty needs the reference policy's log-probs, which the ${options.learner.engine} learner does not compute`,
            hint: "set learner.klCoef to 0 (QuestA's setting) or use learner.engine: onnx",
          },
        ]);
      }
      // the reference is the run's initial policy, whatever step the learner resumes from
      await engine.loadReference(store, keys.checkpoint(0));
    }
    const consumed = new Set(state.consumed.flatMap((c) => c.keys));
    const pending: PendingGroup[] = [];
    for (const info of await store.list(learnerPendingFolder(keys))) {
      const entry = await readLearnerJson(store, info.key, PendingGroupSchema);
      if (!entry) continue;
      if (consumed.has(groupKey(entry.group))) {
        await store.delete(info.key); // trained on before the crash; its delete did not happen
        continue;
      }
      pending.push(entry);
    }
    pending.sort((a, b) => a.arrival - b.arrival);
    // arrivals are written with each pending entry, the state only at steps
    state.arrivals = Math.max(state.arrivals, ...pending.map((p) => p.arrival + 1));
    return { state, pending };
  }

  get step(): number {
    return this.#state.step;
  }

  get finished(): boolean {
    return this.#state.finished;
  }

  get stage(): number {
    return this.#state.curriculum.stageIndex;
  }

  get pendingCount(): number {
    return this.#pending.length;
  }

  /**
   * Handles one `rollout.group`; returns the events to emit (none until a step runs). A failure
   * part-way (the store became unreachable mid-step) leaves memory possibly ahead of the store
   * (a counter bumped, a group buffered, the engine stepped): the retry then restores the last
   * committed state first, so counters are not inflated and no step is skipped or done twice.
   */
  async onGroup(group: RolloutGroupData): Promise<EmittedEvent[]> {
    if (this.#restoreFirst) {
      const { state, pending } = await Learner.#restore(this.#o);
      // dropped groups counted since the last committed step are not in the store: keep them
      state.rejectedSinceStep += this.#uncounted.rejected;
      state.staleDropped += this.#uncounted.stale;
      this.#state = state;
      this.#pending = pending;
      this.#restoreFirst = false;
      this.#reannounce = state.lastStepEvents.length > 0;
    }
    try {
      const carried = this.#reannounce ? this.#rehydrate(this.#state.lastStepEvents) : [];
      const events = await this.#onGroup(group, carried);
      this.#reannounce = false;
      return events;
    } catch (error) {
      this.#restoreFirst = true;
      throw error;
    }
  }

  /** `carried`: events of the last committed call to emit again first (see #reannounce) */
  async #onGroup(group: RolloutGroupData, carried: EmittedEvent[]): Promise<EmittedEvent[]> {
    if (group.purpose !== "train" || group.run !== this.#o.run) return carried;
    const key = groupKey(group);
    if (this.#state.lastStepKeys.includes(key)) return this.#rehydrate(this.#state.lastStepEvents);
    if (this.#state.finished) return carried;
    if (this.#state.consumed.some((c) => c.keys.includes(key))) return carried;
    const spec = this.#o.learner;
    // a group already pending is a redelivery: it may be the one whose step did not run (a crash
    // or an outage after it was stored), so the step below still runs
    if (!this.#pending.some((p) => groupKey(p.group) === key)) {
      // dropped groups only count (metrics, written with the next step): a state write per
      // dropped group was most of the learner's I/O, with most groups all right or all wrong
      if (group.policyVersion + spec.maxStaleness < this.#state.step) {
        this.#state.staleDropped++;
        this.#uncounted.stale++;
        return carried;
      }
      if (!judgeGroup(group.successRate, spec.groupFilter).keep) {
        this.#state.rejectedSinceStep++;
        this.#uncounted.rejected++;
        return carried;
      }
      // the pending entry carries its arrival number: a restart takes the counter from the entries
      const entry: PendingGroup = { arrival: this.#state.arrivals, group };
      await this.#o.store.put(this.#pendingKey(key), JSON.stringify(entry));
      this.#state.arrivals++;
      this.#pending.push(entry);
    }
    // every event this call returns is recorded with each step it runs, so that if they never get
    // out, a redelivery of any group it trained on (or of `group`, which may stay pending) or the
    // next call after a restart emits all of them again
    const events: EmittedEvent[] = [...carried];
    const keys = [key];
    while (this.#pending.length >= spec.promptsPerStep && !this.#state.finished) {
      const batch = this.#pending.slice(0, spec.promptsPerStep);
      keys.push(...batch.map((p) => groupKey(p.group)));
      events.push(...(await this.#trainStep(batch, { events, keys })));
    }
    return events;
  }

  /**
   * Events announcing that training starts (the initial policy at step 0). A run of zero steps
   * only evaluates: it announces the initial policy as already finished, so augment emits nothing.
   */
  startEvents(initialCheckpoint: ObjectRef): EmittedEvent[] {
    const run = this.#o.run;
    const data: CheckpointPublishedData = {
      run,
      step: 0,
      stage: 0,
      reason: "initial",
      manifest: initialCheckpoint,
    };
    const evaluateOnly = this.#o.learner.totalSteps === 0;
    return [
      { definition: CheckpointPublished, data, key: run, id: `${run}:checkpoint:0:initial` },
      {
        definition: RunStatus,
        data: {
          run,
          kind: evaluateOnly ? "finished" : "started",
          step: 0,
          stage: 0,
          hintRatio: currentRatio(this.#o.curriculum, initialCurriculumState),
          ...(evaluateOnly
            ? { message: "evaluation only (learner.totalSteps is 0): evaluating the starting model" }
            : {}),
        },
        key: run,
        id: evaluateOnly ? `${run}:status:finished` : `${run}:status:started`,
      },
    ];
  }

  /** `call`: the events and group keys of the call so far, recorded with this step's own */
  async #trainStep(
    batch: PendingGroup[],
    call: { events: readonly EmittedEvent[]; keys: readonly string[] },
  ): Promise<EmittedEvent[]> {
    const { engine, store, keys, clock, learner: spec, run } = this.#o;
    const started = clock.now();
    const shards = await Promise.all(batch.map((p) => this.#readShard(p.group.shard)));
    const samples = ppoSamples(
      shards,
      computeAdvantages(
        shards.map((s) => s.responses.map((r) => r.reward)),
        spec.advantage,
      ),
    );
    const metrics = await engine.trainPpo(samples, this.#settings());
    const step = this.#state.step + 1;
    const rewards = shards.flatMap((s) => s.responses.map((r) => r.reward));
    const correct = shards.flatMap((s) => s.responses.map((r) => (r.correct ? 1 : 0)));
    const elapsed = Math.max(1, clock.now() - started);
    const stepMetrics: StepMetrics = {
      rewardMean: mean(rewards),
      passRate: mean(correct),
      entropy: Math.max(0, metrics.entropy),
      clipFraction: Math.min(1, Math.max(0, metrics.clipFraction)),
      approxKl: metrics.approxKl,
      gradNorm: Math.max(0, metrics.gradNorm),
      loss: metrics.loss,
      logProbGap: Math.max(0, metrics.logProbGap),
      ...(metrics.klToReference === undefined ? {} : { klToReference: Math.max(0, metrics.klToReference) }),
      tokensPerSecond: (metrics.tokens * 1000) / elapsed,
      ...samplingSpeed(batch.map((p) => p.group.samplingTokensPerSecond)),
      staleness: mean(batch.map((p) => this.#state.step - p.group.policyVersion)),
      groupsKept: batch.length,
      groupsRejected: this.#state.rejectedSinceStep,
    };
    const observed = observeCurriculum(this.#o.curriculum, this.#state.curriculum as CurriculumState, {
      step,
      entropy: stepMetrics.entropy,
    });
    const finished = step >= spec.totalSteps;

    // durable order: resume folder, then state (the commit point), then cleanup
    await engine.saveCheckpoint(store, resumeFolder(keys, step), {
      step,
      parentStep: this.#state.step,
      withOptimizer: true,
    });
    const events: EmittedEvent[] = [];
    const policyRef = await engine.saveCheckpoint(store, keys.policy(step), { step, withOptimizer: false });
    const stage = observed.state.stageIndex;
    events.push(this.#checkpointEvent(step, stage, "policy", policyRef));
    const stageEnded = observed.transitions.length > 0;
    const fullReason = finished
      ? "final"
      : stageEnded
        ? "stage-end"
        : step % spec.checkpointInterval === 0
          ? "interval"
          : undefined;
    if (fullReason !== undefined) {
      const ref = await engine.saveCheckpoint(store, keys.checkpoint(step), {
        step,
        parentStep: this.#state.step,
        withOptimizer: true,
        publish: true,
      });
      events.push(this.#checkpointEvent(step, stage, fullReason, ref));
    }
    const hintRatio = currentRatio(this.#o.curriculum, observed.state);
    events.push(
      ...stepStatusEvents(
        run,
        { step, stage, hintRatio, metrics: stepMetrics, finished },
        observed.transitions,
      ),
    );
    const batchKeys = batch.map((p) => groupKey(p.group));
    this.#state = {
      ...this.#state,
      step,
      curriculum: observed.state,
      consumed: [...this.#state.consumed, { step, keys: batchKeys }].slice(-CONSUMED_MEMORY_STEPS),
      rejectedSinceStep: 0,
      resumable: true,
      finished,
      lastStepEvents: [...call.events, ...events].map((e) => ({
        type: e.definition.type,
        key: e.key,
        id: e.id ?? "",
        data: e.data,
      })),
      lastStepKeys: [...new Set([...call.keys, ...batchKeys])],
    };
    await this.#saveState();
    this.#uncounted = { rejected: 0, stale: 0 };
    this.#pending = this.#pending.filter((p) => !batchKeys.includes(groupKey(p.group)));
    for (const k of batchKeys) await store.delete(this.#pendingKey(k));
    await removeCheckpointFolder(store, resumeFolder(keys, step - 1));
    const stalePolicy = step - spec.maxStaleness - 2;
    if (stalePolicy >= 1) await removeCheckpointFolder(store, keys.policy(stalePolicy));
    return events;
  }

  #checkpointEvent(
    step: number,
    stage: number,
    reason: CheckpointPublishedData["reason"],
    manifest: ObjectRef,
  ): EmittedEvent {
    const run = this.#o.run;
    return {
      definition: CheckpointPublished,
      data: { run, step, stage, parentStep: this.#state.step, reason, manifest },
      key: run,
      id: `${run}:checkpoint:${step}:${reason}`,
    };
  }

  #rehydrate(stored: LearnerState["lastStepEvents"]): EmittedEvent[] {
    return stored.map((e) => {
      const definition = eventDefinition(e.type);
      if (!definition) throw new Error(`learner state holds an event of unknown type ${e.type}`);
      return { definition, data: e.data, key: e.key, id: e.id };
    });
  }

  async #readShard(ref: ObjectRef): Promise<RolloutShard> {
    const bytes = await this.#o.store.get(ref.key);
    if (bytes === undefined)
      throw new RetryableError("shard_missing", `rollout shard ${ref.key} is not there (yet)`);
    if (sha256Hex(bytes) !== ref.sha256) {
      throw new DeadLetterError("shard_checksum", `rollout shard ${ref.key} does not match its sha256`);
    }
    return parseStoredJson(bytes, ref.key, RolloutShardSchema, "shard_invalid");
  }

  #settings(): PpoSettings {
    const s = this.#o.learner;
    return {
      learningRate: s.learningRate,
      weightDecay: s.weightDecay,
      beta1: s.betas[0] ?? 0.9,
      beta2: s.betas[1] ?? 0.95,
      eps: s.eps,
      gradClip: s.gradClip,
      clipLow: s.clipLow,
      clipHigh: s.clipHigh,
      importanceCap: s.importanceCap,
      klCoef: s.klCoef,
      entropyCoef: s.entropyCoef,
      ...(s.microBatchTokens === undefined ? {} : { microBatchTokens: s.microBatchTokens }),
    };
  }

  #pendingKey(key: string): string {
    return learnerPendingKey(this.#o.keys, key);
  }

  async #saveState(): Promise<void> {
    await this.#o.store.put(learnerStateKey(this.#o.keys), JSON.stringify(this.#state));
  }
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}

/** the mean sampling speed the step's groups reported, when any did */
function samplingSpeed(speeds: readonly (number | undefined)[]): { samplingTokensPerSecond?: number } {
  const known = speeds.filter((s): s is number => s !== undefined);
  return known.length === 0 ? {} : { samplingTokensPerSecond: mean(known) };
}

/** the run.status and curriculum events of a committed step (its checkpoint events come first) */
function stepStatusEvents(
  run: string,
  s: { step: number; stage: number; hintRatio: number; metrics: StepMetrics; finished: boolean },
  transitions: ReturnType<typeof observeCurriculum>["transitions"],
): EmittedEvent[] {
  const { step, stage, hintRatio, finished } = s;
  const events: EmittedEvent[] = [];
  events.push({
    definition: RunStatus,
    data: { run, kind: "step", step, stage, hintRatio, metrics: s.metrics },
    key: run,
    id: `${run}:status:step:${step}`,
  });
  for (const t of transitions) {
    if (t.toStage === null) continue;
    events.push({
      definition: CurriculumStageChanged,
      data: {
        run,
        fromStage: t.fromStage,
        toStage: t.toStage,
        ratio: t.toRatio ?? 0,
        step: t.atStep,
        reason: t.reason,
        ...(t.entropy === undefined ? {} : { entropy: t.entropy }),
      },
      key: run,
      id: `${run}:stage:${t.toStage}`,
    });
    events.push({
      definition: RunStatus,
      data: {
        run,
        kind: "stage",
        step,
        stage: t.toStage,
        hintRatio: t.toRatio ?? 0,
        message: `curriculum stage ${t.fromStage} -> ${t.toStage} (${t.reason}); hint ratio ${t.fromRatio} -> ${t.toRatio}`,
      },
      key: run,
      id: `${run}:status:stage:${t.toStage}`,
    });
  }
  if (finished) {
    events.push({
      definition: RunStatus,
      data: { run, kind: "finished", step, stage, hintRatio, message: `finished ${step} steps` },
      key: run,
      id: `${run}:status:finished`,
    });
  }
  return events;
}

/** each response of each shard as a PPO sample: prompt + response tokens, its advantage on the response */
function ppoSamples(
  shards: readonly RolloutShard[],
  advantages: readonly (readonly number[])[],
): PpoSample[] {
  return shards.flatMap((shard, g) => {
    const promptLength = shard.promptTokens.length;
    return shard.responses.map((response, r) => {
      const tokens = [...shard.promptTokens, ...response.tokens];
      const advantage = advantages[g]?.[r] ?? 0;
      const lossMask = tokens.map((_, i) => (i >= promptLength ? 1 : 0));
      return {
        tokens,
        lossMask,
        advantages: lossMask.map((m) => m * advantage),
        behaviourLogProbs: tokens.map((_, i) =>
          i >= promptLength ? (response.logProbs[i - promptLength] ?? 0) : 0,
        ),
      };
    });
  });
}
