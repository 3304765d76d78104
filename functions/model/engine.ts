/**
 * PolicyEngine: the model as the rest of questa sees it. Holds parameters and AdamW state in flat
 * Float32Arrays, compiles graphs lazily per shape bucket, and runs one session per train step.
 */
import { InputError, type InputIssue } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { type CheckpointData, loadCheckpoint, type OptimizerState } from "./checkpoint.ts";
import { type ModelConfig, type ModelConfigInput, ModelConfigSchema, modelDims } from "./config.ts";
import type { GraphBuilder } from "./graph/graph-builder.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import {
  type OptimizerHyperparams,
  type PolicySample,
  type PpoHyperparamsInput,
  PpoHyperparamsSchema,
  type PpoMetrics,
  type SupervisedHyperparamsInput,
  SupervisedHyperparamsSchema,
  type SupervisedMetrics,
  type SupervisedSample,
} from "./hyperparams.ts";
import { KvCache, type PromptKv, promptKvFromPrefill } from "./kv-cache.ts";
import {
  assertExecutionProvider,
  type BackendOptions,
  defaultThreads,
  type ExecutionProvider,
  GraphSession,
  type HostTensor,
} from "./ort-backend.ts";
import { decayMask, initParams, type ParamLayout, paramLayout } from "./params.ts";
import { createRng, type Rng } from "./rng.ts";
import { type SamplingOptions, sampleToken } from "./sampler.ts";
import { type Lease, SessionCache } from "./session-cache.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";
import {
  buildApplyGraph,
  buildGenerateGraph,
  buildScoreGraph,
  buildTrainGraph,
  type LossKind,
  TRAIN_METRIC_SUMS,
  type TrainGraphSpec,
} from "./transformer.ts";

export interface EngineOptions {
  readonly config: ModelConfigInput;
  /** flat parameters (see paramLayout); drawn from `rng` when absent */
  readonly params?: Float32Array;
  readonly rng?: Rng;
  readonly optimizerState?: OptimizerState;
  readonly executionProvider?: ExecutionProvider;
  /** intra-op threads; defaults to the number of cores */
  readonly threads?: number;
  /** let onnxruntime's idle threads spin (see README) */
  readonly spinning?: boolean;
  /** used for stop strings and the `text` of generations */
  readonly tokenizer?: Tokenizer;
  /** sequence-length buckets for train and scoring graphs; defaults to multiples of 16/32/64 up to maxSeqLen */
  readonly lengthBuckets?: readonly number[];
  /** compiled graphs kept (least recently used released first); default 24 */
  readonly maxCachedGraphs?: number;
  /**
   * run AdamW on the host, in place, with per-tensor gradients from the train graph (no flat
   * copies of weights, gradients or optimiser state inside onnxruntime); default: above
   * HOST_OPTIMIZER_MIN_PARAMS parameters, where the fused graph's copies stop fitting in memory
   */
  readonly optimizerOnHost?: boolean;
  /** rows decoded together at most (continuous batching admits waiting rows as others finish); default 256 */
  readonly maxBatchRows?: number;
  /**
   * KV-cache positions held at most (rows x per-row capacity, every layer): bounds the cache's
   * memory; default: what fits in DEFAULT_KV_CACHE_BYTES. At least one row always runs.
   */
  readonly maxBatchTokens?: number;
}

/** default bound on the decode KV cache, in bytes (see maxBatchTokens) */
export const DEFAULT_KV_CACHE_BYTES = 2 * 1024 ** 3;
const DEFAULT_MAX_BATCH_ROWS = 256;
/**
 * While rows are decoding, waiting rows join at most every this many decode steps (sooner when they
 * fill the free rows): each admission is a prefill run with a fixed cost, so rows arriving one by
 * one are prefilled a few at a time (bench:rollout, 256 questions: 143 prefill runs before, 64 now).
 */
const ADMIT_EVERY_STEPS = 4;
/** prefill runs are split so that their attention masks hold at most this many floats (64 MiB) */
const PREFILL_MASK_FLOATS = 2 ** 24;

/**
 * From this many parameters on, the optimiser runs on the host. The fused train graph keeps the
 * flat weights, their split views, the flat gradient and old and new AdamW state side by side
 * (~10 copies of the weights): cheapest for small models, but a Qwen2.5-0.5B-shaped model (494M
 * parameters) ran out of 24 GiB in its first step. On the host, one step holds the weights, the
 * AdamW state and one gradient (16 bytes per parameter) plus activations.
 */
export const HOST_OPTIMIZER_MIN_PARAMS = 32_000_000;

/**
 * Default micro-batches hold at most this many logits (floats): 32 rows of the synthetic task's
 * 99-token vocabulary, 3 rows of 128 tokens for Qwen's 151,936 (each logits-sized tensor <= 256 MiB).
 */
const LOGITS_BUDGET = 2 ** 26;

export interface GenerateRequest {
  readonly prompts: readonly (readonly number[])[];
  readonly maxNewTokens: number;
  /** 0 = greedy */
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  /** generation of a row ends after it samples one of these (the token is kept) */
  readonly stopTokens?: readonly number[];
  /** generation of a row ends once its decoded text contains one of these (needs a tokenizer) */
  readonly stopStrings?: readonly string[];
  /**
   * one random stream per prompt: row i draws only from `rngs[i]`, so its tokens do not depend on
   * which other rows share its batch
   */
  readonly rngs?: readonly Rng[];
  /** without `rngs`: each row's stream is seeded from this generator, in prompt order */
  readonly rng?: Rng;
}

/** What the decode loop did since the engine was created (for tests and benchmarks). */
export interface GenerationStats {
  /** prompts prefilled (identical prompts waiting together count once) */
  prefilledPrompts: number;
  /** prefill graph runs, and the wall time spent in them */
  prefillRuns: number;
  prefillSeconds: number;
  /** wall time spent in decode graph runs */
  decodeSeconds: number;
  /** decode graph runs */
  decodeSteps: number;
  /** rows over all decode steps (decodedRows / decodeSteps is the mean batch) */
  decodedRows: number;
  /** tokens sampled: each row's first (from its prefill) and one per decode step it took part in */
  generatedTokens: number;
  /** most rows decoded together */
  peakRows: number;
  /** most KV-cache positions held (rows x capacity) */
  peakCachePositions: number;
}

export const FinishReason = { stop: "stop", length: "length" } as const;
export type FinishReason = (typeof FinishReason)[keyof typeof FinishReason];

export interface Generation {
  /** generated tokens (prompt excluded, stop token included) */
  readonly tokens: number[];
  /** log-prob of each generated token under the policy (temperature 1, no truncation) */
  readonly logProbs: number[];
  readonly finishReason: FinishReason;
  /** decoded generated text when the engine has a tokenizer */
  readonly text: string | undefined;
}

