import { afterAll, describe, expect, it } from "vitest";
import type { PpoSample, PpoSettings } from "../learn/learner-engine.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { ModelConfigSchema } from "../model/config.ts";
import { initParams } from "../model/params.ts";
import type { SampledGroup, SamplingSettings } from "../model/policy-sampler.ts";
import { createRng } from "../model/rng.ts";
import { charTokenizer } from "../model/tokenizer.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import {
  type EngineSettings,
  OnnxLearnerEngine,
  OnnxPolicySampler,
  SharedExclusiveLock,
} from "./onnx-adapters.ts";

const tokenizer = charTokenizer();
const config = ModelConfigSchema.parse({
  vocabSize: tokenizer.vocabSize,
  layers: 2,
  width: 32,
  heads: 4,
  maxSeqLen: 64,
  initStd: 0.1,
});
const settings: SamplingSettings = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 24 };
const engineSettings: EngineSettings = { executionProvider: "cpu", threads: 1 };

async function storeWithPolicies(): Promise<MemoryObjectStore> {
  const store = new MemoryObjectStore();
  for (const step of [0, 1]) {
    await saveCheckpoint(store, `policy/step-${step}`, {
      config,
      params: initParams(config, createRng(100 + step)),
      tokenizerJson: tokenizer.toJSON(),
      step,
    });
  }
  return store;
}

const samplers: OnnxPolicySampler[] = [];
afterAll(async () => {
  for (const s of samplers) await s.dispose();
});
async function sampler(store: MemoryObjectStore, options: { coalesce?: boolean } = {}) {
  const s = new OnnxPolicySampler(engineSettings, options);
  samplers.push(s);
  await s.load(store, "policy/step-0", 0);
  return s;
}

const problems = ["1+2=", "30-4=", "7*6=", "9+9+9="];

describe("OnnxPolicySampler", () => {
  it("samples concurrent calls in one batch, each group as if it had been sampled alone", async () => {
    const store = await storeWithPolicies();
    const batched = await sampler(store);
    const serial = await sampler(store, { coalesce: false });
    const prompt = (p: string) => batched.encodePrompt(p);
    const together = await Promise.all(
      problems.map((p, i) => batched.sample(prompt(p), 4, settings, 1000 + i)),
    );
    const oneByOne: SampledGroup[] = [];
    for (const [i, p] of problems.entries())
      oneByOne.push(await serial.sample(prompt(p), 4, settings, 1000 + i));
    expect(together.map((g) => g.responses.map((r) => r.tokens))).toEqual(
      oneByOne.map((g) => g.responses.map((r) => r.tokens)),
    );
    together.forEach((g, i) => {
      expect(g.policyVersion).toBe(0);
      g.responses.forEach((r, j) => {
        r.logProbs.forEach((lp, k) => {
          expect(Math.abs(lp - oneByOne[i]!.responses[j]!.logProbs[k]!)).toBeLessThan(1e-5);
        });
      });
    });
    // the four groups were decoded together; without coalescing each group was a batch of its own
    expect(batched.generationStats!.peakRows).toBeGreaterThan(4);
    expect(serial.generationStats!.peakRows).toBe(4);
    // a group's prompt was prefilled once for its four samples
    expect(batched.generationStats!.prefilledPrompts).toBe(problems.length);
  });

  it("swaps the weights only between generations, and each group names the version that sampled it", async () => {
    const store = await storeWithPolicies();
    const s = await sampler(store);
    const reference = await sampler(store);
    const prompt = s.encodePrompt(problems[0]!);
    const inFlight = s.sample(prompt, 4, settings, 7);
    const loading = s.load(store, "policy/step-1", 1);
    const [before] = await Promise.all([inFlight, loading]);
    const after = await s.sample(prompt, 4, settings, 7);
    expect(before.policyVersion).toBe(0);
    expect(after.policyVersion).toBe(1);
    // the group in flight was sampled wholly by policy 0 (no weights changed under it)
    const onZero = await reference.sample(prompt, 4, settings, 7);
    expect(before.responses.map((r) => r.tokens)).toEqual(onZero.responses.map((r) => r.tokens));
    await reference.load(store, "policy/step-1", 1);
    const onOne = await reference.sample(prompt, 4, settings, 7);
    expect(after.responses.map((r) => r.tokens)).toEqual(onOne.responses.map((r) => r.tokens));
  });
});

/** a promise settled by hand */
function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
const settle = () => new Promise((r) => setImmediate(r));

