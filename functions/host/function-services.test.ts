import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { ObjectRef, RolloutGroupData } from "../contracts/events.ts";
import { readLearnerProgress } from "../contracts/learner-progress.ts";
import { LearnerSchema, QuestATrainingSpecSchema, RolloutSchema } from "../contracts/questatraining.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import type { RolloutShard } from "../contracts/shards.ts";
import { Learner } from "../learn/learner.ts";
import type { LearnerEngine, PpoSample, PpoStepMetrics } from "../learn/learner-engine.ts";
import { CHECKPOINT_FORMAT, loadCheckpoint } from "../model/checkpoint.ts";
import type { PolicySampler, SampledGroup } from "../model/policy-sampler.ts";
import { StalenessGate } from "../rollout/staleness-gate.ts";
import type { Bus, Consumer, OutgoingMessage, TopicSpec } from "../runtime/bus.ts";
import { ManualClock } from "../runtime/clock.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import {
  ensureInitialCheckpoint,
  gradeFor,
  initialCheckpointRef,
  publishStartEvents,
} from "./function-services.ts";
import { followLearner } from "./rollout-process.ts";

/** A learner engine whose checkpoints are a manifest naming the step: enough to follow the learner. */
class StepEngine implements LearnerEngine {
  async trainPpo(samples: readonly PpoSample[]): Promise<PpoStepMetrics> {
    return {
      loss: 0.1,
      entropy: 1.5,
      clipFraction: 0,
      approxKl: 0,
      gradNorm: 0.5,
      tokens: samples.length,
      logProbGap: 0,
    };
  }

  async saveCheckpoint(store: ObjectStore, prefix: string, meta: { step: number }): Promise<ObjectRef> {
    const put = await store.put(`${prefix}/manifest.json`, JSON.stringify({ step: meta.step }));
    return { uri: store.uri(put.info.key), key: put.info.key, sha256: put.info.sha256, size: put.info.size };
  }

  async loadCheckpoint(store: ObjectStore, prefix: string): Promise<void> {
    if (!(await store.head(`${prefix}/manifest.json`))) throw new Error(`no checkpoint at ${prefix}`);
  }
}

/** records what was published; consumers are not needed here */
class RecordingBus implements Bus {
  readonly topics: string[] = [];
  readonly published: { topic: string; message: OutgoingMessage }[] = [];
  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    this.topics.push(...topics.map((t) => t.name));
  }
  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    for (const message of messages) this.published.push({ topic, message });
  }
  consumer(): Consumer {
    throw new Error("not used");
  }
  async close(): Promise<void> {}
}

/** a sampler that only records which policy it holds */
class RecordingSampler implements PolicySampler {
  version = -1;
  loads: string[] = [];
  async load(_store: ObjectStore, folder: string, version: number): Promise<void> {
    this.loads.push(folder);
    this.version = version;
  }
  encodePrompt(prompt: string): number[] {
    return [...prompt].map((c) => c.charCodeAt(0));
  }
  async sample(): Promise<SampledGroup> {
    return { policyVersion: this.version, responses: [] };
  }
}

const run = "demo";
const keys = new RunKeys(run);

async function group(store: ObjectStore, index: number): Promise<RolloutGroupData> {
  const rewards = [1, 0];
  const shard: RolloutShard = {
    run,
    questionId: `q${index}`,
    stage: 0,
    epoch: 0,
    purpose: "train",
    policyVersion: 0,
    prompt: "1+1?",
    promptTokens: [1, 2],
    answer: "2",
    responses: rewards.map((reward) => ({
      text: "\\boxed{2}",
      tokens: [3],
      logProbs: [-0.5],
      finishReason: "stop" as const,
      reward,
      correct: reward > 0,
      extracted: "2",
      reason: "correct",
    })),
  };
  const body = JSON.stringify(shard);
  const put = await store.put(keys.key("rollouts", `q${index}.json`), body);
  return {
    run,
    questionId: `q${index}`,
    stage: 0,
    purpose: "train",
    epoch: 0,
    policyVersion: 0,
    rewards,
    passCount: 1,
    successRate: 0.5,
    responseTokens: 2,
    shard: { uri: store.uri(put.info.key), key: put.info.key, sha256: sha256Hex(body), size: put.info.size },
  };
}

async function openLearner(store: ObjectStore): Promise<Learner> {
  const engine = new StepEngine();
  if (!(await initialCheckpointRef(store, keys)))
    await engine.saveCheckpoint(store, keys.checkpoint(0), { step: 0 });
  return Learner.open({
    run,
    learner: LearnerSchema.parse({ promptsPerStep: 2, totalSteps: 4, checkpointInterval: 2 }),
    curriculum: [{ ratio: 0.5, until: { steps: 1 } }, { ratio: 0 }],
    engine,
    store,
    keys,
    clock: new ManualClock(0),
    uri: (k) => store.uri(k),
  });
}