export interface ScoredSequence {
  /** aligned with the tokens: entry i = log p(tokens[i] | tokens[..i]); entry 0 is 0 */
  readonly logProbs: number[];
  /** policy entropy at each position, aligned the same way; entry 0 is 0 */
  readonly entropy: number[];
}

const NEG_INF = -1e9;

function defaultBuckets(maxSeqLen: number): number[] {
  const out: number[] = [];
  for (let t = 16; t < maxSeqLen; t += t < 64 ? 16 : t < 256 ? 32 : 64) out.push(t);
  out.push(maxSeqLen);
  return out;
}

interface Chunk {
  readonly rows: readonly number[];
  readonly batch: number;
  readonly length: number;
}

function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export class PolicyEngine {
  readonly config: ModelConfig;
  readonly layout: ParamLayout;
  readonly tokenizer: Tokenizer | undefined;
  readonly #backend: BackendOptions;
  readonly #buckets: number[];
  readonly #sessions: SessionCache;
  readonly #decayMask: Float32Array;
  #params: Float32Array;
  // AdamW state, allocated by the first update (an engine that only samples never holds it)
  #mState: Float32Array | undefined;
  #vState: Float32Array | undefined;
  #step: number;
  #paramFeeds: Record<string, HostTensor> | undefined;
  readonly #optimizerOnHost: boolean;
  #disposed = false;
  readonly #maxBatchRows: number;
  readonly #maxBatchTokens: number;
  /** rows waiting to join the decode batch, first come first served */
  #waiting: WaitingRow[] = [];
  /** prefilled prompts of waiting rows (shared by identical prompts), and how many rows still need each */
  readonly #prefilled = new Map<string, PromptKv>();
  readonly #waitingByPrompt = new Map<string, number>();
  /** the running decode loop, while rows are active or waiting */
  #loop: Promise<void> | undefined;
  readonly #stats: GenerationStats = {
    prefilledPrompts: 0,
    prefillRuns: 0,
    prefillSeconds: 0,
    decodeSeconds: 0,
    decodeSteps: 0,
    decodedRows: 0,
    generatedTokens: 0,
    peakRows: 0,
    peakCachePositions: 0,
  };

  constructor(opts: EngineOptions & { params: Float32Array }) {
    this.config = ModelConfigSchema.parse(opts.config);
    this.layout = paramLayout(this.config);
    this.tokenizer = opts.tokenizer;
    if (opts.params.length !== this.layout.total) {
      throw new InputError("engine.params_size", [
        {
          path: "params",
          message: `expected ${this.layout.total} parameters for this config, got ${opts.params.length}`,
          hint: "load parameters saved with the same model config",
        },
      ]);
    }
    this.#params = opts.params;
    const state = opts.optimizerState;
    if (state && (state.m.length !== this.layout.total || state.v.length !== this.layout.total)) {
      throw new InputError("engine.optimizer_state_size", [
        { path: "optimizerState", message: "optimizer state size does not match the parameters" },
      ]);
    }
    this.#mState = state?.m;
    this.#vState = state?.v;
    this.#step = state?.step ?? 0;
    this.#optimizerOnHost = opts.optimizerOnHost ?? this.layout.total >= HOST_OPTIMIZER_MIN_PARAMS;
    // the host optimiser reads each spec's decay flag; only the graph optimiser needs the mask vector
    this.#decayMask = this.#optimizerOnHost ? new Float32Array(0) : decayMask(this.layout);
    this.#sessions = new SessionCache(opts.maxCachedGraphs ?? 24);
    this.#backend = {
      executionProvider: opts.executionProvider ?? "cpu",
      threads: opts.threads ?? defaultThreads(),
      spinning: opts.spinning ?? false,
    };
    const buckets = [...(opts.lengthBuckets ?? defaultBuckets(this.config.maxSeqLen))].sort((a, b) => a - b);
    if (buckets.length === 0 || buckets.some((b) => b < 1 || b > this.config.maxSeqLen)) {
      throw new InputError("engine.length_buckets", [
        { path: "lengthBuckets", message: `buckets must lie in [1, maxSeqLen=${this.config.maxSeqLen}]` },
      ]);
    }
    if (buckets[buckets.length - 1] !== this.config.maxSeqLen) buckets.push(this.config.maxSeqLen);
    this.#buckets = buckets;
    const d = modelDims(this.config);
    const bytesPerPosition = 2 * this.config.layers * d.kvHeads * d.headDim * 4;
    this.#maxBatchRows = opts.maxBatchRows ?? DEFAULT_MAX_BATCH_ROWS;
    this.#maxBatchTokens = opts.maxBatchTokens ?? Math.floor(DEFAULT_KV_CACHE_BYTES / bytesPerPosition);
    if (!(Number.isInteger(this.#maxBatchRows) && this.#maxBatchRows >= 1)) {
      throw new InputError("engine.max_batch_rows", [
        { path: "maxBatchRows", message: "must be a positive integer" },
      ]);
    }
    if (!(this.#maxBatchTokens >= 1)) {
      throw new InputError("engine.max_batch_tokens", [
        { path: "maxBatchTokens", message: "must be positive" },
      ]);
    }
  }

  /** a copy of the flat parameters */
  getParams(): Float32Array {
    return Float32Array.from(this.#params);
  }

  /** named copies of every parameter tensor */
  getNamedParams(): Record<string, { shape: readonly number[]; data: Float32Array }> {
    const out: Record<string, { shape: readonly number[]; data: Float32Array }> = {};
    for (const s of this.layout.specs) {
      out[s.name] = { shape: s.shape, data: this.#params.slice(s.offset, s.offset + s.size) };
    }
    return out;
  }

  /**
   * The live parameters and AdamW state, without copies (a 0.5B model's are 6 GB). They change with
   * the next update (the host optimiser writes into them in place): read them before training on.
   * Do not modify them.
   */
  snapshot(): { params: Float32Array; optimizerState: OptimizerState } {
    return { params: this.#params, optimizerState: { m: this.#m, v: this.#v, step: this.#step } };
  }

  getOptimizerState(): OptimizerState {
    return { m: Float32Array.from(this.#m), v: Float32Array.from(this.#v), step: this.#step };
  }

  get #m(): Float32Array {
    this.#mState ??= new Float32Array(this.layout.total);
    return this.#mState;
  }

  get #v(): Float32Array {
    this.#vState ??= new Float32Array(this.layout.total);
    return this.#vState;
  }

  /** a copy of the generation counters */
  get generationStats(): GenerationStats {
    return { ...this.#stats };
  }

  get step(): number {
    return this.#step;
  }

  setParams(params: Float32Array): void {
    // every row of a generation samples with the weights it started with
    if (this.#loop) throw new Error("PolicyEngine.setParams while generations are running");
    if (params.length !== this.layout.total) {
      throw new InputError("engine.params_size", [
        { path: "params", message: `expected ${this.layout.total} parameters, got ${params.length}` },
      ]);
    }
    this.#params = Float32Array.from(params);
    this.#paramFeeds = undefined;
  }

  /** everything saveCheckpoint needs to persist this engine's state */
  checkpointData(
    opts: { parent?: string | null; metadata?: Readonly<Record<string, string>> } = {},
  ): CheckpointData {
    return {
      config: this.config,
      params: this.getParams(),
      optimizerState: this.getOptimizerState(),
      ...(this.tokenizer ? { tokenizerJson: this.tokenizer.toJSON() } : {}),
      step: this.#step,
      parent: opts.parent ?? null,
      ...(opts.metadata ? { metadata: opts.metadata } : {}),
    };
  }

  async dispose(): Promise<void> {
    // running generations finish first (their sessions are in use)
    while (this.#loop) await this.#loop.catch(() => undefined);
    this.#disposed = true;
    await this.#sessions.clear();
  }

  // ------------------------------------------------------------------ sessions

  #session(key: string, build: () => GraphBuilder): Promise<Lease> {
    if (this.#disposed) throw new Error("PolicyEngine used after dispose()");
    return this.#sessions.acquire(key, () => GraphSession.create(toOnnxModel(build(), key), this.#backend));
  }

  /** runs one graph once, holding its session only for the run */
  async #runOnce(key: string, build: () => GraphBuilder, feeds: Record<string, HostTensor>) {
    const lease = await this.#session(key, build);
    try {
      return await lease.session.run(feeds);
    } finally {
      lease.release();
    }
  }

  #inferenceParamFeeds(): Record<string, HostTensor> {
    if (!this.#paramFeeds) {
      const feeds: Record<string, HostTensor> = {};
      for (const s of this.layout.specs) {
        feeds[s.name] = {
          dtype: "float32",
          data: this.#params.subarray(s.offset, s.offset + s.size),
          dims: s.shape,
        };
      }
      this.#paramFeeds = feeds;
    }
    return this.#paramFeeds;
  }

  // ------------------------------------------------------------------ batching

  #bucket(predictions: number): number {
    for (const b of this.#buckets) if (b >= predictions) return b;
    throw new Error(`sequence needs ${predictions} positions, above maxSeqLen`);
  }

  /** rows per graph run when the caller gives none: 32, fewer when their logits would pass LOGITS_BUDGET */
  #defaultRows(lengths: readonly number[]): number {
    const longest = this.#bucket(Math.max(1, Math.max(...lengths) - 1));
    return Math.max(1, Math.min(32, Math.floor(LOGITS_BUDGET / (longest * this.config.vocabSize))));
  }

  /** longest first, `microBatch` rows per chunk, each chunk padded to a pow2 row count and a length bucket */
  #plan(lengths: readonly number[], microBatch: number): Chunk[] {
    const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]!);
    const chunks: Chunk[] = [];
    for (let i = 0; i < order.length; i += microBatch) {
      const rows = order.slice(i, i + microBatch);
      const longest = Math.max(...rows.map((r) => lengths[r]!));
      chunks.push({
        rows,
        batch: Math.min(nextPow2(rows.length), microBatch),
        length: this.#bucket(longest - 1),
      });
    }
    return chunks;
  }

  #checkTokens(sequences: readonly (readonly number[])[], path: string, minLength: number): InputIssue[] {
    const issues: InputIssue[] = [];
    const { vocabSize, maxSeqLen } = this.config;
    sequences.forEach((tokens, i) => {
      if (tokens.length < minLength) {
        issues.push({
          path: `${path}[${i}].tokens`,
          message: `needs at least ${minLength} tokens, got ${tokens.length}`,
        });
      }
      if (tokens.length > maxSeqLen) {
        issues.push({
          path: `${path}[${i}].tokens`,
          message: `${tokens.length} tokens exceed maxSeqLen ${maxSeqLen}`,
          hint: "truncate the sequence or raise maxSeqLen",
        });
      }
      const bad = tokens.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= vocabSize);
      if (bad >= 0) {
        issues.push({
          path: `${path}[${i}].tokens[${bad}]`,
          message: `token id ${tokens[bad]} is outside the vocabulary [0, ${vocabSize})`,
        });
      }
    });
    return issues;
  }

  /** input/target ids of a chunk; right padding with id 0 */
  #packIds(tokens: readonly (readonly number[])[], chunk: Chunk): Record<string, HostTensor> {
    const { batch: B, length: T } = chunk;
    const input = new BigInt64Array(B * T);
    const target = new BigInt64Array(B * T);
    chunk.rows.forEach((r, b) => {
      const seq = tokens[r]!;
      for (let t = 0; t < seq.length - 1; t++) {
        input[b * T + t] = BigInt(seq[t]!);
        target[b * T + t] = BigInt(seq[t + 1]!);
      }
    });
    return {
      input_ids: { dtype: "int64", data: input, dims: [B, T] },
      target_ids: { dtype: "int64", data: target, dims: [B, T] },
    };
  }

  /** a per-token array shifted to prediction positions ([b,t] = values[t+1]) */
  #packShifted(values: (r: number) => readonly number[] | undefined, chunk: Chunk, fallback = 0): HostTensor {
    const { batch: B, length: T } = chunk;
    const out = new Float32Array(B * T);
    chunk.rows.forEach((r, b) => {
      const v = values(r);
      if (!v) {
        if (fallback !== 0) out.fill(fallback, b * T, (b + 1) * T);
        return;
      }
      for (let t = 0; t < v.length - 1; t++) out[b * T + t] = v[t + 1]!;
    });
    return { dtype: "float32", data: out, dims: [B, T] };
  }

  // ------------------------------------------------------------------ scoring

  /** per-token log-probs and entropy of whole sequences under the current parameters */
  async forwardLogProbs(sequences: readonly (readonly number[])[], opts: { microBatchSize?: number } = {}) {
    const issues = this.#checkTokens(sequences, "sequences", 1);
    if (issues.length > 0) throw new InputError("engine.invalid_sequences", issues);
    const results: ScoredSequence[] = sequences.map((s) => ({
      logProbs: new Array<number>(s.length).fill(0),
      entropy: new Array<number>(s.length).fill(0),
    }));
    const scorable = sequences.map((s, i) => ({ s, i })).filter(({ s }) => s.length >= 2);
    const lengths = scorable.map(({ s }) => s.length);
    const chunks =
      lengths.length === 0 ? [] : this.#plan(lengths, opts.microBatchSize ?? this.#defaultRows(lengths));
    const paramFeeds = this.#inferenceParamFeeds();
    for (const chunk of chunks) {
      const out = await this.#runOnce(
        `score:B${chunk.batch}:T${chunk.length}`,
        () => buildScoreGraph(this.config, chunk.batch, chunk.length),
        {
          ...paramFeeds,
          ...this.#packIds(
            scorable.map(({ s }) => s),
            chunk,
          ),
        },
      );
      const logp = out.logp!.data as Float32Array;
      const entropy = out.entropy!.data as Float32Array;
      chunk.rows.forEach((r, b) => {
        const { s, i } = scorable[r]!;
        const res = results[i]!;
        for (let t = 0; t < s.length - 1; t++) {
          res.logProbs[t + 1] = logp[b * chunk.length + t]!;
          res.entropy[t + 1] = entropy[b * chunk.length + t]!;
        }
      });
    }
    return results;
  }

  /**
   * Logits at every position of each sequence ([length, vocabSize] row-major: row i predicts
   * tokens[i+1]), from the same static-shape forward graph as `forwardLogProbs`.
   */
  async forwardLogits(sequences: readonly (readonly number[])[], opts: { microBatchSize?: number } = {}) {
    const issues = this.#checkTokens(sequences, "sequences", 1);
    if (issues.length > 0) throw new InputError("engine.invalid_sequences", issues);
    const V = this.config.vocabSize;
    // n tokens have n next-token rows: score each sequence with one extra (ignored) target
    const padded = sequences.map((s) => [...s, 0]);
    const results = sequences.map((s) => new Float32Array(s.length * V));
    const lengths = padded.map((s) => s.length);
    const chunks =
      lengths.length === 0 ? [] : this.#plan(lengths, opts.microBatchSize ?? this.#defaultRows(lengths));
    const paramFeeds = this.#inferenceParamFeeds();
    for (const chunk of chunks) {
      const out = await this.#runOnce(
        `score-logits:B${chunk.batch}:T${chunk.length}`,
        () => buildScoreGraph(this.config, chunk.batch, chunk.length, "float32", true),
        { ...paramFeeds, ...this.#packIds(padded, chunk) },
      );
      const logits = out.logits!.data as Float32Array;
      chunk.rows.forEach((r, b) => {
        const n = sequences[r]!.length;
        const start = b * chunk.length * V;
        results[r]!.set(logits.subarray(start, start + n * V));
      });
    }
    return results;
  }

  /** next-token logits [B*V] of each sequence by a full forward pass (no cache) */
  async nextTokenLogits(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const issues = this.#checkTokens(sequences, "sequences", 1);
    if (issues.length > 0) throw new InputError("engine.invalid_sequences", issues);
    const V = this.config.vocabSize;
    const out: Float32Array[] = [];
    for (const seq of sequences) {
      const T = seq.length;
      const mask = new Float32Array(T * T).fill(NEG_INF);
      for (let t = 0; t < T; t++) mask.fill(0, t * T, t * T + t + 1);
      const r = await this.#runOnce("prefill", () => buildGenerateGraph(this.config, false), {
        ...this.#inferenceParamFeeds(),
        tokens: { dtype: "int64", data: BigInt64Array.from(seq.map(BigInt)), dims: [1, T] },
        positions: { dtype: "int64", data: BigInt64Array.from(seq.map((_, i) => BigInt(i))), dims: [1, T] },
        mask: { dtype: "float32", data: mask, dims: [1, T, T] },
      });
      out.push(Float32Array.from((r.logits!.data as Float32Array).subarray(0, V)));
    }
    return out;
  }

  // ------------------------------------------------------------------ training

  /** checks a PPO batch and builds its per-chunk loss inputs */
  #ppoBatch(samples: readonly PolicySample[], hp: ReturnType<typeof PpoHyperparamsSchema.parse>) {
    const issues = this.#checkTokens(
      samples.map((s) => s.tokens),
      "samples",
      2,
    );
    samples.forEach((s, i) => {
      const arrays: [string, readonly number[] | undefined, boolean][] = [
        ["lossMask", s.lossMask, true],
        ["advantages", s.advantages, true],
        ["behaviourLogProbs", s.behaviourLogProbs, true],
        ["proximalLogProbs", s.proximalLogProbs, false],
        ["referenceLogProbs", s.referenceLogProbs, hp.klCoef > 0],
      ];
      for (const [name, arr, required] of arrays) {
        if (!arr) {
          if (required) issues.push({ path: `samples[${i}].${name}`, message: "is required" });
        } else if (arr.length !== s.tokens.length) {
          issues.push({
            path: `samples[${i}].${name}`,
            message: `has ${arr.length} entries, tokens has ${s.tokens.length}`,
            hint: "per-token arrays are aligned with tokens (entry 0 unused)",
          });
        }
      }
    });
    const fromCurrent = hp.proximalPolicy === "current";
    if (fromCurrent) {
      const given = samples.findIndex((s) => s.proximalLogProbs !== undefined);
      if (given >= 0) {
        issues.push({
          path: `samples[${given}].proximalLogProbs`,
          message: 'given while proximalPolicy is "current" (computed from the parameters in the update)',
          hint: 'drop proximalLogProbs, or pass proximalPolicy "samples" to use them',
        });
      }
    }
    if (issues.length > 0) throw new InputError("engine.invalid_ppo_batch", issues);
    const spec = {
      loss: "ppo" as LossKind,
      klToReference: hp.klCoef > 0,
      entropyBonus: hp.entropyCoef > 0,
      proximalFromCurrent: fromCurrent,
    };
    const lossFeeds = (chunk: Chunk): Record<string, HostTensor> => {
      const f: Record<string, HostTensor> = {
        advantages: this.#packShifted((r) => samples[r]!.advantages, chunk),
        behaviour_logp: this.#packShifted((r) => samples[r]!.behaviourLogProbs, chunk),
        ...(fromCurrent
          ? {}
          : {
              proximal_logp: this.#packShifted(
                (r) => samples[r]!.proximalLogProbs ?? samples[r]!.behaviourLogProbs,
                chunk,
              ),
            }),
        clip_low: scalar(hp.clipLow),
        clip_high: scalar(hp.clipHigh),
        iw_cap: scalar(hp.importanceWeightCap),
        iw_over_cap: scalar(hp.importanceWeightMode === "clip" ? hp.importanceWeightCap : 0),
      };
      if (spec.klToReference) {
        f.reference_logp = this.#packShifted((r) => samples[r]!.referenceLogProbs, chunk);
        f.kl_coef = scalar(hp.klCoef);
      }
      if (spec.entropyBonus) f.entropy_coef = scalar(hp.entropyCoef);
      return f;
    };
    return {
      tokens: samples.map((s) => s.tokens),
      maskOf: (r: number) => samples[r]!.lossMask,
      spec,
      lossFeeds,
    };
  }

  /**
   * The gradient of the PPO loss over `samples` with respect to every parameter (flat, in
   * paramLayout order), without updating anything: what parity checks against a reference
   * implementation compare. Same loss, micro-batching and token-mean normalisation as trainStep.
   */
  async ppoGradient(
    samples: readonly PolicySample[],
    hyperparams: PpoHyperparamsInput = {},
  ): Promise<{ loss: number; gradient: Float32Array }> {
    const hp = PpoHyperparamsSchema.parse(hyperparams);
    const batch = this.#ppoBatch(samples, hp);
    const r = await this.#update(batch.tokens, batch.maskOf, batch.spec, hp, batch.lossFeeds, false);
    return { loss: r.loss, gradient: r.gradient! };
  }

  /** one PPO update over `samples` (gradient accumulation over micro-batches, one AdamW step) */
  async trainStep(
    samples: readonly PolicySample[],
    hyperparams: PpoHyperparamsInput = {},
  ): Promise<PpoMetrics> {
    const hp = PpoHyperparamsSchema.parse(hyperparams);
    const batch = this.#ppoBatch(samples, hp);
    const r = await this.#update(batch.tokens, batch.maskOf, batch.spec, hp, batch.lossFeeds, true);
    const per = (name: string) => (r.sums[name] ?? 0) / r.tokens;
    return {
      loss: r.loss,
      policyLoss: per("sum_pg_loss"),
      entropy: per("sum_entropy"),
      clipFraction: per("sum_clipped"),
      approxKl: per("sum_approx_kl"),
      klToReference: per("sum_kl_ref"),
      importanceWeight: per("sum_importance_weight"),
      logProbGap: per("sum_logprob_gap"),
      gradNorm: r.gradNorm,
      tokens: r.tokens,
      microBatches: r.microBatches,
      step: this.#step,
    };
  }

  /** one supervised (cross-entropy) update: warm start */
  async supervisedStep(
    samples: readonly SupervisedSample[],
    hyperparams: SupervisedHyperparamsInput = {},
  ): Promise<SupervisedMetrics> {
    const hp = SupervisedHyperparamsSchema.parse(hyperparams);
    const issues = this.#checkTokens(
      samples.map((s) => s.tokens),
      "samples",
      2,
    );
    samples.forEach((s, i) => {
      if (s.lossMask && s.lossMask.length !== s.tokens.length) {
        issues.push({
          path: `samples[${i}].lossMask`,
          message: `has ${s.lossMask.length} entries, tokens has ${s.tokens.length}`,
        });
      }
    });
    if (issues.length > 0) throw new InputError("engine.invalid_supervised_batch", issues);
    const allOnes = samples.map((s) => (s.lossMask ? undefined : s.tokens.map((_, t) => (t === 0 ? 0 : 1))));
    const spec = { loss: "supervised" as LossKind, klToReference: false, entropyBonus: hp.entropyCoef > 0 };
    const r = await this.#update(
      samples.map((s) => s.tokens),
      (r) => samples[r]!.lossMask ?? allOnes[r]!,
      spec,
      hp,
      () => (spec.entropyBonus ? { entropy_coef: scalar(hp.entropyCoef) } : {}),
    );
    const per = (name: string) => (r.sums[name] ?? 0) / r.tokens;
    return {
      loss: r.loss,
      nll: per("sum_nll"),
      tokenAccuracy: per("sum_correct"),
      entropy: per("sum_entropy"),
      gradNorm: r.gradNorm,
      tokens: r.tokens,
      microBatches: r.microBatches,
      step: this.#step,
    };
  }

  async #update(
    tokens: readonly (readonly number[])[],
    maskOf: (row: number) => readonly number[],
    spec: Pick<TrainGraphSpec, "loss" | "klToReference" | "entropyBonus" | "proximalFromCurrent">,
    hp: OptimizerHyperparams,
    lossFeeds: (chunk: Chunk) => Record<string, HostTensor>,
    apply = true,
  ): Promise<{
    loss: number;
    sums: Record<string, number>;
    gradNorm: number;
    tokens: number;
    microBatches: number;
    /** the summed gradient, when not applied */
    gradient?: Float32Array;
  }> {
    let maskedTokens = 0;
    tokens.forEach((_, r) => {
      const m = maskOf(r);
      for (let t = 1; t < m.length; t++) maskedTokens += m[t]!;
    });
    if (!(maskedTokens > 0)) {
      throw new InputError("engine.empty_batch", [
        {
          path: "samples",
          message: "no token has a non-zero loss mask",
          hint: "mark completion tokens with lossMask 1",
        },
      ]);
    }
    const lengths = tokens.map((t) => t.length);
    const chunks = this.#plan(lengths, hp.microBatchSize ?? this.#defaultRows(lengths));
    const mode = this.#optimizerOnHost ? "separate" : chunks.length === 1 && apply ? "fused" : "gradient";
    const step = this.#step + 1;
    const n = this.layout.total;
    const optimizerFeeds: Record<string, HostTensor> = {
      adam_m: { dtype: "float32", data: this.#m, dims: [n] },
      adam_v: { dtype: "float32", data: this.#v, dims: [n] },
      decay_mask: { dtype: "float32", data: this.#decayMask, dims: [n] },
      lr: scalar(hp.lr),
      beta1: scalar(hp.beta1),
      beta2: scalar(hp.beta2),
      adam_eps: scalar(hp.eps),
      weight_decay: scalar(hp.weightDecay),
      bias_corr1: scalar(1 - hp.beta1 ** step),
      bias_corr2: scalar(1 - hp.beta2 ** step),
      max_grad_norm: scalar(hp.maxGradNorm),
    };
    const params: Record<string, HostTensor> =
      mode === "separate"
        ? this.#inferenceParamFeeds()
        : { params: { dtype: "float32", data: this.#params, dims: [n] } };
    const sums: Record<string, number> = {};
    let loss = 0;
    let accumulated: Float32Array | undefined;
    // separate mode: one gradient per parameter tensor, summed over micro-batches
    const tensorGrads = new Map<string, Float32Array>();
    let applied: Record<string, HostTensor> | undefined;
    for (const chunk of chunks) {
      const fullSpec: TrainGraphSpec = { ...spec, batch: chunk.batch, length: chunk.length, mode };
      const key = `train:${spec.loss}:kl${Number(spec.klToReference)}:ent${Number(spec.entropyBonus)}:prox${Number(spec.proximalFromCurrent ?? false)}:${mode}:B${chunk.batch}:T${chunk.length}`;
      const feeds: Record<string, HostTensor> = {
        ...params,
        ...this.#packIds(tokens, chunk),
        loss_mask: this.#packShifted(maskOf, chunk),
        loss_scale: scalar(1 / maskedTokens),
        ...lossFeeds(chunk),
        ...(mode === "fused" ? optimizerFeeds : {}),
      };
      const out = await this.#runOnce(key, () => buildTrainGraph(this.config, fullSpec), feeds);
      loss += (out.loss!.data as Float32Array)[0]!;
      for (const name of TRAIN_METRIC_SUMS[spec.loss])
        sums[name] = (sums[name] ?? 0) + (out[name]!.data as Float32Array)[0]!;
      if (mode === "fused") applied = out;
      else if (mode === "separate") {
        for (const spec of this.layout.specs) {
          const g = out[`grad.${spec.name}`]!.data as Float32Array;
          const sum = tensorGrads.get(spec.name);
          if (!sum) tensorGrads.set(spec.name, g);
          else for (let i = 0; i < g.length; i++) sum[i]! += g[i]!;
        }
      } else {
        const g = out.grad!.data as Float32Array;
        if (!accumulated) accumulated = g;
        else for (let i = 0; i < n; i++) accumulated[i]! += g[i]!;
      }
    }
    if (mode === "separate") {
      if (!apply) {
        const flat = new Float32Array(n);
        for (const spec of this.layout.specs) flat.set(tensorGrads.get(spec.name)!, spec.offset);
        tensorGrads.clear();
        accumulated = flat;
      } else {
        const gradNorm = this.#adamWOnHost(tensorGrads, hp, step);
        this.#step = step;
        return { loss, sums, gradNorm, tokens: maskedTokens, microBatches: chunks.length };
      }
    }
    if (!apply) {
      const g = accumulated!;
      let sq = 0;
      for (let i = 0; i < n; i++) sq += g[i]! * g[i]!;
      return {
        loss,
        sums,
        gradNorm: Math.sqrt(sq),
        tokens: maskedTokens,
        microBatches: chunks.length,
        gradient: g,
      };
    }
    if (!applied) {
      applied = await this.#runOnce("apply", () => buildApplyGraph(this.config), {
        ...params,
        grad: { dtype: "float32", data: accumulated!, dims: [n] },
        ...optimizerFeeds,
      });
    }
    this.#params = applied.new_params!.data as Float32Array;
    this.#mState = applied.new_m!.data as Float32Array;
    this.#vState = applied.new_v!.data as Float32Array;
    this.#step = step;
    this.#paramFeeds = undefined;
    const gradNorm = (applied.grad_norm!.data as Float32Array)[0]!;
    return { loss, sums, gradNorm, tokens: maskedTokens, microBatches: chunks.length };
  }

  /**
   * AdamW in place over the parameters and optimiser state, tensor by tensor: the same update as
   * the graph's (global-norm clipping, bias correction, decoupled weight decay on matrices) without
   * a second copy of anything. Returns the global gradient norm before clipping.
   */
  #adamWOnHost(grads: Map<string, Float32Array>, hp: OptimizerHyperparams, step: number): number {
    let sq = 0;
    for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
    const gradNorm = Math.sqrt(sq);
    const coef = Math.min(1, hp.maxGradNorm / (gradNorm + 1e-6));
    const { lr, beta1, beta2, eps } = hp;
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    const params = this.#params;
    const m = this.#m;
    const v = this.#v;
    for (const spec of this.layout.specs) {
      const g = grads.get(spec.name)!;
      const decay = spec.decay ? hp.weightDecay : 0;
      const o = spec.offset;
      for (let i = 0; i < g.length; i++) {
        const gi = g[i]! * coef;
        const mi = beta1 * m[o + i]! + (1 - beta1) * gi;
        const vi = beta2 * v[o + i]! + (1 - beta2) * gi * gi;
        m[o + i] = mi;
        v[o + i] = vi;
        const p = params[o + i]!;
        params[o + i] = p - lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + decay * p);
      }
      grads.delete(spec.name);
    }
    return gradNorm;
  }

  // ------------------------------------------------------------------ generation

  /**
   * Sampling with a KV cache and continuous batching. The rows of every `generate` call on this
   * engine share one decode loop: waiting rows are prefilled and join between decode steps as far
   * as `maxBatchRows` and `maxBatchTokens` allow, finished rows leave at once, and identical prompts
   * waiting together are prefilled once (their cache entries are copied). Each row draws from its
   * own random stream, so what it samples does not depend on its batch companions. Results are in
   * prompt order.
   */
  generate(req: GenerateRequest): Promise<Generation[]> {
    const issues = this.#checkTokens(req.prompts, "prompts", 1);
    req.prompts.forEach((p, i) => {
      if (p.length >= this.config.maxSeqLen) {
        issues.push({
          path: `prompts[${i}]`,
          message: `prompt of ${p.length} tokens leaves no room below maxSeqLen`,
        });
      }
    });
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 1) {
      issues.push({ path: "maxNewTokens", message: "must be a positive integer" });
    }
    if (req.stopStrings && req.stopStrings.length > 0 && !this.tokenizer) {
      issues.push({ path: "stopStrings", message: "stop strings need an engine created with a tokenizer" });
    }
    if (req.rngs !== undefined && req.rngs.length !== req.prompts.length) {
      issues.push({
        path: "rngs",
        message: `one stream per prompt: ${req.prompts.length} prompts, ${req.rngs.length} streams`,
      });
    }
    if (req.rngs === undefined && req.rng === undefined) {
      issues.push({ path: "rng", message: "pass rng, or rngs (one per prompt)" });
    }
    const sampling: SamplingOptions = {
      temperature: req.temperature ?? 1,
      topP: req.topP ?? 1,
      topK: req.topK ?? 0,
    };
    if (!(sampling.topP > 0 && sampling.topP <= 1))
      issues.push({ path: "topP", message: "must be in (0, 1]" });
    if (!(sampling.temperature >= 0))
      issues.push({ path: "temperature", message: "must be >= 0 (0 = greedy)" });
    if (!Number.isInteger(sampling.topK) || sampling.topK < 0) {
      issues.push({ path: "topK", message: "must be a non-negative integer (0 = off)" });
    }
    if (issues.length > 0) return Promise.reject(new InputError("engine.invalid_generate_request", issues));
    if (req.prompts.length === 0) return Promise.resolve([]);
    if (this.#disposed) return Promise.reject(new Error("PolicyEngine used after dispose()"));
    // without explicit streams, each row's stream is seeded from the caller's generator in prompt order
    const rngs = req.rngs ?? req.prompts.map(() => createRng(Math.floor(req.rng!.next() * 2 ** 32)));
    return new Promise<Generation[]>((resolve, reject) => {
      const call: GenerationCall = {
        maxNewTokens: req.maxNewTokens,
        sampling,
        stopTokens: new Set(req.stopTokens ?? []),
        stopStrings: req.stopStrings ?? [],
        results: new Array(req.prompts.length),
        remaining: req.prompts.length,
        resolve,
        reject,
      };
      req.prompts.forEach((prompt, index) => {
        const key = prompt.join(",");
        this.#waiting.push({ call, index, prompt, key, rng: rngs[index]! });
        this.#waitingByPrompt.set(key, (this.#waitingByPrompt.get(key) ?? 0) + 1);
      });
      this.#startLoop();
    });
  }

  #startLoop(): void {
    if (this.#loop) return;
    this.#loop = this.#decodeLoop().finally(() => {
      this.#loop = undefined;
      // rows that arrived after the loop decided to end
      if (this.#waiting.length > 0) this.#startLoop();
    });
  }

  /** decodes until no row is active or waiting; a failure fails every call in flight */
  async #decodeLoop(): Promise<void> {
    const { vocabSize, layers } = this.config;
    const d = modelDims(this.config);
    const cache = new KvCache({ layers, kvHeads: d.kvHeads, headDim: d.headDim });
    // active[i] is the row in cache row i
    const active: ActiveRow[] = [];
    const admitting: WaitingRow[] = [];
    let decode: Lease | undefined;
    let stepsSinceAdmission = 0;
    try {
      const paramFeeds = this.#inferenceParamFeeds();
      for (;;) {
        const free = this.#maxBatchRows - active.length;
        if (
          active.length === 0 ||
          stepsSinceAdmission >= ADMIT_EVERY_STEPS ||
          this.#waiting.length >= Math.max(1, free)
        ) {
          await this.#admit(cache, active, admitting, paramFeeds);
          stepsSinceAdmission = 0;
        }
        stepsSinceAdmission++;
        if (active.length === 0) {
          if (this.#waiting.length === 0) break;
          continue; // the rows admitted finished on their first token
        }
        decode ??= await this.#session("decode", () => buildGenerateGraph(this.config, true));
        const B = active.length;
        const views = cache.views();
        const C = cache.capacity;
        const feeds: Record<string, HostTensor> = { ...paramFeeds };
        for (let l = 0; l < layers; l++) {
          feeds[`past_k.${l}`] = { dtype: "float32", data: views.k[l]!, dims: [B, d.kvHeads, d.headDim, C] };
          feeds[`past_v.${l}`] = { dtype: "float32", data: views.v[l]!, dims: [B, d.kvHeads, C, d.headDim] };
        }
        const stepTokens = new BigInt64Array(B);
        const stepPositions = new BigInt64Array(B);
        active.forEach((row, b) => {
          stepTokens[b] = BigInt(row.tokens[row.tokens.length - 1]!);
          // a row's filled slots are its prompt and every generated token but the newest
          stepPositions[b] = BigInt(cache.filled(b));
        });
        feeds.tokens = { dtype: "int64", data: stepTokens, dims: [B, 1] };
        feeds.positions = { dtype: "int64", data: stepPositions, dims: [B, 1] };
        feeds.mask = { dtype: "float32", data: cache.mask(NEG_INF), dims: [B, 1, C] };
        const decodeStarted = performance.now();
        const out = await decode.session.run(feeds);
        this.#stats.decodeSeconds += (performance.now() - decodeStarted) / 1000;
        this.#stats.decodeSteps++;
        this.#stats.decodedRows += B;
        this.#stats.generatedTokens += B;
        this.#stats.peakRows = Math.max(this.#stats.peakRows, B);
        this.#stats.peakCachePositions = Math.max(this.#stats.peakCachePositions, B * C);
        for (let l = 0; l < layers; l++) {
          cache.write(l, out[`new_k.${l}`]!.data as Float32Array, out[`new_v.${l}`]!.data as Float32Array);
        }
        cache.advance();
        const logits = out.logits!.data as Float32Array;
        const finished: number[] = [];
        active.forEach((row, b) => {
          const s = sampleToken(logits, b * vocabSize, vocabSize, row.call.sampling, row.rng);
          row.tokens.push(s.token);
          row.logProbs.push(s.logProb);
          if (this.#finishIfDone(row)) finished.push(b);
        });
        // finished rows leave; from the back, so that the row moved into a freed slot is a live one
        for (let i = finished.length - 1; i >= 0; i--) {
          const b = finished[i]!;
          const moved = cache.remove(b);
          if (moved !== undefined) active[b] = active[moved]!;
          active.length = cache.rows;
        }
      }
    } catch (error) {
      const calls = new Set<GenerationCall>([
        ...active.map((r) => r.call),
        ...admitting.map((r) => r.call),
        ...this.#waiting.map((r) => r.call),
      ]);
      this.#waiting = [];
      this.#waitingByPrompt.clear();
      this.#prefilled.clear();
      for (const call of calls) call.reject(error);
    } finally {
      decode?.release();
    }
  }

  /**
   * Moves waiting rows into the batch, first come first served, while the row and token caps allow
   * (one row always): prefills the prompts not prefilled yet, samples each row's first token.
   */
  async #admit(
    cache: KvCache,
    active: ActiveRow[],
    admitting: WaitingRow[],
    paramFeeds: Record<string, HostTensor>,
  ): Promise<void> {
    let capacity = cache.capacity;
    let taken = 0;
    while (taken < this.#waiting.length) {
      const row = this.#waiting[taken]!;
      const rows = active.length + taken + 1;
      const need = Math.min(row.prompt.length + row.call.maxNewTokens, this.config.maxSeqLen);
      const C = Math.max(capacity, need);
      if (rows > 1 && (rows > this.#maxBatchRows || rows * C > this.#maxBatchTokens)) break;
      capacity = C;
      taken++;
    }
    if (taken === 0) return;
    admitting.push(...this.#waiting.splice(0, taken));
    const missing = new Map<string, readonly number[]>();
    for (const row of admitting) if (!this.#prefilled.has(row.key)) missing.set(row.key, row.prompt);
    await this.#prefill(missing, paramFeeds);
    const rows = active.length + admitting.length;
    // room for more rows than needed now (fewer reallocations as rows join), within both caps
    const roomy = Math.min(nextPow2(rows), this.#maxBatchRows, Math.floor(this.#maxBatchTokens / capacity));
    cache.reserve(Math.max(rows, roomy), capacity);
    const { vocabSize } = this.config;
    for (const waiting of admitting) {
      const prompt = this.#prefilled.get(waiting.key)!;
      const left = this.#waitingByPrompt.get(waiting.key)! - 1;
      if (left > 0) this.#waitingByPrompt.set(waiting.key, left);
      else {
        this.#waitingByPrompt.delete(waiting.key);
        this.#prefilled.delete(waiting.key);
      }
      const first = sampleToken(prompt.logits, 0, vocabSize, waiting.call.sampling, waiting.rng);
      this.#stats.generatedTokens++;
      const row: ActiveRow = {
        call: waiting.call,
        index: waiting.index,
        promptLength: waiting.prompt.length,
        rng: waiting.rng,
        tokens: [first.token],
        logProbs: [first.logProb],
        text: "",
      };
      if (!this.#finishIfDone(row)) {
        cache.append(prompt);
        active.push(row);
      }
    }
    admitting.length = 0;
  }

  /** prefills `prompts` (by key), left-padded in runs whose masks stay within PREFILL_MASK_FLOATS */
  async #prefill(prompts: ReadonlyMap<string, readonly number[]>, paramFeeds: Record<string, HostTensor>) {
    const { vocabSize, layers } = this.config;
    const d = modelDims(this.config);
    const shape = { layers, kvHeads: d.kvHeads, headDim: d.headDim };
    const entries = [...prompts];
    for (let start = 0; start < entries.length; ) {
      let end = start + 1;
      let Lp = entries[start]![1].length;
      while (end < entries.length) {
        const longest = Math.max(Lp, entries[end]![1].length);
        if ((end - start + 1) * longest * longest > PREFILL_MASK_FLOATS) break;
        Lp = longest;
        end++;
      }
      const chunk = entries.slice(start, end);
      start = end;
      this.#stats.prefilledPrompts += chunk.length;
      const B = chunk.length;
      const tokens = new BigInt64Array(B * Lp);
      const positions = new BigInt64Array(B * Lp);
      const mask = new Float32Array(B * Lp * Lp).fill(NEG_INF);
      const pads = chunk.map(([, p]) => Lp - p.length);
      chunk.forEach(([, p], b) => {
        const pad = pads[b]!;
        for (let t = 0; t < Lp; t++) {
          if (t >= pad) {
            tokens[b * Lp + t] = BigInt(p[t - pad]!);
            positions[b * Lp + t] = BigInt(t - pad);
          }
          for (let s = pad; s <= t; s++) mask[(b * Lp + t) * Lp + s] = 0;
        }
      });
      const prefillStarted = performance.now();
      const out = await this.#runOnce("prefill", () => buildGenerateGraph(this.config, false), {
        ...paramFeeds,
        tokens: { dtype: "int64", data: tokens, dims: [B, Lp] },
        positions: { dtype: "int64", data: positions, dims: [B, Lp] },
        mask: { dtype: "float32", data: mask, dims: [B, Lp, Lp] },
      });
      this.#stats.prefillSeconds += (performance.now() - prefillStarted) / 1000;
      this.#stats.prefillRuns++;
      const prefill = {
        k: Array.from({ length: layers }, (_, l) => out[`new_k.${l}`]!.data as Float32Array),
        v: Array.from({ length: layers }, (_, l) => out[`new_v.${l}`]!.data as Float32Array),
        logits: out.logits!.data as Float32Array,
      };
      chunk.forEach(([key], b) => {
        this.#prefilled.set(key, promptKvFromPrefill(shape, prefill, b, Lp, pads[b]!, vocabSize));
      });
    }
  }

  /** records the row's result when its newest token ends it; resolves its call when it was the last row */
  #finishIfDone(row: ActiveRow): boolean {
    const { call } = row;
    const token = row.tokens[row.tokens.length - 1]!;
    let finish: FinishReason | undefined;
    if (call.stopTokens.has(token)) finish = "stop";
    if (!finish && call.stopStrings.length > 0 && this.tokenizer) {
      const before = row.text.length;
      row.text = this.tokenizer.decode(row.tokens);
      const from = (stop: string) => Math.max(0, before - stop.length);
      if (call.stopStrings.some((stop) => row.text.indexOf(stop, from(stop)) >= 0)) finish = "stop";
    }
    if (
      !finish &&
      (row.tokens.length >= call.maxNewTokens ||
        row.promptLength + row.tokens.length >= this.config.maxSeqLen)
    ) {
      finish = "length";
    }
    if (!finish) return false;
    call.results[row.index] = {
      tokens: row.tokens,
      logProbs: row.logProbs,
      finishReason: finish,
      text: this.tokenizer ? this.tokenizer.decode(row.tokens) : undefined,
    };
    call.remaining--;
    if (call.remaining === 0) call.resolve(call.results.map((r) => r!));
    return true;
  }
}

