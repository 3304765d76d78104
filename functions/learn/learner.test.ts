import { describe, expect, it } from "vitest";
import type { ObjectRef, RolloutGroupData } from "../contracts/events.ts";
import { LearnerSchema } from "../contracts/questatraining.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import type { RolloutShard } from "../contracts/shards.ts";
import { ManualClock } from "../runtime/clock.ts";
import { InputError, UnavailableError } from "../runtime/errors.ts";
import type { EmittedEvent } from "../runtime/event-definition.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { Learner } from "./learner.ts";
import type { LearnerEngine, PpoSample, PpoSettings, PpoStepMetrics } from "./learner-engine.ts";

/** A policy whose only parameter counts the samples it was trained on: enough to see lost or repeated steps. */
class CountingEngine implements LearnerEngine {
  trainedSamples = 0;
  steps: number[] = [];
  lastSettings: PpoSettings | undefined;
  lastBatch: readonly PpoSample[] = [];

  async trainPpo(samples: readonly PpoSample[], settings: PpoSettings): Promise<PpoStepMetrics> {
    this.trainedSamples += samples.length;
    this.lastSettings = settings;
    this.lastBatch = samples;
    return {
      loss: 0.1,
      entropy: 1.5,
      clipFraction: 0.05,
      approxKl: 0.001,
      gradNorm: 0.5,
      tokens: samples.length * 4,
      logProbGap: 0.02,
    };
  }

  async saveCheckpoint(store: ObjectStore, prefix: string, meta: { step: number }): Promise<ObjectRef> {
    const body = JSON.stringify({ step: meta.step, trainedSamples: this.trainedSamples });
    const put = await store.put(`${prefix}/manifest.json`, body);
    return { uri: store.uri(put.info.key), key: put.info.key, sha256: put.info.sha256, size: put.info.size };
  }

  async loadCheckpoint(store: ObjectStore, prefix: string): Promise<void> {
    const bytes = await store.get(`${prefix}/manifest.json`);
    if (!bytes) throw new Error(`no checkpoint at ${prefix}`);
    this.trainedSamples = (
      JSON.parse(new TextDecoder().decode(bytes)) as { trainedSamples: number }
    ).trainedSamples;
  }
}

const run = "r1";
const keys = new RunKeys("");

async function makeGroup(
  store: ObjectStore,
  index: number,
  rewards: number[],
  policyVersion = 0,
): Promise<RolloutGroupData> {
  const shard: RolloutShard = {
    run,
    questionId: `q${index}`,
    stage: 0,
    epoch: 0,
    purpose: "train",
    policyVersion,
    prompt: "1+1?",
    promptTokens: [5, 6, 7],
    answer: "2",
    responses: rewards.map((reward) => ({
      text: reward > 0 ? "\\boxed{2}" : "\\boxed{3}",
      tokens: [8, 9],
      logProbs: [-0.5, -0.25],
      finishReason: "stop" as const,
      reward,
      correct: reward > 0,
      extracted: reward > 0 ? "2" : "3",
      reason: reward > 0 ? "correct" : "mismatch",
    })),
  };
  const body = JSON.stringify(shard);
  const put = await store.put(`rollouts/q${index}.json`, body);
  const passCount = rewards.filter((r) => r > 0).length;
  return {
    run,
    questionId: `q${index}`,
    stage: 0,
    purpose: "train",
    epoch: 0,
    policyVersion,
    rewards,
    passCount,
    successRate: passCount / rewards.length,
    responseTokens: rewards.length * 2,
    shard: { uri: store.uri(put.info.key), key: put.info.key, sha256: sha256Hex(body), size: put.info.size },
  };
}

async function setup(store: ObjectStore, engine: CountingEngine, learnerInput: Record<string, unknown> = {}) {
  if (!(await store.head("checkpoints/step-000000/manifest.json"))) {
    await engine.saveCheckpoint(store, keys.checkpoint(0), { step: 0 });
  }
  return Learner.open({
    run,
    learner: LearnerSchema.parse({
      promptsPerStep: 2,
      totalSteps: 4,
      checkpointInterval: 2,
      ...learnerInput,
    }),
    curriculum: [{ ratio: 0.5, until: { steps: 2 } }, { ratio: 0.25 }],
    engine,
    store,
    keys,
    clock: new ManualClock(0),
    uri: (k) => store.uri(k),
  });
}