describe("publishStartEvents", () => {
  it("announces the initial policy once per run, also across restarts", async () => {
    const store = new MemoryObjectStore();
    const bus = new RecordingBus();
    const learner = await openLearner(store);
    const initial = await initialCheckpointRef(store, keys);
    if (!initial) throw new Error("no initial checkpoint");
    const options = { bus, store, keys, run, topicPrefix: "t", initial, source: "learn", ensureTopics: true };
    expect(await publishStartEvents({ ...options, learner })).toBe(true);
    expect(await publishStartEvents({ ...options, learner: await openLearner(store) })).toBe(false);
    expect(bus.published.map((p) => [p.topic, p.message.headers.ce_id])).toEqual([
      ["t.checkpoints", "demo:checkpoint:0:initial"],
      ["t.status", "demo:status:started"],
    ]);
    expect(bus.topics.sort()).toEqual(["t.checkpoints", "t.status"]);
  });
});

describe("following the learner from the store", () => {
  it("reads its step, stage and pending groups, and moves a rollout worker's policy and gate along", async () => {
    const store = new MemoryObjectStore();
    const learner = await openLearner(store);
    expect(await readLearnerProgress(store, keys)).toEqual({
      step: 0,
      stage: 0,
      finished: false,
      pendingCount: 0,
    });
    for (let i = 0; i < 3; i++) await learner.onGroup(await group(store, i));
    // two groups made step 1 (which ended curriculum stage 0); the third waits for step 2
    expect(await readLearnerProgress(store, keys)).toEqual({
      step: 1,
      stage: 1,
      finished: false,
      pendingCount: 1,
    });

    const sampler = new RecordingSampler();
    const gate = new StalenessGate({ maxStaleness: 0, promptsPerStep: 2, produced: 2, learnerVersion: 0 });
    const services = {
      sampler,
      grade: async () => ({ reward: 0, correct: false, extracted: null, reason: "none" }),
      gate,
      rollout: RolloutSchema.parse({}),
      learner: { groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 } },
      keys,
      stage: { current: 0 },
    };
    sampler.version = 0;
    expect(gate.capacity).toBe(0);
    await followLearner(services, store, keys);
    expect(sampler.loads).toEqual(["demo/policy/step-000001"]);
    expect(gate.learnerVersion).toBe(1);
    expect(gate.capacity).toBe(2);
    expect(services.stage.current).toBe(1);
    // nothing new: no reload
    await followLearner(services, store, keys);
    expect(sampler.loads).toHaveLength(1);
  });
});

describe("ensureInitialCheckpoint", () => {
  const spec = QuestATrainingSpecSchema.parse({
    model: { source: "checkpoint", uri: "s3://models/base" },
    datasets: { train: [{ name: "t", synthetic: { count: 4 } }] },
  });

  async function source(corrupt: boolean) {
    const models = new MemoryObjectStore();
    const files: Record<string, string> = { "config.json": "{}", "model.safetensors": "weights" };
    const manifest = {
      format: CHECKPOINT_FORMAT,
      step: 0,
      parent: null,
      files: Object.fromEntries(
        Object.entries(files).map(([name, body]) => [name, { sha256: sha256Hex(body), size: body.length }]),
      ),
    };
    for (const [name, body] of Object.entries(files)) {
      await models.put(`base/${name}`, corrupt && name === "model.safetensors" ? "tampered" : body);
    }
    await models.put("base/manifest.json", JSON.stringify(manifest));
    return async (uri: string) => models.get(uri.replace("s3://models/", ""));
  }

  it("copies a checkpoint model in, manifest last, and reads it back afterwards", async () => {
    const store = new MemoryObjectStore();
    const open = await source(false);
    const ref = await ensureInitialCheckpoint({ spec, store, keys, open });
    expect(ref.key).toBe("demo/checkpoints/step-000000/manifest.json");
    expect((await store.list("demo/checkpoints/step-000000/")).map((o) => o.key).sort()).toEqual([
      "demo/checkpoints/step-000000/config.json",
      "demo/checkpoints/step-000000/manifest.json",
      "demo/checkpoints/step-000000/model.safetensors",
    ]);
    const unreachable = async () => {
      throw new Error("the source is not read again");
    };
    expect(await ensureInitialCheckpoint({ spec, store, keys, open: unreachable })).toEqual(ref);
  });

  it("refuses files that do not match the manifest, and publishes no manifest", async () => {
    const store = new MemoryObjectStore();
    await expect(ensureInitialCheckpoint({ spec, store, keys, open: await source(true) })).rejects.toThrow(
      "model.safetensors does not match the sha256 in its manifest",
    );
    expect(await initialCheckpointRef(store, keys)).toBeUndefined();
  });
});

