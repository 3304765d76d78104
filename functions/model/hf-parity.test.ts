/**
 * Parity with the reference implementation: tiny random qwen2, llama and qwen3 models saved by
 * Hugging Face transformers, and what transformers computed on them (PyTorch, CPU, float32), from
 * test/fixtures/hf (made by scripts/reference/make_hf_fixtures.py). Tolerances are the issue's:
 * logits and log-probs within 1e-4, greedy tokens identical, gradients within 1e-4 relative error.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine, type PolicyEngine } from "./engine.ts";
import { readHuggingFaceFolder } from "./hf-folder.ts";
import { hfWeightMap } from "./hf-weights.ts";
import { decodeSafetensors, type NamedTensor } from "./safetensors.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "hf");
const MODELS = ["tiny-qwen2", "tiny-qwen2-sharded", "tiny-llama", "tiny-qwen3"] as const;

interface Reference {
  model: string;
  sequences: number[][];
  greedy: { prompt: number[]; tokens: number[]; minMargin: number }[];
  ppo: {
    promptLengths: number[];
    advantages: number[];
    behaviourLogProbs: number[][];
    clipLow: number;
    clipHigh: number;
    loss: number;
  };
}

async function readFixtureFolder(name: string) {
  const dir = join(FIXTURES, name);
  return readHuggingFaceFolder(
    async (file) => {
      try {
        return new Uint8Array(await readFile(join(dir, file)));
      } catch {
        return undefined;
      }
    },
    { where: dir },
  );
}

async function readReference(
  name: string,
): Promise<{ meta: Reference; tensors: Record<string, NamedTensor> }> {
  const meta = JSON.parse(await readFile(join(FIXTURES, `${name}.reference.json`), "utf8")) as Reference;
  const bytes = new Uint8Array(await readFile(join(FIXTURES, `${name}.reference.safetensors`)));
  return { meta, tensors: decodeSafetensors(bytes).tensors };
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function relativeError(ours: Float32Array, ref: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < ref.length; i++) {
    diff += (ours[i]! - ref[i]!) ** 2;
    norm += ref[i]! ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
}

describe.each(MODELS)("%s against transformers", (name) => {
  let engine: PolicyEngine;
  let reference: Awaited<ReturnType<typeof readReference>>;

  beforeAll(async () => {
    const model = await readFixtureFolder(name);
    reference = await readReference(name);
    engine = await createEngine({ config: model.config, params: model.params, threads: 1 });
  });
  afterAll(async () => {
    await engine.dispose();
  });

  it("logits and per-token log-probs within 1e-4", async () => {
    const { sequences } = reference.meta;
    const logits = await engine.forwardLogits(sequences);
    const scored = await engine.forwardLogProbs(sequences);
    sequences.forEach((_, i) => {
      expect(maxAbsDiff(logits[i]!, reference.tensors[`logits.${i}`]!.data)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(scored[i]!.logProbs, reference.tensors[`logprobs.${i}`]!.data)).toBeLessThanOrEqual(
        1e-4,
      );
    });
  });

  it("greedy continuations of 32 tokens identical, alone and left-padded in one batch", async () => {
    const runs = reference.meta.greedy;
    const request = { maxNewTokens: 32, temperature: 0, rng: { next: () => 0 } };
    for (const run of runs) {
      const [alone] = await engine.generate({ ...request, prompts: [run.prompt] });
      expect(alone!.tokens).toEqual(run.tokens);
    }
    const batched = await engine.generate({ ...request, prompts: runs.map((r) => r.prompt) });
    expect(batched.map((g) => g.tokens)).toEqual(runs.map((r) => r.tokens));
  });

  it("gradient of the PPO loss within 1e-4 relative error for every parameter", async () => {
    const { sequences, ppo } = reference.meta;
    const samples = sequences.map((tokens, i) => ({
      tokens,
      lossMask: tokens.map((_, t) => (t >= ppo.promptLengths[i]! ? 1 : 0)),
      advantages: tokens.map(() => ppo.advantages[i]!),
      behaviourLogProbs: ppo.behaviourLogProbs[i]!,
    }));
    const { loss, gradient } = await engine.ppoGradient(samples, {
      clipLow: ppo.clipLow,
      clipHigh: ppo.clipHigh,
    });
    expect(Math.abs(loss - ppo.loss)).toBeLessThanOrEqual(1e-5);
    const names = Object.keys(reference.tensors).filter((k) => k.startsWith("grad."));
    const mapped = hfWeightMap(engine.config);
    // every parameter transformers has is compared (tied models have no lm_head parameter)
    expect(mapped.map((m) => `grad.${m.hfName}`).sort()).toEqual(names.sort());
    const errors = mapped.map((m) => {
      const ref = reference.tensors[`grad.${m.hfName}`]!.data;
      const ours = new Float32Array(ref.length);
      m.extract(gradient, ours);
      return { tensor: m.hfName, error: relativeError(ours, ref) };
    });
    expect(errors.filter((e) => !(e.error <= 1e-4))).toEqual([]);
  });
});
