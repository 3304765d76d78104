import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { QuestionAugmented, type QuestionAugmentedData, RolloutGroup } from "../contracts/events.ts";
import { LearnerSchema, RolloutSchema } from "../contracts/questatraining.ts";
import { type RolloutServices, rolloutFunction } from "../rollout/handler.ts";
import { StalenessGate } from "../rollout/staleness-gate.ts";
import { parseBinaryMessage, toBinaryMessage } from "../runtime/cloudevents.ts";
import { DeadLetterError, UnavailableError } from "../runtime/errors.ts";
import { cloudEvent } from "../runtime/event-definition.ts";
import { capturingLogger, type Logger, silentLogger } from "../runtime/logger.ts";
import { MemoryBus } from "../runtime/memory-bus.ts";
import { bindFunction } from "../runtime/runner.ts";
import { MemoryVllmEndpoint } from "./vllm-memory-endpoint.ts";
import { VllmPolicySampler } from "./vllm-policy-sampler.ts";
import { tinyVllmRun } from "./vllm-test-support.ts";
import { VllmWeightSync } from "./vllm-weight-sync.ts";

const settings = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 12 };
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setup(
  endpoints: MemoryVllmEndpoint[],
  options: { loadTimeoutMs?: number; logger?: Logger; onSleep?: () => Promise<void> } = {},
) {
  const run = await tinyVllmRun();
  const modelDir = await mkdtemp(join(tmpdir(), "questa-vllm-models-"));
  dirs.push(modelDir);
  const sleeps: number[] = [];
  const sampler = new VllmPolicySampler({
    endpoints: async () => endpoints,
    prompt: { format: "chat", enableThinking: true },
    sleep: async (ms) => {
      sleeps.push(ms);
      await options.onSleep?.();
    },
    pollMs: 10,
    loadTimeoutMs: options.loadTimeoutMs ?? 1000,
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const sync = new VllmWeightSync({
    endpoints: async () => endpoints,
    modelDir,
    store: run.store,
    keys: run.keys,
  });
  await sampler.load(run.store, run.keys.checkpoint(0), 0);
  return { run, sampler, sync, sleeps };
}

describe("VllmPolicySampler", () => {
  it("samples a group in one request: the responses' tokens, raw log-probs, text without the stop token, the served version", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { sampler } = await setup([server]);
    const prompt = sampler.encodePrompt("What is 7+5*3?");
    // the chat template of the folder (ChatML), as OnnxPolicySampler renders it
    expect(prompt.slice(0, 1)).toEqual([1]);
    const group = await sampler.sample(prompt, 5, settings, 42);
    expect(group.policyVersion).toBe(0);
    expect(group.responses).toHaveLength(5);
    expect(server.calls.filter((c) => c === "complete")).toHaveLength(1);
    for (const r of group.responses) {
      expect(r.logProbs).toHaveLength(r.tokens.length);
      expect(r.tokens.length).toBeLessThanOrEqual(12);
      if (r.finishReason === "stop") expect([0, 2]).toContain(r.tokens.at(-1));
    }
    // the same seed draws the same group; another seed another one
    expect((await sampler.sample(prompt, 5, settings, 42)).responses).toEqual(group.responses);
    expect((await sampler.sample(prompt, 5, settings, 43)).responses).not.toEqual(group.responses);
  });

  it("samples a group again when a weight reload cuts it short, and gives it the new version", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { run, sampler, sync } = await setup([server]);
    const manifest = await run.publishPolicy(1);
    await run.setLearnerStep(1);
    let reloads = 0;
    server.duringCompletion = async () => {
      if (reloads++ > 0) return;
      await sync.onCheckpoint({ step: 1, manifest: { key: manifest } as never });
    };
    const group = await sampler.sample(sampler.encodePrompt("1+1?"), 3, settings, 7);
    expect(group.policyVersion).toBe(1);
    expect(server.calls.filter((c) => c === "complete")).toHaveLength(2);
    expect(server.tag).toMatch(/^1:[0-9a-f]+$/);
  });

  it("spreads over the servers, skips one that is down or behind, and waits (UnavailableError) when none can sample", async () => {
    const a = new MemoryVllmEndpoint("http://a:8000");
    const b = new MemoryVllmEndpoint("http://b:8000");
    const { run, sampler, sync } = await setup([a, b]);
    a.down = true;
    const prompt = sampler.encodePrompt("1+1?");
    expect((await sampler.sample(prompt, 2, settings, 1)).policyVersion).toBe(0);
    expect(b.calls).toContain("complete");

    // b reloads policy 1 while a is down; load(1) returns once a server serves it
    const manifest = await run.publishPolicy(1);
    await run.setLearnerStep(1);
    await sync.onCheckpoint({ step: 1, manifest: { key: manifest } as never });
    await sampler.load(run.store, run.keys.policy(1), 1);
    expect(sampler.version).toBe(1);
    // a is back, restarted on the initial model: behind, so b samples
    a.down = false;
    const before = a.calls.length;
    expect((await sampler.sample(prompt, 2, settings, 2)).policyVersion).toBe(1);
    expect(a.calls.slice(before)).not.toContain("complete");
    // the sync gives the restarted server the policy again; then it samples too
    await sync.reconcile();
    expect(a.tag).toBe(b.tag);

    b.refuseNext = 100;
    a.down = true;
    await expect(sampler.sample(prompt, 2, settings, 3)).rejects.toBeInstanceOf(UnavailableError);
  });

  it("load waits for a server to serve the version, and gives up as unavailable when none does", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { run, sampler, sleeps } = await setup([server], { loadTimeoutMs: 0 });
    await run.publishPolicy(1);
    // asked again while waiting (the rollout process asks every second): the same wait
    const first = sampler.load(run.store, run.keys.policy(1), 1);
    expect(sampler.load(run.store, run.keys.policy(1), 1)).toBe(first);
    await expect(first).rejects.toThrow(/no vLLM server serves policy 1/);
    expect(sampler.version).toBe(0);
    expect(sleeps).toEqual([]);
  });

  it("load says once that no server answers while it waits, and once that one answers again", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { logger, records } = capturingLogger("info");
    let bringBack: (() => Promise<void>) | undefined;
    let polls = 0;
    const { run, sampler, sync } = await setup([server], {
      logger,
      onSleep: async () => {
        if (++polls === 3) await bringBack?.();
      },
    });
    const manifest = await run.publishPolicy(1);
    await run.setLearnerStep(1);
    // the server restarts (down, then back on its initial model); the sync gives it policy 1
    server.down = true;
    bringBack = async () => {
      server.down = false;
      await sync.onCheckpoint({ step: 1, manifest: { key: manifest } as never });
    };
    await sampler.load(run.store, run.keys.policy(1), 1);
    expect(sampler.version).toBe(1);
    expect(polls).toBe(3);
    const said = records.map((r) => r.msg);
    expect(said.filter((m) => m?.startsWith("vllm_unavailable:"))).toEqual([
      "vllm_unavailable: no vLLM server answers; policy 1 loads once one serves it (http://a:8000 is down)",
    ]);
    expect(said.filter((m) => m === "a vLLM server answers again")).toHaveLength(1);
  });

  it("refuses what vLLM cannot sample: a prompt longer than the server's context, a temperature above 2", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000", { maxModelLength: 8 });
    const { sampler } = await setup([server]);
    const prompt = sampler.encodePrompt("a long prompt, longer than eight tokens");
    await expect(sampler.sample(prompt, 2, settings, 1)).rejects.toThrow(/--max-model-len\) is 8/);
    await expect(sampler.sample([1], 2, { ...settings, temperature: 3 }, 1)).rejects.toBeInstanceOf(
      DeadLetterError,
    );
  });
});

