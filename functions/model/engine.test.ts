import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import { saveCheckpoint } from "./checkpoint.ts";
import { createEngine, createEngineFromCheckpoint, type Generation, type PolicyEngine } from "./engine.ts";
import type { PolicySample } from "./hyperparams.ts";
import { createRng, streamRng } from "./rng.ts";
import { argmax } from "./sampler.ts";
import { charTokenizer } from "./tokenizer.ts";

const engines: PolicyEngine[] = [];
afterAll(async () => {
  for (const e of engines) await e.dispose();
});
async function engine(
  config: Parameters<typeof createEngine>[0]["config"],
  seed = 1,
  caps: { maxBatchRows?: number; maxBatchTokens?: number } = {},
) {
  const e = await createEngine({
    config,
    rng: createRng(seed),
    threads: 1,
    tokenizer: charTokenizer(),
    ...caps,
  });
  engines.push(e);
  return e;
}

const tok = charTokenizer();
const small = { vocabSize: tok.vocabSize, layers: 2, width: 32, heads: 4, maxSeqLen: 48, initStd: 0.1 };

describe("PolicyEngine generation", () => {
  for (const variant of [
    { name: "learned positions", config: small },
    {
      name: "rotary, GQA, swiglu, rmsnorm",
      config: {
        ...small,
        kvHeads: 2,
        positions: "rotary" as const,
        activation: "swiglu" as const,
        norm: "rmsnorm" as const,
      },
    },
  ]) {
    it(`greedy decoding with the KV cache equals argmax over full forward passes (${variant.name})`, async () => {
      const e = await engine(variant.config, 3);
      const prompts = ["12+7=", "a", "hello world, x="].map((s) => [tok.bosId!, ...tok.encode(s)]);
      const cached = await e.generate({ prompts, maxNewTokens: 12, temperature: 0, rng: createRng(1) });
      for (let i = 0; i < prompts.length; i++) {
        const seq = [...prompts[i]!];
        const full: number[] = [];
        for (let k = 0; k < 12; k++) {
          const [logits] = await e.nextTokenLogits([seq]);
          const next = argmax(logits!, 0, tok.vocabSize);
          full.push(next);
          seq.push(next);
        }
        expect(cached[i]!.tokens).toEqual(full);
        // the static-shape forward graph's logits give the same argmax at every generated position
        const [all] = await e.forwardLogits([seq]);
        for (let k = 0; k < 12; k++) {
          const row = prompts[i]!.length - 1 + k;
          expect(argmax(all!, row * tok.vocabSize, tok.vocabSize)).toBe(full[k]);
        }
        expect(cached[i]!.finishReason).toBe("length");
        // the sampler's log-probs agree with the training-side scoring graph
        const [scored] = await e.forwardLogProbs([[...prompts[i]!, ...cached[i]!.tokens]]);
        const tail = scored!.logProbs.slice(prompts[i]!.length);
        tail.forEach((lp, k) => {
          expect(lp).toBeCloseTo(cached[i]!.logProbs[k]!, 4);
        });
      }
    });
  }

  it("stops on stop tokens and stop strings, returns text, and is reproducible per seed", async () => {
    const e = await engine(small, 4);
    const prompts = [
      [tok.bosId!, ...tok.encode("x")],
      [tok.bosId!, ...tok.encode("yy")],
    ];
    const a = await e.generate({ prompts, maxNewTokens: 30, temperature: 1, topP: 0.9, rng: createRng(5) });
    const b = await e.generate({ prompts, maxNewTokens: 30, temperature: 1, topP: 0.9, rng: createRng(5) });
    expect(a).toEqual(b);
    const stopAt = a[0]!.tokens[3]!;
    const stopped = await e.generate({
      prompts,
      maxNewTokens: 30,
      temperature: 1,
      topP: 0.9,
      stopTokens: [stopAt],
      rng: createRng(5),
    });
    expect(stopped[0]!.finishReason).toBe("stop");
    expect(stopped[0]!.tokens.at(-1)).toBe(stopAt);
    expect(stopped[0]!.tokens.length).toBeLessThanOrEqual(4);
    const stopString = a[1]!.text!.slice(2, 4);
    const byString = await e.generate({
      prompts,
      maxNewTokens: 30,
      temperature: 1,
      topP: 0.9,
      stopStrings: [stopString],
      rng: createRng(5),
    });
    expect(byString[1]!.finishReason).toBe("stop");
    expect(byString[1]!.text!.endsWith(stopString)).toBe(true);
  });

  it("samples a row the same alone, in a batch, and joining a running batch (per-row streams)", async () => {
    const config = { ...small, positions: "rotary" as const, norm: "rmsnorm" as const, kvHeads: 2 };
    const prompts = ["7*8=", "12+30=", "abc", "hello world, x=", "9-4="].map((s) => [
      tok.bosId!,
      ...tok.encode(s),
    ]);
    const request = { maxNewTokens: 20, temperature: 1, topP: 0.95 };
    const streams = () => prompts.map((_, i) => streamRng(42, i));
    const unlimited = await engine(config, 8);
    const alone: Generation[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const [g] = await unlimited.generate({ ...request, prompts: [prompts[i]!], rngs: [streamRng(42, i)] });
      alone.push(g!);
    }
    const together = await unlimited.generate({ ...request, prompts, rngs: streams() });
    // two rows at a time: rows join as others finish, in other slots and beside other companions
    const narrow = await engine(config, 8, { maxBatchRows: 2 });
    const joined = await narrow.generate({ ...request, prompts, rngs: streams() });
    // separate calls made at once share the decode loop
    const concurrent = await Promise.all(
      prompts.map((p, i) => unlimited.generate({ ...request, prompts: [p], rngs: [streamRng(42, i)] })),
    );
    for (const batch of [together, joined, concurrent.map(([g]) => g!)]) {
      batch.forEach((g, i) => {
        expect(g.tokens).toEqual(alone[i]!.tokens);
        expect(g.finishReason).toBe(alone[i]!.finishReason);
        g.logProbs.forEach((lp, k) => {
          expect(Math.abs(lp - alone[i]!.logProbs[k]!)).toBeLessThan(1e-5);
        });
      });
    }
    expect(narrow.generationStats.peakRows).toBe(2);
    expect(unlimited.generationStats.peakRows).toBe(prompts.length);
  });

  it("continuous batching under row and token caps equals greedy decoding one prompt at a time", async () => {
    const prompts = ["1", "22+3=", "a much longer prompt, x=", "4*4=", "zz", "k"].map((s) => [
      tok.bosId!,
      ...tok.encode(s),
    ]);
    const reference = await engine(small, 9);
    const alone: Generation[] = [];
    for (const p of prompts) {
      const [g] = await reference.generate({
        prompts: [p],
        maxNewTokens: 15,
        temperature: 0,
        rng: createRng(1),
      });
      alone.push(g!);
    }
    // at most 40 cache positions: two rows of the shortest capacity (17), one of the longest
    const capped = await engine(small, 9, { maxBatchTokens: 40 });
    const out = await capped.generate({ prompts, maxNewTokens: 15, temperature: 0, rng: createRng(1) });
    expect(out.map((g) => g.tokens)).toEqual(alone.map((g) => g.tokens));
    expect(capped.generationStats.peakCachePositions).toBeLessThanOrEqual(40);
    const rows = await engine(small, 9, { maxBatchRows: 3 });
    const three = await rows.generate({ prompts, maxNewTokens: 15, temperature: 0, rng: createRng(1) });
    expect(three.map((g) => g.tokens)).toEqual(alone.map((g) => g.tokens));
    expect(rows.generationStats.peakRows).toBe(3);
  });

  it("prefills a prompt shared by a group once, and its samples still differ", async () => {
    const e = await engine(small, 10, { maxBatchRows: 3 });
    const prompt = [tok.bosId!, ...tok.encode("5+5=")];
    const other = [tok.bosId!, ...tok.encode("6+1=")];
    const prompts = [prompt, prompt, prompt, prompt, prompt, other, other];
    const out = await e.generate({
      prompts,
      maxNewTokens: 12,
      temperature: 1,
      rngs: prompts.map((_, i) => streamRng(3, i)),
    });
    // the five copies joined over several admissions, the prefill ran once per distinct prompt
    expect(e.generationStats.prefilledPrompts).toBe(2);
    expect(new Set(out.slice(0, 5).map((g) => g.tokens.join(","))).size).toBeGreaterThan(1);
    // rows of one stream sample the same whatever prompt index they had
    const [again] = await e.generate({
      prompts: [prompt],
      maxNewTokens: 12,
      temperature: 1,
      rngs: [streamRng(3, 2)],
    });
    expect(again!.tokens).toEqual(out[2]!.tokens);
  });

  it("refuses a request without random streams, or with the wrong number", async () => {
    const e = await engine(small);
    const prompts = [
      [1, 5],
      [1, 6],
    ];
    await expect(e.generate({ prompts, maxNewTokens: 2 })).rejects.toThrow(InputError);
    await expect(e.generate({ prompts, maxNewTokens: 2, rngs: [createRng(1)] })).rejects.toThrow(/rngs/);
  });

  it("rejects out-of-vocabulary prompts naming the field", async () => {
    const e = await engine(small);
    await expect(e.generate({ prompts: [[1, 5000]], maxNewTokens: 2, rng: createRng(1) })).rejects.toThrow(
      /prompts\[0\]\.tokens\[1\]/,
    );
  });
});