/** one `generate` call: its settings and results */
interface GenerationCall {
  readonly maxNewTokens: number;
  readonly sampling: SamplingOptions;
  readonly stopTokens: ReadonlySet<number>;
  readonly stopStrings: readonly string[];
  readonly results: (Generation | undefined)[];
  remaining: number;
  readonly resolve: (generations: Generation[]) => void;
  readonly reject: (error: unknown) => void;
}

/** a prompt row waiting to join the decode batch */
interface WaitingRow {
  readonly call: GenerationCall;
  readonly index: number;
  readonly prompt: readonly number[];
  /** identical prompts share a key and one prefill */
  readonly key: string;
  readonly rng: Rng;
}

interface ActiveRow {
  readonly call: GenerationCall;
  readonly index: number;
  readonly promptLength: number;
  readonly rng: Rng;
  readonly tokens: number[];
  readonly logProbs: number[];
  /** decoded text so far (kept only for stop strings) */
  text: string;
}

function scalar(x: number): HostTensor {
  return { dtype: "float32", data: Float32Array.of(x), dims: [] };
}

/** an engine over fresh (from `rng`) or given parameters; checks the execution provider up front */
export async function createEngine(opts: EngineOptions): Promise<PolicyEngine> {
  const config = ModelConfigSchema.parse(opts.config);
  await assertExecutionProvider(opts.executionProvider ?? "cpu");
  let params = opts.params;
  if (!params) {
    if (!opts.rng) {
      throw new InputError("engine.no_params", [
        {
          path: "params",
          message: "pass params, or an rng to initialise them",
          hint: "createEngine({ config, rng: createRng(seed) })",
        },
      ]);
    }
    params = initParams(config, opts.rng);
  }
  return new PolicyEngine({ ...opts, config, params });
}

/** an engine restored from a verified checkpoint (weights, optimizer state, tokenizer) */
export async function createEngineFromCheckpoint(
  store: ObjectStore,
  prefix: string,
  opts: Omit<EngineOptions, "config" | "params" | "optimizerState" | "rng"> = {},
): Promise<PolicyEngine> {
  const ckpt = await loadCheckpoint(store, prefix);
  const tokenizer =
    opts.tokenizer ?? (ckpt.tokenizerJson !== undefined ? loadTokenizer(ckpt.tokenizerJson) : undefined);
  return createEngine({
    ...opts,
    config: ckpt.config,
    params: ckpt.params,
    ...(ckpt.optimizerState ? { optimizerState: ckpt.optimizerState } : {}),
    ...(tokenizer ? { tokenizer } : {}),
  });
}
