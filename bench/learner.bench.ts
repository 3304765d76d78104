/**
 * Learner benchmark: train tokens/s of the torch learner (PyTorch FSDP2 under torchrun,
 * torch-learner/) and of questa's ONNX learner on the same model and the same PPO batch, in one
 * process, round by round alternating (so a machine that gets busier slows both alike), each round
 * one optimiser step through the LearnerEngine port as the Learner calls it (the torch learner's
 * batch file and pipe included). The model is a random Qwen2 with the tiny-learner fixture's
 * tokenizer (test/fixtures/hf/tiny-learner), sized by the environment; the first step of each
 * engine is a warm-up (graph building, first-iteration allocations) and is not counted.
 *
 * Prints one JSON document: each engine's tokens/s per round and median, and `torchVsOnnx`, the
 * torch learner's median over the ONNX learner's.
 * Env: QUESTA_BENCH_LAYERS (4), QUESTA_BENCH_WIDTH (256), QUESTA_BENCH_SEQUENCES (32),
 * QUESTA_BENCH_LENGTH (160, tokens per sequence, a quarter of them prompt), QUESTA_BENCH_ROUNDS (5),
 * QUESTA_BENCH_TORCH_PROCESSES (1), QUESTA_BENCH_TORCH_PRECISION (fp32 | bf16; fp32, the ONNX
 * learner's), QUESTA_TORCH_PYTHON (default: the cached venv of install-reference-venv.sh --kind learner).
 */
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { OnnxLearnerEngine } from "../functions/host/onnx-adapters.ts";
import { threadsPerProcess } from "../functions/host/torch-launch.ts";
import { TorchLearnerEngine, TorchNode } from "../functions/host/torch-learner-engine.ts";
import { freeLoopbackPort, resolveTorchPython } from "../functions/host/torch-process.ts";
import type { LearnerEngine, PpoSample } from "../functions/learn/learner-engine.ts";
import { saveCheckpoint } from "../functions/model/checkpoint.ts";
import { modelConfigFromHf } from "../functions/model/hf-config.ts";
import { initParams } from "../functions/model/params.ts";
import { createRng } from "../functions/model/rng.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";
import { PARITY_SETTINGS, readTinyLearner } from "../test/scale/learner-batch.ts";

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
const layers = env("QUESTA_BENCH_LAYERS", 4);
const width = env("QUESTA_BENCH_WIDTH", 256);
const sequences = env("QUESTA_BENCH_SEQUENCES", 32);
const length = env("QUESTA_BENCH_LENGTH", 160);
const rounds = env("QUESTA_BENCH_ROUNDS", 5);
const processes = env("QUESTA_BENCH_TORCH_PROCESSES", 1);
const precision = process.env.QUESTA_BENCH_TORCH_PRECISION === "bf16" ? "bf16" : "fp32";
const cores = availableParallelism();

// the model: the fixture's tokenizer and Qwen2 config, at the bench's size, random weights
const fixture = await readTinyLearner();
const hf = {
  ...JSON.parse(fixture.source.files["config.json"]!),
  hidden_size: width,
  intermediate_size: 4 * width,
  num_hidden_layers: layers,
  num_attention_heads: width / 64,
  num_key_value_heads: Math.max(1, width / 128),
  layer_types: Array.from({ length: layers }, () => "full_attention"),
  max_position_embeddings: Math.max(256, length),
  initializer_range: 0.02,
};
const mapped = modelConfigFromHf(hf);
if (!mapped.ok) throw new Error(JSON.stringify(mapped.problems));
const config = mapped.config;
const params = initParams(config, createRng(7));
const store = new MemoryObjectStore();
await saveCheckpoint(
  store,
  "checkpoints/step-000000",
  {
    config,
    params,
    tokenizerJson: fixture.tokenizerJson,
    huggingFace: { ...fixture.source, files: { ...fixture.source.files, "config.json": JSON.stringify(hf) } },
    step: 0,
  },
  { exportHuggingFace: true },
);