function ppoSamples(seed: number, n: number): PolicySample[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 6 + ((i * 5) % 17);
    const tokens = Array.from({ length: len }, () => 3 + Math.floor(rng.next() * 90));
    return {
      tokens,
      lossMask: tokens.map((_, t) => (t >= 3 ? 1 : 0)),
      advantages: tokens.map(() => (i % 2 === 0 ? 1 : -1)),
      behaviourLogProbs: tokens.map(() => -4.5 + rng.next() * 0.2),
    };
  });
}

describe("PolicyEngine training", () => {
  it("reports exact PPO metrics on the first step when proximal = current policy", async () => {
    const e = await engine(small, 7);
    const samples = ppoSamples(1, 6);
    const scored = await e.forwardLogProbs(samples.map((s) => s.tokens));
    const onPolicy = samples.map((s, i) => ({
      ...s,
      behaviourLogProbs: scored[i]!.logProbs,
      proximalLogProbs: scored[i]!.logProbs,
    }));
    const m = await e.trainStep(onPolicy, { lr: 1e-3 });
    expect(m.clipFraction).toBe(0);
    expect(m.importanceWeight).toBeCloseTo(1, 5);
    expect(m.logProbGap).toBe(0);
    expect(Math.abs(m.approxKl)).toBeLessThan(1e-5);
    expect(m.tokens).toBe(samples.reduce((s, x) => s + x.tokens.length - 3, 0));
    expect(m.gradNorm).toBeGreaterThan(0);
    expect(m.step).toBe(1);
    // positive-advantage sequences become more likely, negative ones less
    const after = await e.forwardLogProbs(samples.map((s) => s.tokens));
    const delta = (i: number) =>
      after[i]!.logProbs.slice(3).reduce((s, x, t) => s + x - scored[i]!.logProbs[t + 3]!, 0);
    expect(delta(0)).toBeGreaterThan(0);
    expect(delta(1)).toBeLessThan(0);
  });

  it('proximalPolicy "current" gives the update of proximal log-probs recomputed before it, one forward fewer', async () => {
    // off-policy behaviour (importance weights != 1), several micro-batches, KL-free and entropy bonus
    const samples = ppoSamples(3, 8);
    const hp = { lr: 1e-3, entropyCoef: 0.01, microBatchSize: 4 };
    const recomputed = await engine(small, 11);
    const inGraph = await engine(small, 11);
    const scored = await recomputed.forwardLogProbs(samples.map((s) => s.tokens));
    const m1 = await recomputed.trainStep(
      samples.map((s, i) => ({ ...s, proximalLogProbs: scored[i]!.logProbs })),
      hp,
    );
    const m2 = await inGraph.trainStep(samples, { ...hp, proximalPolicy: "current" });
    expect(m2.microBatches).toBe(2);
    expect(m2.loss).toBeCloseTo(m1.loss, 5);
    expect(m2.gradNorm).toBeCloseTo(m1.gradNorm, 4);
    expect(m2.importanceWeight).toBeCloseTo(m1.importanceWeight, 5);
    expect(m2.importanceWeight).not.toBeCloseTo(1, 2);
    expect(Math.abs(m2.approxKl)).toBeLessThan(1e-5);
    // the sampler/learner mismatch: mean |proximal - behaviour| over trained tokens, the same either way
    let gap = 0;
    let trained = 0;
    samples.forEach((s, i) => {
      for (let t = 1; t < s.tokens.length; t++) {
        gap += s.lossMask[t]! * Math.abs(scored[i]!.logProbs[t]! - s.behaviourLogProbs[t]!);
        trained += s.lossMask[t]!;
      }
    });
    expect(m2.logProbGap).toBeCloseTo(gap / trained, 5);
    expect(m1.logProbGap).toBeCloseTo(gap / trained, 5);
    const p1 = recomputed.getParams();
    const p2 = inGraph.getParams();
    let maxDiff = 0;
    for (let i = 0; i < p1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(p1[i]! - p2[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    // proximal log-probs given as well would be ignored: refused instead
    const err = await inGraph
      .trainStep(
        samples.map((s, i) => ({ ...s, proximalLogProbs: scored[i]!.logProbs })),
        { proximalPolicy: "current" },
      )
      .catch((x: unknown) => x);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).issues[0]!.path).toBe("samples[0].proximalLogProbs");
  });

  it("drops tokens above the importance-weight cap (mask) or clips their weight (clip)", async () => {
    const stale = ppoSamples(5, 4).map((s) => ({
      ...s,
      proximalLogProbs: s.behaviourLogProbs.map((x) => x + 3), // weight e^3 > cap 5
    }));
    const e = await engine(small, 8);
    const masked = await e.trainStep(stale, { lr: 1e-3, importanceWeightMode: "mask" });
    expect(masked.importanceWeight).toBe(0);
    expect(masked.gradNorm).toBe(0);
    const clipped = await e.trainStep(stale, { lr: 1e-3, importanceWeightMode: "clip" });
    expect(clipped.importanceWeight).toBeCloseTo(5, 5);
    expect(clipped.gradNorm).toBeGreaterThan(0);
  });

  it("micro-batch gradient accumulation gives the same update as one batch", async () => {
    const samples = ppoSamples(2, 8).map((s) => ({
      ...s,
      proximalLogProbs: s.behaviourLogProbs.map((x) => x + 0.05),
    }));
    const hp = { lr: 1e-3, klCoef: 0, entropyCoef: 0.01 };
    const one = await engine(small, 9);
    const many = await engine(small, 9);
    const m1 = await one.trainStep(samples, { ...hp, microBatchSize: 8 });
    const m2 = await many.trainStep(samples, { ...hp, microBatchSize: 2 });
    expect(m1.microBatches).toBe(1);
    expect(m2.microBatches).toBe(4);
    expect(m2.loss).toBeCloseTo(m1.loss, 5);
    expect(m2.gradNorm).toBeCloseTo(m1.gradNorm, 4);
    const p1 = one.getParams();
    const p2 = many.getParams();
    let maxDiff = 0;
    for (let i = 0; i < p1.length; i++) maxDiff = Math.max(maxDiff, Math.abs(p1[i]! - p2[i]!));
    expect(maxDiff).toBeLessThan(1e-5);
  });

  it("rejects misaligned per-token arrays with every problem listed", async () => {
    const e = await engine(small);
    const bad = { tokens: [1, 5, 6], lossMask: [0, 1], advantages: [0, 1, 1], behaviourLogProbs: [0, -1] };
    const err = await e.trainStep([bad], {}).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).issues.map((i) => i.path)).toEqual([
      "samples[0].lossMask",
      "samples[0].behaviourLogProbs",
    ]);
  });

  it("learns to reverse a digit string (supervised) to >= 95% exact match", async () => {
    const config = { vocabSize: tok.vocabSize, layers: 2, width: 64, heads: 4, maxSeqLen: 16 };
    const e = await createEngine({ config, rng: createRng(11), threads: 2 });
    engines.push(e);
    const rng = createRng(12);
    const digits = (n: number) =>
      Array.from({ length: n }, () => String(Math.floor(rng.next() * 10))).join("");
    const example = () => {
      const s = digits(3 + Math.floor(rng.next() * 4));
      const prompt = [tok.bosId!, ...tok.encode(`${s}=`)];
      const answer = [...tok.encode([...s].reverse().join("")), tok.eosId!];
      return { prompt, answer };
    };
    let steps = 0;
    let exact = 0;
    for (let round = 0; round < 10 && exact < 0.95; round++) {
      for (let i = 0; i < 100; i++, steps++) {
        const batch = Array.from({ length: 64 }, () => {
          const { prompt, answer } = example();
          const tokens = [...prompt, ...answer];
          return { tokens, lossMask: tokens.map((_, t) => (t >= prompt.length ? 1 : 0)) };
        });
        await e.supervisedStep(batch, { lr: 3e-3, weightDecay: 0, beta2: 0.99, microBatchSize: 64 });
      }
      const tests = Array.from({ length: 200 }, example);
      const out = await e.generate({
        prompts: tests.map((t) => t.prompt),
        maxNewTokens: 8,
        temperature: 0,
        stopTokens: [tok.eosId!],
        rng: createRng(0),
      });
      exact =
        out.filter((o, i) => JSON.stringify(o.tokens) === JSON.stringify(tests[i]!.answer)).length /
        tests.length;
    }
    expect(steps).toBeLessThanOrEqual(1000);
    expect(exact).toBeGreaterThanOrEqual(0.95);
  }, 120_000);
});

