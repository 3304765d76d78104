/**
 * The real SmolLM2-135M-Instruct (the folder `questa model fetch smollm2-135m-instruct` converts
 * from its PyPI wheel) on the CPU: load, forward (scoring a batch of sequences), KV-cache decode at
 * batch 1 and 32, one PPO train step; tokens/s and the process's peak RSS. With `--peer PYTHON` it
 * then runs the same phases in transformers on PyTorch (scripts/reference/bench_smollm2_torch.py)
 * in its own process, same threads, so both columns come from one run on one machine.
 * Prints JSON. `npm run bench:engine` runs it in its own process (BENCH_MODELS=smollm2).
 * Env: BENCH_THREADS, BENCH_FORWARD_BATCH (8), BENCH_TRAIN_BATCH (8), BENCH_LENGTH (256),
 * BENCH_NEW_TOKENS (32).
 */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, homedir, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { fetchModel } from "../cli/model-fetch.ts";
import { createEngine } from "../functions/model/engine.ts";
import { readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { createRng } from "../functions/model/rng.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";

const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 100) / 100;
const peakRss = () => gib(process.resourceUsage().maxRSS * 1024);
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const forwardBatch = Number(process.env.BENCH_FORWARD_BATCH ?? 8);
const trainBatch = Number(process.env.BENCH_TRAIN_BATCH ?? 8);
const length = Number(process.env.BENCH_LENGTH ?? 256);
const newTokens = Number(process.env.BENCH_NEW_TOKENS ?? 32);
const peerIndex = process.argv.indexOf("--peer");
const peerPython = peerIndex >= 0 ? process.argv[peerIndex + 1] : undefined;

const cacheDir = process.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");
const folder = await fetchModel("smollm2-135m-instruct", {
  cacheDir,
  log: (line) => console.error(`smollm2: ${line}`),
});
const loadBefore = loadavg();
const phases: Record<string, unknown> = {};

const t0 = performance.now();
const folderStore = new FsObjectStore(folder);
const model = await readHuggingFaceFolder((name) => folderStore.get(name), { where: folder });
const engine = await createEngine({ config: model.config, params: model.params, threads });
phases.load = { seconds: round((performance.now() - t0) / 1000, 2), peakRssGiB: peakRss() };

// fixed pseudo-random token ids (the same recipe as the peer's, so both score the same sequences)
function sequences(count: number, tokens: number, seed: number): number[][] {
  return Array.from({ length: count }, (_, row) =>
    Array.from({ length: tokens }, (_, i) => (seed * 7919 + row * 104_729 + i * 1_299_709) % 49_000),
  );
}

async function rate(repeats: number, run: () => Promise<number>): Promise<{ median: number; all: number[] }> {
  await run(); // warm-up: onnxruntime builds its session on first use
  const all: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    const tokens = await run();
    all.push(round(tokens / ((performance.now() - start) / 1000)));
  }
  const sorted = [...all].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)] ?? 0, all };
}

const scored = sequences(forwardBatch, length, 1);
phases.forward = {
  batch: forwardBatch,
  length,
  tokensPerSecond: await rate(3, async () => {
    await engine.forwardLogProbs(scored);
    return forwardBatch * (length - 1);
  }),
  peakRssGiB: peakRss(),
};

for (const batch of [1, 32]) {
  const prompts = sequences(batch, 32, 2);
  phases[`decodeBatch${batch}`] = {
    promptTokens: 32,
    newTokens,
    tokensPerSecond: await rate(batch === 1 ? 3 : 2, async () => {
      const out = await engine.generate({
        prompts,
        maxNewTokens: newTokens,
        temperature: 1,
        rng: createRng(batch),
        stopTokens: [],
      });
      return out.reduce((s, g) => s + g.tokens.length, 0);
    }),
    peakRssGiB: peakRss(),
  };
}

const trainSequences = sequences(trainBatch, length, 3);
const samples = trainSequences.map((tokens) => ({
  tokens,
  lossMask: tokens.map((_, i) => (i >= 32 ? 1 : 0)),
  advantages: tokens.map((_, i) => ((i % 7) - 3) / 3),
  behaviourLogProbs: tokens.map(() => -10),
}));
phases.trainStep = {
  batch: trainBatch,
  length,
  // lr 0: the weights stay as loaded, so every repeat measures the same model
  tokensPerSecond: await rate(2, async () => {
    await engine.trainStep(samples, { lr: 0, microBatchSize: trainBatch });
    return trainBatch * (length - 32);
  }),
  peakRssGiB: peakRss(),
};
await engine.dispose();

/** questa's median tokens/s over PyTorch's, per phase both ran (above 1: questa is faster) */
function vsPyTorch(ours: typeof phases, theirs: unknown): Record<string, number> {
  const peerPhases =
    (theirs as { phases?: Record<string, { tokensPerSecond?: { median?: number } }> }).phases ?? {};
  const out: Record<string, number> = {};
  for (const [name, phase] of Object.entries(ours)) {
    const mine = (phase as { tokensPerSecond?: { median: number } }).tokensPerSecond?.median;
    const other = peerPhases[name]?.tokensPerSecond?.median;
    if (mine !== undefined && other !== undefined && other > 0) out[name] = round(mine / other, 2);
  }
  return out;
}

const peer = peerPython
  ? JSON.parse(
      execFileSync(
        peerPython,
        [
          join(import.meta.dirname, "..", "scripts", "reference", "bench_smollm2_torch.py"),
          "--folder",
          folder,
          "--threads",
          String(threads),
          "--forward-batch",
          String(forwardBatch),
          "--train-batch",
          String(trainBatch),
          "--length",
          String(length),
          "--new-tokens",
          String(newTokens),
        ],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 16 * 2 ** 20 },
      ),
    )
  : undefined;

console.log(
  JSON.stringify(
    {
      benchmark: "smollm2-135m-instruct",
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: availableParallelism(),
        memoryGiB: gib(totalmem()),
        node: process.version,
        threads,
        loadAverageBefore: loadBefore.map((x) => round(x, 2)),
        loadAverageAfter: loadavg().map((x) => round(x, 2)),
      },
      parameters: model.params.length,
      questa: { phases, peakRssGiB: peakRss() },
      ...(peer ? { pytorch: peer, vsPyTorch: vsPyTorch(phases, peer) } : {}),
    },
    null,
    2,
  ),
);