// the batch: prompt + response tokens, advantages of both signs, slightly off-policy behaviour
const random = createRng(11);
const samples: PpoSample[] = Array.from({ length: sequences }, (_, i) => {
  const n = length - (i % 8) * Math.floor(length / 32);
  const tokens = Array.from({ length: n }, () => 3 + Math.floor(random.next() * 300));
  const prompt = Math.floor(n / 4);
  const lossMask = tokens.map((_, t) => (t >= prompt ? 1 : 0));
  const advantage = i % 2 === 0 ? 1 : -1;
  return {
    tokens,
    lossMask,
    advantages: lossMask.map((m) => m * advantage),
    behaviourLogProbs: lossMask.map((m) => m * (-5.95 + random.next() * 0.1)),
  };
});
const settings = { ...PARITY_SETTINGS, learningRate: 1e-5, entropyCoef: 0 };

const onnx = new OnnxLearnerEngine({ executionProvider: "cpu", threads: 0 });
await onnx.loadCheckpoint(store, "checkpoints/step-000000");
const python = await resolveTorchPython({
  env: process.env,
  install: true,
  say: (message) => process.stderr.write(`${message}\n`),
});
const node = await TorchNode.start({
  python,
  plan: {
    nodes: 1,
    processesPerNode: processes,
    rendezvous: `127.0.0.1:${await freeLoopbackPort()}`,
    rendezvousId: "bench-learner",
    threads: threadsPerProcess(cores, processes),
  },
  workDir: join(tmpdir(), `questa-bench-learner-${process.pid}`),
  env: process.env,
  logger: silentLogger(),
});
const torch = new TorchLearnerEngine({
  node,
  options: {
    microBatchSize: Math.ceil(sequences / processes),
    activationCheckpointing: false,
    precision,
    sharding: "full-shard",
  },
});
await torch.loadCheckpoint(store, "checkpoints/step-000000");

async function step(engine: LearnerEngine): Promise<{ tokensPerSecond: number; tokens: number }> {
  const started = performance.now();
  const metrics = await engine.trainPpo(samples, settings);
  return { tokensPerSecond: metrics.tokens / ((performance.now() - started) / 1000), tokens: metrics.tokens };
}

const load = [loadavg()[0] ?? 0];
const measured = { onnx: [] as number[], torch: [] as number[] };
let tokens = 0;
try {
  await step(onnx);
  await step(torch);
  for (let round = 0; round < rounds; round++) {
    for (const [name, engine] of [
      ["onnx", onnx],
      ["torch", torch],
    ] as const) {
      const r = await step(engine);
      measured[name].push(r.tokensPerSecond);
      tokens = r.tokens;
      process.stderr.write(`round ${round + 1}/${rounds} ${name}: ${Math.round(r.tokensPerSecond)} tok/s\n`);
    }
  }
} finally {
  await onnx.dispose();
  await torch.dispose();
}
load.push(loadavg()[0] ?? 0);

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round1 = (x: number) => Math.round(x * 10) / 10;
console.log(
  JSON.stringify(
    {
      bench: "learner",
      machine: { cores, cpu: cpus()[0]?.model, loadAverage1m: load.map(round1) },
      model: {
        type: "qwen2",
        layers,
        width,
        vocab: config.vocabSize,
        parameters: params.length,
      },
      batch: { sequences, longest: length, trainedTokens: tokens },
      rounds,
      onnx: {
        threads: cores,
        tokensPerSecond: measured.onnx.map(round1),
        median: round1(median(measured.onnx)),
      },
      torch: {
        processes,
        threadsPerProcess: threadsPerProcess(cores, processes),
        precision,
        backend: node.ready.backend,
        tokensPerSecond: measured.torch.map(round1),
        median: round1(median(measured.torch)),
      },
      torchVsOnnx: Math.round((median(measured.torch) / median(measured.onnx)) * 100) / 100,
    },
    null,
    2,
  ),
);