describe("PolicyEngine state", () => {
  it("resumes from a checkpoint with identical parameters, optimizer state and behaviour", async () => {
    const e = await engine(small, 21);
    await e.trainStep(ppoSamples(3, 4), { lr: 1e-3 });
    const store = new MemoryObjectStore();
    await saveCheckpoint(store, "ckpt/step-1", e.checkpointData({ parent: null }));
    const resumed = await createEngineFromCheckpoint(store, "ckpt/step-1", { threads: 1 });
    engines.push(resumed);
    expect(resumed.step).toBe(1);
    expect(resumed.getParams()).toEqual(e.getParams());
    expect(resumed.getOptimizerState()).toEqual(e.getOptimizerState());
    expect(resumed.tokenizer?.encode("a=1")).toEqual(tok.encode("a=1"));
    const m1 = await e.trainStep(ppoSamples(4, 4), { lr: 1e-3 });
    const m2 = await resumed.trainStep(ppoSamples(4, 4), { lr: 1e-3 });
    expect(m2).toEqual(m1);
    expect(resumed.getParams()).toEqual(e.getParams());
  });

  it("CUDA either runs or is refused with a clear error", async () => {
    const attempt = await createEngine({ config: small, rng: createRng(1), executionProvider: "cuda" }).catch(
      (x: unknown) => x,
    );
    if (attempt instanceof Error) {
      expect(attempt).toBeInstanceOf(InputError);
      expect((attempt as InputError).code).toBe("engine.cuda_unavailable");
      expect(attempt.message).toMatch(/executionProvider: .*CUDA/);
    } else {
      const cuda = attempt as PolicyEngine;
      engines.push(cuda);
      const [scored] = await cuda.forwardLogProbs([[1, 5, 6, 7]]);
      expect(scored!.logProbs.every(Number.isFinite)).toBe(true);
    }
  });
});