describe("SharedExclusiveLock", () => {
  it("runs shared work together, exclusive work alone, and holds shared work back behind a waiting exclusive", async () => {
    const lock = new SharedExclusiveLock();
    const log: string[] = [];
    const a = deferred();
    const b = deferred();
    const x = deferred();
    const c = deferred();
    const sharedA = lock.shared(async () => {
      log.push("a");
      await a.promise;
      log.push("a done");
    });
    const sharedB = lock.shared(async () => {
      log.push("b");
      await b.promise;
      log.push("b done");
    });
    const exclusive = lock.exclusive(async () => {
      log.push("x");
      await x.promise;
      log.push("x done");
    });
    await settle();
    const sharedC = lock.shared(async () => {
      log.push("c");
      await c.promise;
    });
    await settle();
    expect(log).toEqual(["a", "b"]);
    a.resolve();
    await settle();
    expect(log).toEqual(["a", "b", "a done"]);
    b.resolve();
    await settle();
    expect(log).toEqual(["a", "b", "a done", "b done", "x"]);
    x.resolve();
    await settle();
    expect(log).toEqual(["a", "b", "a done", "b done", "x", "x done", "c"]);
    c.resolve();
    await Promise.all([sharedA, sharedB, exclusive, sharedC]);
  });

  it("releases after failures on both sides", async () => {
    const lock = new SharedExclusiveLock();
    await expect(lock.shared(async () => Promise.reject(new Error("s")))).rejects.toThrow("s");
    await expect(lock.exclusive(async () => Promise.reject(new Error("x")))).rejects.toThrow("x");
    expect(await lock.shared(async () => 1)).toBe(1);
    expect(await lock.exclusive(async () => 2)).toBe(2);
  });
});

describe("OnnxLearnerEngine", () => {
  const ppo: PpoSettings = {
    learningRate: 1e-3,
    weightDecay: 0,
    beta1: 0.9,
    beta2: 0.95,
    eps: 1e-8,
    gradClip: 1,
    clipLow: 0.2,
    clipHigh: 0.2,
    importanceCap: 5,
    klCoef: 0,
    entropyCoef: 0,
  };
  function batch(scorer: OnnxPolicySampler): PpoSample[] {
    return problems.map((p, i) => {
      const tokens = [...scorer.encodePrompt(p), ...tokenizer.encode("12\\boxed{3}")];
      const promptLength = tokens.length - 11;
      return {
        tokens,
        lossMask: tokens.map((_, t) => (t >= promptLength ? 1 : 0)),
        advantages: tokens.map(() => (i % 2 === 0 ? 1 : -1)),
        behaviourLogProbs: tokens.map(() => -3),
      };
    });
  }
  async function learnerAt(store: MemoryObjectStore, reference?: string): Promise<OnnxLearnerEngine> {
    const engine = new OnnxLearnerEngine(engineSettings);
    await engine.loadCheckpoint(store, "policy/step-0");
    if (reference) await engine.loadReference(store, reference);
    return engine;
  }

  it("scores the KL penalty against the reference policy it loaded, and refuses one without it", async () => {
    const store = await storeWithPolicies();
    const scorer = await sampler(store);
    const samples = batch(scorer);
    const plain = await learnerAt(store);
    const selfReference = await learnerAt(store, "policy/step-0");
    const otherReference = await learnerAt(store, "policy/step-1");
    try {
      await expect(plain.trainPpo(samples, { ...ppo, klCoef: 0.5 })).rejects.toThrow(/loadReference/);
      const without = await plain.trainPpo(samples, ppo);
      // KL to itself is 0 with a zero gradient: the same loss and gradient as without a penalty
      const toItself = await selfReference.trainPpo(samples, { ...ppo, klCoef: 0.5 });
      expect(toItself.loss).toBeCloseTo(without.loss, 5);
      expect(toItself.gradNorm).toBeCloseTo(without.gradNorm, 5);
      // to another policy the penalty is positive: the loss grows by it
      const toOther = await otherReference.trainPpo(samples, { ...ppo, klCoef: 0.5 });
      expect(toOther.loss).toBeGreaterThan(without.loss + 1e-3);
      expect(Math.abs(toOther.gradNorm - without.gradNorm)).toBeGreaterThan(1e-4);
      // and is reported (run.status's klToReference) only with a penalty
      expect(toOther.klToReference).toBeGreaterThan(0);
      expect(toItself.klToReference).toBeCloseTo(0, 6);
      expect(without.klToReference).toBeUndefined();
    } finally {
      for (const e of [plain, selfReference, otherReference]) await e.dispose();
    }
  });
});