function types(events: readonly EmittedEvent[]): string[] {
  return events.map((e) => `${e.definition.type.split(".").slice(2, -1).join(".")}:${e.id ?? ""}`);
}

describe("Learner", () => {
  it("refuses a KL penalty at start when its engine cannot score the reference policy, and loads the initial policy as the reference when it can", async () => {
    const store = new MemoryObjectStore();
    const refused = await setup(store, new CountingEngine(), { klCoef: 0.1 }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(InputError);
    expect((refused as InputError).issues[0]!.path).toBe("spec.learner.klCoef");

    class ReferenceEngine extends CountingEngine {
      references: string[] = [];
      async loadReference(_store: ObjectStore, prefix: string): Promise<void> {
        this.references.push(prefix);
      }
    }
    const engine = new ReferenceEngine();
    const learner = await setup(store, engine, { klCoef: 0.1 });
    for (let i = 0; i < 2; i++) await learner.onGroup(await makeGroup(store, i, [5, 0, 5, 0]));
    expect(engine.trainedSamples).toBe(8);
    // resumed after step 1: the reference is still step 0, not the resume folder
    await setup(store, engine, { klCoef: 0.1 });
    expect(engine.references).toEqual([keys.checkpoint(0), keys.checkpoint(0)]);
    expect(engine.lastSettings!.klCoef).toBe(0.1);
  });

  it("steps every promptsPerStep accepted groups, follows the curriculum and finishes", async () => {
    const store = new MemoryObjectStore();
    const engine = new CountingEngine();
    const learner = await setup(store, engine);
    const emitted: EmittedEvent[] = [];
    // all-wrong and all-right groups are dropped by the success-rate filter
    expect(await learner.onGroup(await makeGroup(store, 100, [0, 0]))).toEqual([]);
    expect(await learner.onGroup(await makeGroup(store, 101, [5, 5]))).toEqual([]);
    for (let i = 0; i < 8; i++) {
      const group = await makeGroup(store, i, [5, 0]);
      // the rollout engines' speeds (reported by some groups) average into the step's metrics
      const speed =
        i === 0 ? { samplingTokensPerSecond: 1000 } : i === 1 ? { samplingTokensPerSecond: 3000 } : {};
      emitted.push(...(await learner.onGroup({ ...group, ...speed })));
    }
    expect(learner.step).toBe(4);
    expect(learner.finished).toBe(true);
    expect(engine.trainedSamples).toBe(16);
    const names = types(emitted);
    expect(names.filter((n) => n.startsWith("run.status:r1:status:step"))).toHaveLength(4);
    expect(names).toContain("curriculum.stage:r1:stage:1");
    expect(names).toContain("checkpoint.published:r1:checkpoint:2:stage-end");
    expect(names).toContain("checkpoint.published:r1:checkpoint:4:final");
    expect(names).toContain("run.status:r1:status:finished");
    const first = emitted.find((e) => e.id === "r1:status:step:1");
    expect(first?.data).toMatchObject({
      step: 1,
      stage: 0,
      hintRatio: 0.5,
      metrics: { groupsRejected: 2, passRate: 0.5, samplingTokensPerSecond: 2000 },
    });
    const second = emitted.find((e) => e.id === "r1:status:step:2")?.data as { metrics: object };
    expect(second.metrics).not.toHaveProperty("samplingTokensPerSecond");
    // advantages: batch-normalised rewards broadcast to response tokens only
    const sample = engine.lastBatch[0];
    expect(sample?.lossMask).toEqual([0, 0, 0, 1, 1]);
    expect(sample?.advantages[0]).toBe(0);
    expect(Math.abs(sample?.advantages[3] ?? 0)).toBeCloseTo(1, 4);
    expect(sample?.behaviourLogProbs).toEqual([0, 0, 0, -0.5, -0.25]);
    expect(engine.lastSettings).toMatchObject({ learningRate: 2e-5, clipLow: 0.2, importanceCap: 5 });
    // groups after the end are ignored
    expect(await learner.onGroup(await makeGroup(store, 50, [5, 0]))).toEqual([]);
  });

  it("with zero steps only evaluates: announces the initial policy as finished and trains nothing", async () => {
    const store = new MemoryObjectStore();
    const engine = new CountingEngine();
    const learner = await setup(store, engine, { totalSteps: 0 });
    expect(learner.finished).toBe(true);
    const initial = {
      uri: "mem://checkpoints/step-000000/manifest.json",
      key: "k",
      sha256: "0".repeat(64),
      size: 1,
    };
    const start = learner.startEvents(initial);
    expect(types(start)).toEqual([
      "checkpoint.published:r1:checkpoint:0:initial",
      "run.status:r1:status:finished",
    ]);
    expect(start[1]?.data).toMatchObject({ kind: "finished", step: 0 });
    expect(await learner.onGroup(await makeGroup(store, 1, [5, 0]))).toEqual([]);
    expect(engine.trainedSamples).toBe(0);
  });

  it("resumes after a crash with no step lost or repeated, and drops redelivered groups", async () => {
    const store = new MemoryObjectStore();
    const engineA = new CountingEngine();
    const a = await setup(store, engineA);
    const groups = await Promise.all(Array.from({ length: 8 }, (_, i) => makeGroup(store, i, [5, 0])));
    const stepsSeen: number[] = [];
    const record = (events: readonly EmittedEvent[]) => {
      for (const e of events)
        if (e.id?.startsWith("r1:status:step:")) stepsSeen.push(Number(e.id.split(":").pop()));
    };
    for (const g of groups.slice(0, 3)) record(await a.onGroup(g));
    expect(a.step).toBe(1);
    // crash: the process dies; group 2 was persisted as pending, group 3 never arrived

    const engineB = new CountingEngine();
    const b = await setup(store, engineB);
    expect(b.step).toBe(1);
    expect(b.pendingCount).toBe(1);
    expect(engineB.trainedSamples).toBe(4);
    // at-least-once: groups 1 and 2 are delivered again, then the rest
    record(await b.onGroup(groups[1] as RolloutGroupData));
    record(await b.onGroup(groups[2] as RolloutGroupData));
    expect(b.pendingCount).toBe(1);
    for (const g of groups.slice(3)) record(await b.onGroup(g));
    expect(b.step).toBe(4);
    // the redelivered last group of step 1 re-emits step 1's events under the same ids (consumers dedupe)
    expect(stepsSeen).toEqual([1, 1, 2, 3, 4]);
    expect([...new Set(stepsSeen)]).toEqual([1, 2, 3, 4]);
    expect(engineB.trainedSamples).toBe(16);
  });

  it("re-emits the last step's events when its last group is redelivered (events lost in a crash)", async () => {
    const store = new MemoryObjectStore();
    const learner = await setup(store, new CountingEngine());
    const g0 = await makeGroup(store, 0, [5, 0]);
    const g1 = await makeGroup(store, 1, [5, 0]);
    await learner.onGroup(g0);
    const events = await learner.onGroup(g1);
    const again = await learner.onGroup(g1);
    expect(again.map((e) => e.id)).toEqual(events.map((e) => e.id));
    expect(learner.step).toBe(1);
  });

  it("after a restart, emits the last step's events again first, even when another group arrives before the one that ran it", async () => {
    const store = new MemoryObjectStore();
    const a = await setup(store, new CountingEngine());
    const groups = await Promise.all(Array.from({ length: 4 }, (_, i) => makeGroup(store, i, [5, 0])));
    await a.onGroup(groups[0] as RolloutGroupData);
    const lost = types(await a.onGroup(groups[1] as RolloutGroupData));
    expect(lost).toContain("run.status:r1:status:step:1");
    // the process dies before step 1's events are published; on restart another partition's
    // groups come first and run step 2 before group 1 is redelivered
    const b = await setup(store, new CountingEngine());
    expect(types(await b.onGroup(groups[2] as RolloutGroupData))).toEqual(lost);
    const step2 = types(await b.onGroup(groups[3] as RolloutGroupData));
    expect(step2).toContain("run.status:r1:status:step:2");
    expect(step2).not.toContain("run.status:r1:status:step:1");
    // group 1's redelivery finds it trained on: nothing more, and it is never trained again
    expect(await b.onGroup(groups[1] as RolloutGroupData)).toEqual([]);
    expect(b.step).toBe(2);
  });

  it("records every event of a call that runs several steps: a crash before they are published loses none", async () => {
    const store = new MemoryObjectStore();
    const groups = await Promise.all(Array.from({ length: 5 }, (_, i) => makeGroup(store, i, [5, 0])));
    const steps = (events: readonly EmittedEvent[]) =>
      types(events).filter((t) => t.startsWith("run.status:r1:status:step:"));
    // three groups wait as pending for a step of 4; the learner restarts with steps of 1, so the
    // next group runs four steps in one call
    const a = await setup(store, new CountingEngine(), { promptsPerStep: 4, totalSteps: 10 });
    for (const g of groups.slice(0, 3)) expect(await a.onGroup(g)).toEqual([]);
    const b = await setup(store, new CountingEngine(), { promptsPerStep: 1, totalSteps: 10 });
    const four = steps(await b.onGroup(groups[3] as RolloutGroupData));
    expect(four).toEqual([1, 2, 3, 4].map((n) => `run.status:r1:status:step:${n}`));
    // the process dies before publishing them: the next one emits all four again, then its own
    const c = await setup(store, new CountingEngine(), { promptsPerStep: 1, totalSteps: 10 });
    expect(steps(await c.onGroup(groups[4] as RolloutGroupData))).toEqual([
      ...four,
      "run.status:r1:status:step:5",
    ]);
  });

  it("drops groups more than maxStaleness versions old", async () => {
    const store = new MemoryObjectStore();
    const learner = await setup(store, new CountingEngine(), { maxStaleness: 0 });
    await learner.onGroup(await makeGroup(store, 0, [5, 0]));
    await learner.onGroup(await makeGroup(store, 1, [5, 0]));
    expect(learner.step).toBe(1);
    expect(await learner.onGroup(await makeGroup(store, 2, [5, 0], 0))).toEqual([]);
    expect(learner.pendingCount).toBe(0);
  });
});

/** a store that fails every call while `down` is set, as an unreachable S3 does */
class FlakyStore implements ObjectStore {
  down = false;
  constructor(readonly inner: MemoryObjectStore) {}
  #check(): void {
    if (this.down) throw new UnavailableError("s3_unavailable", "s3: connect ECONNREFUSED");
  }
  async put(...args: Parameters<ObjectStore["put"]>) {
    this.#check();
    return this.inner.put(...args);
  }
  async get(key: string) {
    this.#check();
    return this.inner.get(key);
  }
  async head(key: string) {
    this.#check();
    return this.inner.head(key);
  }
  async list(prefix: string) {
    this.#check();
    return this.inner.list(prefix);
  }
  async delete(key: string) {
    this.#check();
    return this.inner.delete(key);
  }
  uri(key: string) {
    return this.inner.uri(key);
  }
}