describe("the optimiser on the host (large models)", () => {
  it("takes the same steps as the graph's AdamW, across micro-batches, weight decay and clipping", async () => {
    const config = {
      ...small,
      kvHeads: 2,
      positions: "rotary" as const,
      activation: "swiglu" as const,
      norm: "rmsnorm" as const,
      qkvBias: true,
      attnOutBias: true,
      mlpBias: true,
      tiedEmbeddings: false,
    };
    const init = await createEngine({ config, rng: createRng(9), threads: 1 });
    const params = init.getParams();
    await init.dispose();
    const inGraph = await createEngine({ config, params: Float32Array.from(params), threads: 1 });
    const onHost = await createEngine({
      config,
      params: Float32Array.from(params),
      threads: 1,
      optimizerOnHost: true,
    });
    engines.push(inGraph, onHost);
    const rng = createRng(4);
    const samples: PolicySample[] = Array.from({ length: 6 }, (_, i) => {
      const tokens = Array.from(
        { length: 10 + i * 3 },
        () => 3 + Math.floor(rng.next() * (tok.vocabSize - 3)),
      );
      return {
        tokens,
        lossMask: tokens.map((_, t) => (t >= 4 ? 1 : 0)),
        advantages: tokens.map(() => (i % 2 === 0 ? 1.5 : -0.8)),
        behaviourLogProbs: tokens.map(() => -4.5 + rng.next()),
      };
    });
    // both gradients agree before any step
    const g1 = await inGraph.ppoGradient(samples, { microBatchSize: 2 });
    const g2 = await onHost.ppoGradient(samples, { microBatchSize: 2 });
    expect(g2.loss).toBeCloseTo(g1.loss, 6);
    let worst = 0;
    for (let i = 0; i < g1.gradient.length; i++)
      worst = Math.max(worst, Math.abs(g1.gradient[i]! - g2.gradient[i]!));
    expect(worst).toBeLessThan(1e-6);
    const hp = { lr: 3e-3, weightDecay: 0.1, maxGradNorm: 0.05, microBatchSize: 2 };
    for (let step = 0; step < 3; step++) {
      const a = await inGraph.trainStep(samples, hp);
      const b = await onHost.trainStep(samples, hp);
      expect(b.loss).toBeCloseTo(a.loss, 5);
      expect(b.gradNorm).toBeCloseTo(a.gradNorm, 5);
      expect(b.microBatches).toBe(3);
    }
    const pa = inGraph.getParams();
    const pb = onHost.getParams();
    let drift = 0;
    for (let i = 0; i < pa.length; i++) drift = Math.max(drift, Math.abs(pa[i]! - pb[i]!));
    expect(drift).toBeLessThan(1e-5);
    expect(onHost.getOptimizerState().step).toBe(3);
    // and it trained: the weights moved by far more than the two paths differ
    let moved = 0;
    for (let i = 0; i < pa.length; i++) moved = Math.max(moved, Math.abs(pb[i]! - params[i]!));
    expect(moved).toBeGreaterThan(1e-3);
  });
});