describe("ensureInitialCheckpoint from a Hugging Face folder", () => {
  const spec = QuestATrainingSpecSchema.parse({
    model: { source: "huggingface", uri: "s3://models/tiny-qwen2/" },
    datasets: { train: [{ name: "t", synthetic: { count: 4 } }] },
  });
  const fixture = join(import.meta.dirname, "..", "..", "test", "fixtures", "hf", "tiny-qwen2");

  async function models(drop?: string): Promise<(uri: string) => Promise<Uint8Array | undefined>> {
    const files = new Map<string, Uint8Array>();
    for (const name of await readdir(fixture)) {
      if (name !== drop)
        files.set(`s3://models/tiny-qwen2/${name}`, new Uint8Array(await readFile(join(fixture, name))));
    }
    return async (uri) => files.get(uri);
  }

  it("converts the folder into the step-0 checkpoint, with the folder itself under hf/", async () => {
    const store = new MemoryObjectStore();
    const ref = await ensureInitialCheckpoint({ spec, store, keys, open: await models() });
    expect(ref.key).toBe("demo/checkpoints/step-000000/manifest.json");
    const loaded = await loadCheckpoint(store, keys.checkpoint(0));
    expect(loaded.huggingFace?.modelType).toBe("qwen2");
    expect(loaded.manifest.metadata).toEqual({ origin: "huggingface", uri: "s3://models/tiny-qwen2" });
    const keysWritten = (await store.list("demo/checkpoints/step-000000/hf/")).map((o) => o.key);
    expect(keysWritten).toContain("demo/checkpoints/step-000000/hf/model.safetensors");
  });

  it("refuses a bad folder naming the file, and writes nothing to the run", async () => {
    const store = new MemoryObjectStore();
    await expect(
      ensureInitialCheckpoint({ spec, store, keys, open: await models("tokenizer.json") }),
    ).rejects.toThrow(/spec\.model\.uri: no tokenizer\.json in s3:\/\/models\/tiny-qwen2/);
    expect(await store.list("")).toEqual([]);
  });
});

describe("warm start cache key", () => {
  it("is the same for a QuestA run and its baseline arm, so both start from one policy", async () => {
    const { warmStartCacheKey } = await import("./warm-start-cache.ts");
    const { effectiveSpec } = await import("./embedded-run.ts");
    const { QuestATrainingSpecSchema } = await import("../contracts/questatraining.ts");
    const spec = QuestATrainingSpecSchema.parse({ datasets: { train: [{ name: "t", synthetic: {} }] } });
    expect(warmStartCacheKey(effectiveSpec(spec, { baseline: true }))).toBe(
      warmStartCacheKey(effectiveSpec(spec, {})),
    );
    expect(warmStartCacheKey(effectiveSpec(spec, { seed: 9 }))).not.toBe(warmStartCacheKey(spec));
  });
});

describe("gradeFor", () => {
  const unmarked = "Adding the two parts gives 12 + 13 = 25.";
  const marked = "Adding the two parts, the answer is $\\boxed{25}$.";

  it("rewards only marked answers and reports free-form ones too, by default", async () => {
    const spec = QuestATrainingSpecSchema.parse({ datasets: { train: [{ name: "t", synthetic: {} }] } });
    expect(spec.rollout.gradingMode).toBe("strict");
    expect(spec.evaluation.gradingMode).toBe("lenient");
    const reward = gradeFor(spec, "reward");
    const report = gradeFor(spec, "evaluation");
    expect(await reward("25", unmarked)).toMatchObject({ reward: 0, correct: false, reason: "no_answer" });
    expect(await reward("25", marked)).toMatchObject({ reward: 5, correct: true });
    expect(await report("25", unmarked)).toMatchObject({ reward: 5, correct: true, extracted: "25" });
  });

  it("follows the modes the spec sets", async () => {
    const spec = QuestATrainingSpecSchema.parse({
      datasets: { train: [{ name: "t", synthetic: {} }] },
      rollout: { gradingMode: "lenient" },
      evaluation: { gradingMode: "strict" },
    });
    expect(await gradeFor(spec, "reward")("25", unmarked)).toMatchObject({ correct: true });
    expect(await gradeFor(spec, "evaluation")("25", unmarked)).toMatchObject({ correct: false });
  });
});