describe("Learner during a store outage", () => {
  it("a retried group after a failure part-way neither inflates counters nor skips or repeats a step", async () => {
    const inner = new MemoryObjectStore();
    const store = new FlakyStore(inner);
    const engine = new CountingEngine();
    const learner = await setup(store, engine);
    // a rejected group during the outage: only counted (no store call), once
    const rejected = await makeGroup(inner, 50, [0, 0]);
    let failures = 0;
    const retried = async (group: RolloutGroupData, failAt: () => void) => {
      for (;;) {
        failAt();
        try {
          return await learner.onGroup(group);
        } catch (error) {
          expect(error).toBeInstanceOf(UnavailableError);
          failures++;
          store.down = false;
        }
      }
    };
    store.down = true;
    expect(await learner.onGroup(rejected)).toEqual([]);
    store.down = false;
    // the step's second group: the engine steps, then the store goes down before the step commits
    await learner.onGroup(await makeGroup(inner, 1, [5, 0]));
    const second = await makeGroup(inner, 2, [0, 5]);
    const original = engine.saveCheckpoint.bind(engine);
    let checkpointsUntilOutage = 1;
    engine.saveCheckpoint = async (s, prefix, meta) => {
      if (checkpointsUntilOutage-- === 0) store.down = true;
      return original(s, prefix, meta);
    };
    const events = await retried(second, () => {});
    // the step's commit failed once; the rejected group never touched the store
    expect(failures).toBe(1);
    expect(types(events)).toContain("run.status:r1:status:step:1");
    expect(learner.step).toBe(1);
    // trained once on 2 groups x 2 samples: the failed attempt's update was rolled back first
    expect(engine.trainedSamples).toBe(4);
    const state = JSON.parse(new TextDecoder().decode(await inner.get("learner/state.json")));
    expect(state.consumed).toEqual([{ step: 1, keys: ["q1.s0.e0", "q2.s0.e0"] }]);
    expect(state.rejectedSinceStep).toBe(0);
    const metrics = events.find((e) => e.id === "r1:status:step:1")!.data as {
      metrics: { groupsRejected: number };
    };
    expect(metrics.metrics.groupsRejected).toBe(1);
  });
});