describe("default micro-batches", () => {
  it("hold 32 sequences, fewer when their logits would pass 2^26 floats (large vocabularies)", async () => {
    const wide = await createEngine({
      config: { vocabSize: 65536, layers: 1, width: 8, heads: 2, maxSeqLen: 64 },
      rng: createRng(1),
      threads: 1,
    });
    engines.push(wide);
    const samples: PolicySample[] = Array.from({ length: 20 }, (_, i) => {
      const tokens = Array.from({ length: 60 }, (_, t) => (i * 61 + t * 7) % 65536);
      return {
        tokens,
        lossMask: tokens.map((_, t) => (t > 0 ? 1 : 0)),
        advantages: tokens.map(() => 1),
        behaviourLogProbs: tokens.map(() => -11),
      };
    });
    // 64-token bucket x 65,536 logits: 16 rows per run
    expect((await wide.trainStep(samples)).microBatches).toBe(2);
    expect((await wide.trainStep(samples, { microBatchSize: 5 })).microBatches).toBe(4);
    const narrow = await engine(small);
    const short = samples.map((s) => ({
      ...s,
      tokens: s.tokens.map((t) => t % tok.vocabSize).slice(0, 20),
      lossMask: s.lossMask.slice(0, 20),
      advantages: s.advantages.slice(0, 20),
      behaviourLogProbs: s.behaviourLogProbs.slice(0, 20),
    }));
    expect((await narrow.trainStep(short)).microBatches).toBe(1);
  });
});
