import { describe, expect, it } from "vitest";
import type { CheckpointPublishedData } from "../contracts/events.ts";
import { EvaluationSchema } from "../contracts/questatraining.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import { EvaluationProblemResultSchema } from "../contracts/shards.ts";
import type { PolicySampler, SampledGroup, SamplingSettings } from "../model/policy-sampler.ts";
import { systemClock } from "../runtime/clock.ts";
import { silentLogger } from "../runtime/logger.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { seededRandom } from "../runtime/random.ts";
import {
  type EvaluateServices,
  evaluateCheckpoint,
  evaluationEventKey,
  evaluationPrompt,
  shouldEvaluate,
} from "./handler.ts";

/** A policy that answers each problem's sum correctly on the first `correct` samples; it records its prompts. */
class ScriptedSampler implements PolicySampler {
  version = -1;
  prompts: string[] = [];
  constructor(private readonly correct: number) {}

  async load(_store: ObjectStore, _folder: string, version: number): Promise<void> {
    this.version = version;
  }

  encodePrompt(prompt: string): number[] {
    this.prompts.push(prompt);
    return [...prompt].map((c) => c.charCodeAt(0));
  }

  async sample(
    promptTokens: readonly number[],
    samples: number,
    _s: SamplingSettings,
  ): Promise<SampledGroup> {
    const prompt = String.fromCharCode(...promptTokens);
    const [a, b] = (prompt.match(/\d+/g) ?? []).map(Number);
    const responses = Array.from({ length: samples }, (_, i) => ({
      text: `\\boxed{${i < this.correct ? (a ?? 0) + (b ?? 0) : -1}}`,
      tokens: [1, 2, 3],
      logProbs: [-1, -1, -1],
      finishReason: "stop" as const,
    }));
    return { policyVersion: this.version, responses };
  }
}

const checkpoint = (step: number, reason: CheckpointPublishedData["reason"]): CheckpointPublishedData => ({
  run: "r",
  step,
  stage: 0,
  reason,
  manifest: {
    uri: "memory:///c/manifest.json",
    key: `checkpoints/step-${step}/manifest.json`,
    sha256: "0".repeat(64),
    size: 1,
  },
});

function deps(sampler: PolicySampler, store = new MemoryObjectStore()) {
  const services: EvaluateServices = {
    sampler,
    grade: async (gold, response) => {
      const extracted = response.match(/\\boxed\{(-?\d+)\}/)?.[1] ?? null;
      const correct = extracted === gold;
      return { reward: correct ? 5 : 0, correct, extracted, reason: correct ? "correct" : "mismatch" };
    },
    evaluation: EvaluationSchema.parse({ samples: 4, k: [1, 2, 4], interval: 10 }),
    totalSteps: 30,
    benchmarks: async () => [
      {
        name: "sums",
        problems: [
          { id: "p1", problem: "What is 2+3?", answer: "5" },
          { id: "p2", problem: "What is 10+4?", answer: "14" },
        ],
      },
    ],
    keys: new RunKeys(""),
  };
  return {
    store,
    clock: systemClock,
    rng: seededRandom(1),
    logger: silentLogger(),
    run: "r",
    signal: new AbortController().signal,
    services,
  };
}

