import { describe, expect, it, vi } from "vitest";
import type { QuestionAugmentedData } from "../contracts/events.ts";
import { LearnerSchema, RolloutSchema } from "../contracts/questatraining.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import { RolloutShardSchema } from "../contracts/shards.ts";
import type { PolicySampler, SampledGroup } from "../model/policy-sampler.ts";
import { systemClock } from "../runtime/clock.ts";
import { silentLogger } from "../runtime/logger.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { seededRandom } from "../runtime/random.ts";
import { handleQuestion, type RolloutServices } from "./handler.ts";
import { StalenessGate } from "./staleness-gate.ts";

/** Answers "2" on even samples and "3" on odd ones; counts how often it was asked. */
class AlternatingSampler implements PolicySampler {
  version = 0;
  calls = 0;
  async load(_s: ObjectStore, _f: string, version: number) {
    this.version = version;
  }
  encodePrompt(prompt: string) {
    return [...prompt].map((c) => c.charCodeAt(0));
  }
  async sample(_p: readonly number[], samples: number): Promise<SampledGroup> {
    this.calls++;
    const responses = Array.from({ length: samples }, (_, i) => ({
      text: `\\boxed{${i % 2 === 0 ? 2 : 3}}`,
      tokens: [10 + i],
      logProbs: [-0.7],
      finishReason: "stop" as const,
    }));
    return { policyVersion: this.version, responses, engineTokensPerSecond: 1234.5 };
  }
}

const question = (id: string, overrides: Partial<QuestionAugmentedData> = {}): QuestionAugmentedData => ({
  run: "r",
  questionId: id,
  source: "t",
  stage: 0,
  ratio: 0.5,
  purpose: "train",
  prompt: "1+1=?\n\n## Hint.1+1=",
  hinted: true,
  hintChars: 4,
  answer: "2",
  samples: 4,
  epoch: 0,
  ...overrides,
});

function setup(gate = new StalenessGate({ maxStaleness: 0, promptsPerStep: 1 })) {
  const sampler = new AlternatingSampler();
  const services: RolloutServices = {
    sampler,
    grade: async (gold, response) => {
      const extracted = response.match(/\\boxed\{(\d+)\}/)?.[1] ?? null;
      return { reward: extracted === gold ? 5 : 0, correct: extracted === gold, extracted, reason: "x" };
    },
    gate,
    rollout: RolloutSchema.parse({}),
    learner: LearnerSchema.parse({}),
    keys: new RunKeys(""),
    stage: { current: 0 },
  };
  const controller = new AbortController();
  const deps = {
    store: new MemoryObjectStore(),
    clock: systemClock,
    rng: seededRandom(1),
    logger: silentLogger(),
    run: "r",
    signal: controller.signal,
    services,
  };
  return { sampler, deps, gate, controller };
}

describe("rollout", () => {
  it("grades a group, writes its shard and emits rollout.group with a verifiable claim check", async () => {
    const { deps } = setup();
    const [event] = await handleQuestion(question("q1"), "e1", deps);
    const data = event?.data as {
      rewards: number[];
      passCount: number;
      successRate: number;
      shard: { key: string };
    };
    expect(data.rewards).toEqual([5, 0, 5, 0]);
    expect(data.passCount).toBe(2);
    expect(data.successRate).toBe(0.5);
    // the engine's speed travels with the group to the learner's step metrics (run.status)
    expect(event?.data).toMatchObject({ samplingTokensPerSecond: 1234.5 });
    const shard = RolloutShardSchema.parse(
      JSON.parse(new TextDecoder().decode(await deps.store.get(data.shard.key))),
    );
    expect(shard.responses.map((r) => r.logProbs)).toEqual([[-0.7], [-0.7], [-0.7], [-0.7]]);
    expect(shard.prompt).toBe("1+1=?\n\n## Hint.1+1=");
  });

  it("answers a redelivered question from its stored shard instead of sampling again", async () => {
    const { deps, sampler } = setup();
    const first = await handleQuestion(question("q1"), "e1", deps);
    const again = await handleQuestion(question("q1"), "e1", deps);
    expect(sampler.calls).toBe(1);
    expect(again[0]?.data).toEqual(first[0]?.data);
  });

  it("waits at the staleness gate until the learner advances, and skips questions of an ended stage", async () => {
    const { deps, gate } = setup();
    await handleQuestion(question("q1"), "e1", deps);
    expect(gate.capacity).toBe(0);
    let done = false;
    const waiting = handleQuestion(question("q2"), "e2", deps).then(() => {
      done = true;
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 10_000, interval: 1 });
    expect(done).toBe(false);
    gate.observeLearner(1);
    await waiting;
    expect(done).toBe(true);
    // probes are not gated
    expect(await handleQuestion(question("p1", { purpose: "probe" }), "e3", deps)).toHaveLength(1);
    deps.services.stage.current = 1;
    expect(await handleQuestion(question("q3"), "e4", deps)).toEqual([]);
  });

  it("records the policy version that sampled the group, not one loaded while it was graded", async () => {
    const { deps, sampler } = setup();
    sampler.version = 3;
    const sample = sampler.sample.bind(sampler);
    sampler.sample = async (p: readonly number[], n: number) => {
      const group = await sample(p, n);
      sampler.version = 4; // a checkpoint loaded while the group is graded and stored
      return group;
    };
    const [event] = await handleQuestion(question("q1"), "e1", deps);
    expect((event!.data as { policyVersion: number }).policyVersion).toBe(3);
  });

  it("holds the gate while a question is sampled: concurrent questions cannot overshoot it", async () => {
    const { deps, sampler } = setup();
    const sample = sampler.sample.bind(sampler);
    const pending: { release: () => void; fail: (e: Error) => void }[] = [];
    sampler.sample = (p: readonly number[], n: number) =>
      new Promise((resolve, reject) => {
        pending.push({ release: () => resolve(sample(p, n)), fail: reject });
      });
    const { gate } = deps.services;
    const waitFor = (check: () => void) => vi.waitFor(check, { timeout: 10_000, interval: 1 });
    // capacity for one group: q1 samples, q2 and q3 wait at the gate
    const q1 = handleQuestion(question("q1"), "e1", deps);
    const q2 = handleQuestion(question("q2"), "e2", deps);
    const q3 = handleQuestion(question("q3"), "e3", deps);
    await waitFor(() => expect(gate.waiting).toBe(2));
    expect(pending).toHaveLength(1);
    // q1 fails: its unit of capacity returns and one waiting question goes on
    pending[0]!.fail(new Error("engine failed"));
    await expect(q1).rejects.toThrow("engine failed");
    await waitFor(() => expect(pending).toHaveLength(2));
    expect(gate.waiting).toBe(1);
    pending[1]!.release();
    await Promise.race([q2, q3]);
    // that group counted: the bound is reached, the last question waits for the learner again
    await waitFor(() => expect(gate.waiting).toBe(1));
    expect(pending).toHaveLength(2);
    gate.observeLearner(1);
    await waitFor(() => expect(pending).toHaveLength(3));
    pending[2]!.release();
    expect((await Promise.all([q2, q3])).map((events) => events.length)).toEqual([1, 1]);
  });
});