describe("rollout on vLLM servers that fail", () => {
  it("loses and duplicates no group when the server refuses requests and restarts mid-request", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { run, sampler } = await setup([server]);
    const bus = new MemoryBus({ defaultPartitions: 4 });
    const services: RolloutServices = {
      sampler,
      grade: async () => ({ reward: 0, correct: false, extracted: null, reason: "x" }),
      gate: new StalenessGate({ maxStaleness: 100, promptsPerStep: 1 }),
      rollout: RolloutSchema.parse({ engine: "vllm", groupSize: 3, maxNewTokens: 8 }),
      learner: LearnerSchema.parse({}),
      keys: run.keys,
      stage: { current: 0 },
    };
    const runner = bindFunction(rolloutFunction, {
      bus,
      store: run.store,
      run: "run",
      topicPrefix: "t",
      logger: silentLogger(),
      sleep: async () => {},
      services,
    });
    // every third request: the server restarts while sampling; and it refuses the next two
    let requests = 0;
    server.duringCompletion = async () => {
      if (++requests % 3 === 0) {
        server.restart();
        server.refuseNext = 2;
      }
    };
    await runner.start();
    const ids = Array.from({ length: 8 }, (_, i) => `q${i}`);
    for (const id of ids) {
      const data: QuestionAugmentedData = {
        run: "run",
        questionId: id,
        source: "t",
        stage: 0,
        ratio: 0.5,
        purpose: "train",
        prompt: `${id}: 1+1=?`,
        hinted: true,
        hintChars: 1,
        answer: "2",
        samples: 3,
        epoch: 0,
      };
      const event = cloudEvent({
        id: `e-${id}`,
        run: "run",
        source: "test",
        type: QuestionAugmented.type,
        time: new Date(0).toISOString(),
        key: id,
        data,
      });
      await bus.publish(`t.${QuestionAugmented.topic}`, [toBinaryMessage(event)]);
    }
    const groups = () =>
      bus.messages(`t.${RolloutGroup.topic}`).flatMap((m) => {
        const parsed = parseBinaryMessage(m);
        return parsed.ok ? [(parsed.value.data as { questionId: string }).questionId] : [];
      });
    for (let i = 0; i < 400 && groups().length < ids.length; i++) await new Promise((r) => setTimeout(r, 10));
    await runner.stop();
    expect(groups().sort()).toEqual(ids);
    expect(bus.messages("t.dead-letter")).toEqual([]);
    expect(requests).toBeGreaterThan(ids.length);
  });
});