describe("evaluate", () => {
  it("prompts with the original problem only: hints never reach evaluation", async () => {
    const sampler = new ScriptedSampler(1);
    await evaluateCheckpoint(checkpoint(10, "interval"), deps(sampler));
    expect(sampler.prompts).toEqual(["What is 2+3?\n\n", "What is 10+4?\n\n"]);
    for (const prompt of sampler.prompts) expect(prompt).not.toContain("Hint");
    expect(evaluationPrompt("x")).toBe("x\n\n");
  });

  it("scores pass@1, unbiased pass@k and maj@k, and stores per-problem results", async () => {
    const store = new MemoryObjectStore();
    const events = await evaluateCheckpoint(checkpoint(10, "interval"), deps(new ScriptedSampler(1), store));
    expect(events).toHaveLength(1);
    const data = events[0]?.data as {
      passAt1: number;
      passAtK: Record<string, number>;
      majAtK: Record<string, number>;
      hinted: boolean;
      results: { key: string };
      gradingMode: string;
    };
    expect(data.hinted).toBe(false);
    // evaluation reports read free-form answers unless the spec says otherwise
    expect(data.gradingMode).toBe("lenient");
    expect(data.passAt1).toBeCloseTo(0.25, 12);
    // n=4, c=1: pass@2 = 1 - C(3,2)/C(4,2) = 0.5
    expect(data.passAtK["2"]).toBeCloseTo(0.5, 12);
    expect(data.passAtK["4"]).toBeCloseTo(1, 12);
    expect(data.majAtK["4"]).toBe(0);
    const lines = new TextDecoder()
      .decode(await store.get(data.results.key))
      .trim()
      .split("\n");
    expect(lines.map((l) => EvaluationProblemResultSchema.parse(JSON.parse(l)).passAt1)).toEqual([
      0.25, 0.25,
    ]);
  });

  it("answers a checkpoint delivered again from the stored evaluation, without sampling", async () => {
    const store = new MemoryObjectStore();
    const first = new ScriptedSampler(1);
    const events = await evaluateCheckpoint(checkpoint(10, "interval"), deps(first, store));
    const again = new ScriptedSampler(3);
    const repeated = await evaluateCheckpoint(checkpoint(10, "interval"), deps(again, store));
    expect(repeated).toEqual(events);
    expect({ loaded: again.version, prompts: again.prompts }).toEqual({ loaded: -1, prompts: [] });
    // a torn stored event is evaluated again (and replaced)
    const key = evaluationEventKey(new RunKeys(""), 10, "sums");
    await store.put(key, "{");
    const redone = await evaluateCheckpoint(checkpoint(10, "interval"), deps(again, store));
    expect((redone[0]?.data as { passAt1?: number } | undefined)?.passAt1).toBeCloseTo(0.75, 12);
    expect(again.version).toBe(10);
    // another step is never answered from this one
    const other = new ScriptedSampler(1);
    await evaluateCheckpoint(checkpoint(20, "interval"), deps(other, store));
    expect(other.version).toBe(20);
  });

  it("samples the problems of a benchmark concurrently and reports them in benchmark order", async () => {
    const store = new MemoryObjectStore();
    const scripted = new ScriptedSampler(4);
    const waiting: (() => void)[] = [];
    let inFlight = 0;
    let peak = 0;
    // every problem waits until all have been asked for, then they finish last first
    const sampler: PolicySampler = {
      get version() {
        return scripted.version;
      },
      load: (s, f, v) => scripted.load(s, f, v),
      encodePrompt: (p) => scripted.encodePrompt(p),
      sample: (p, n, settings) =>
        new Promise((resolve) => {
          inFlight++;
          peak = Math.max(peak, inFlight);
          waiting.push(() => {
            inFlight--;
            resolve(scripted.sample(p, n, settings));
          });
          if (waiting.length === 2) for (const next of waiting.reverse()) next();
        }),
    };
    const d = deps(sampler, store);
    const [event] = await evaluateCheckpoint(checkpoint(10, "interval"), d);
    expect(peak).toBe(2);
    const data = event?.data as { results: { key: string }; example: { problemId: string } };
    const lines = new TextDecoder()
      .decode(await store.get(data.results.key))
      .trim()
      .split("\n");
    expect(lines.map((l) => EvaluationProblemResultSchema.parse(JSON.parse(l)).problemId)).toEqual([
      "p1",
      "p2",
    ]);
    expect(data.example.problemId).toBe("p1");
  });

  it("evaluates the start, every interval and the end, never weights-only policy updates", () => {
    const spec = EvaluationSchema.parse({ interval: 10 });
    expect(shouldEvaluate(checkpoint(0, "initial"), spec, 30)).toBe(true);
    expect(shouldEvaluate(checkpoint(10, "policy"), spec, 30)).toBe(false);
    expect(shouldEvaluate(checkpoint(15, "interval"), spec, 30)).toBe(false);
    expect(shouldEvaluate(checkpoint(20, "interval"), spec, 30)).toBe(true);
    expect(shouldEvaluate(checkpoint(30, "final"), spec, 30)).toBe(true);
    expect(shouldEvaluate(checkpoint(0, "initial"), EvaluationSchema.parse({ atStart: false }), 30)).toBe(
      false,
    );
  });

  it("evaluates the starting policy of an evaluation-only run (zero steps) even without atStart", () => {
    expect(shouldEvaluate(checkpoint(0, "initial"), EvaluationSchema.parse({ atStart: false }), 0)).toBe(
      true,
    );
  });
});
