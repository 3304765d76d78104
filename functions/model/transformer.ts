/**
 * The decoder-only transformer as ONNX graphs: a static-shape scoring graph (log-probs of given
 * tokens), prefill and one-token decode graphs with a KV cache (dynamic batch and past length), and
 * train-step graphs (PPO or supervised loss, autodiff backward, AdamW) over a flat parameter vector.
 */
import { type ModelConfig, modelDims } from "./config.ts";
import { gradients } from "./graph/autodiff.ts";
import { type Dim, type FloatDType, GraphBuilder, type Value } from "./graph/graph-builder.ts";
import { type ParamLayout, paramLayout } from "./params.ts";

export type ParamValues = Readonly<Record<string, Value>>;

/** where tokens sit: 0..T-1 for every row (static) or per-token position ids [B,T] (dynamic) */
export type PositionSource =
  | { readonly kind: "static"; readonly length: number }
  | { readonly kind: "dynamic"; readonly positions: Value };

export interface TrunkOptions {
  readonly positions: PositionSource;
  /** additive attention mask: [T,S] (static) or [B,T,S] (dynamic); with `past`, over the C cache slots */
  readonly mask: Value;
  /**
   * a fixed-capacity cache of C slots per layer (keys [B,KV,hd,C], values [B,KV,C,hd]), valid slots
   * chosen by `mask`; the one new token (T = 1) attends to the slots and to itself
   */
  readonly past?: { readonly k: readonly Value[]; readonly v: readonly Value[] };
  /**
   * a graph that is never differentiated (scoring, prefill, decode): float32 graphs then use
   * onnxruntime's fused kernels where they exist (FastGelu: the same function in one pass)
   */
  readonly inference?: boolean;
}

export interface Trunk {
  /** final-norm hidden states [B,T,D] */
  readonly hidden: Value;
  /** per layer, keys [B,KV,hd,T] and values [B,KV,T,hd] of the new tokens (what a cache stores) */
  readonly presentK: Value[];
  readonly presentV: Value[];
}

const NEG_INF = -1e9;

function param(p: ParamValues, name: string): Value {
  const v = p[name];
  if (!v) throw new Error(`missing parameter ${name}`);
  return v;
}

/**
 * Rotary inverse frequencies as Hugging Face computes them: in float32 (`Math.fround` after each
 * operation), rescaled by `ropeScaling`, so the tables match transformers' bit for bit or within one ulp.
 */
export function rotaryInverseFrequencies(c: ModelConfig): number[] {
  const f = Math.fround;
  const dim = modelDims(c).headDim;
  const base = c.ropeTheta;
  const inv: number[] = [];
  for (let i = 0; i < dim; i += 2) inv.push(f(1 / f(base ** f(i / dim))));
  const s = c.ropeScaling;
  if (!s) return inv;
  if (s.type === "linear") return inv.map((x) => f(x / s.factor));
  // Llama 3.1: long wavelengths slowed by `factor`, short ones kept, the band between interpolated
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  return inv.map((x) => {
    const wavelen = f(f(2 * Math.PI) / x);
    const scaled = wavelen > lowFreqWavelen ? f(x / s.factor) : x;
    if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) return scaled;
    const smooth = f(
      f(f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor),
    );
    return f(f(f(1 - smooth) * f(scaled / s.factor)) + f(smooth * scaled));
  });
}

/**
 * cos and sin of the rotary angles `position x inverse frequency`, computed in the graph in the
 * graph's float type, as transformers does in float32 (so no position table is stored in any graph,
 * whatever the context length). `positions` is [.., 1] floats; the result is [.., half].
 */
function rotaryCosSin(b: GraphBuilder, c: ModelConfig, positions: Value): { cos: Value; sin: Value } {
  const inv = rotaryInverseFrequencies(c);
  const angles = b.mul(positions, b.constant(inv, [inv.length]));
  return { cos: b.cos(angles), sin: b.sin(angles) };
}

function rmsNorm(b: GraphBuilder, x: Value, scale: Value, epsilon: number): Value {
  const meanSquare = b.reduceMean(b.mul(x, x), [-1], true);
  const inv = b.div(b.scalar(1), b.sqrt(b.add(meanSquare, b.scalar(epsilon))));
  return b.mul(b.mul(x, inv), scale);
}

function norm(b: GraphBuilder, c: ModelConfig, p: ParamValues, prefix: string, x: Value): Value {
  const scale = param(p, `${prefix}.scale`);
  if (c.norm === "layernorm") {
    return b.layerNorm(x, scale, param(p, `${prefix}.bias`), { axis: -1, epsilon: c.normEpsilon }).y;
  }
  return rmsNorm(b, x, scale, c.normEpsilon);
}

const GELU_C = Math.sqrt(2 / Math.PI);
const GELU_A = 0.044715;

/**
 * tanh-approximated GELU (Erf has no float64 kernel for grad checks), written as x·sigmoid(z) with
 * z = 2c(x + a x³) and a hand-written backward that reuses the forward's values and needs no
 * scalar broadcasts: gelu'(x) = s + (y − y·s)·z', z' = 2c + 6ca x² = q + 2p (p = 2ca x², q = p + 2c).
 * 13 element-wise passes instead of ~30 for differentiating the primitives.
 */
function gelu(b: GraphBuilder, x: Value): Value {
  const p = b.mul(b.mul(x, x), b.scalar(2 * GELU_C * GELU_A));
  const q = b.add(p, b.scalar(2 * GELU_C));
  const s = b.sigmoid(b.mul(x, q));
  const y = b.mul(x, s);
  b.customGradient(y, [x], (bb, g) => {
    const dz = bb.add(q, bb.add(p, p));
    const ys = bb.mul(y, s);
    const dydx = bb.add(s, bb.mul(bb.sub(y, ys), dz));
    return [bb.mul(g, dydx)];
  });
  return y;
}

function applyRotary(b: GraphBuilder, x: Value, cos: Value, sin: Value, half: number): Value {
  const [x1, x2] = b.split(x, [half, half], -1);
  return b.concat([b.sub(b.mul(x1!, cos), b.mul(x2!, sin)), b.add(b.mul(x2!, cos), b.mul(x1!, sin))], -1);
}

/**
 * x [B,T,D] @ w [D,F] (+ bias [F]); with one token per row the rows are flattened to one 2-D MatMul,
 * which onnxruntime runs as a single GEMM (the 3-D form ran ~2x slower at B=256, T=1)
 */
function linear(b: GraphBuilder, x: Value, w: Value, bias?: Value): Value {
  let y: Value;
  if (x.shape.length === 3 && x.shape[1] === 1) {
    y = b.reshape(b.matmul(b.reshape(x, [-1, w.shape[0] as number]), w), [-1, 1, w.shape[1] as number]);
  } else y = b.matmul(x, w);
  return bias ? b.add(y, bias) : y;
}

function optionalParam(p: ParamValues, name: string, present: boolean): Value | undefined {
  return present ? param(p, name) : undefined;
}

export function buildTrunk(
  b: GraphBuilder,
  c: ModelConfig,
  p: ParamValues,
  tokens: Value,
  opts: TrunkOptions,
): Trunk {
  const d = modelDims(c);
  const hd = d.headDim;
  const half = hd / 2;
  let x = b.gather(param(p, "embed.weight"), tokens, 0);
  let cos: Value | undefined;
  let sin: Value | undefined;
  const pos = opts.positions;
  if (c.positions === "learned") {
    const table = param(p, "pos.weight");
    x = b.add(
      x,
      pos.kind === "static" ? b.slice(table, [0], [pos.length], [0]) : b.gather(table, pos.positions, 0),
    );
  } else {
    // [T,1] positions give [T,1,half] tables; per-token positions [B,T] give [B,T,1,half]
    const positions =
      pos.kind === "static"
        ? b.constant(
            Array.from({ length: pos.length }, (_, i) => i),
            [pos.length, 1],
          )
        : b.unsqueeze(b.cast(pos.positions, b.floatType), [-1]);
    const t = rotaryCosSin(b, c, positions);
    cos = b.unsqueeze(t.cos, [pos.kind === "static" ? 1 : 2]);
    sin = b.unsqueeze(t.sin, [pos.kind === "static" ? 1 : 2]);
  }
  const grouped = d.groups > 1;
  const mask = opts.mask.shape.length === 2 ? opts.mask : b.unsqueeze(opts.mask, grouped ? [1, 2] : [1]);
  const qScale = b.scalar(1 / Math.sqrt(hd));
  const presentK: Value[] = [];
  const presentV: Value[] = [];

  for (let l = 0; l < c.layers; l++) {
    const h = norm(b, c, p, `layers.${l}.attn_norm`, x);
    const qkv = linear(
      b,
      h,
      param(p, `layers.${l}.attn.qkv`),
      optionalParam(p, `layers.${l}.attn.qkv_bias`, c.qkvBias),
    );
    const [qf, kf, vf] = b.split(qkv, [c.heads * hd, d.kvHeads * hd, d.kvHeads * hd], -1);
    let q = b.reshape(qf!, [0, 0, c.heads, hd]);
    let k = b.reshape(kf!, [0, 0, d.kvHeads, hd]);
    const v = b.reshape(vf!, [0, 0, d.kvHeads, hd]);
    if (c.qkNorm) {
      q = rmsNorm(b, q, param(p, `layers.${l}.attn.q_norm.scale`), c.normEpsilon);
      k = rmsNorm(b, k, param(p, `layers.${l}.attn.k_norm.scale`), c.normEpsilon);
    }
    if (cos && sin) {
      q = applyRotary(b, q, cos, sin, half);
      k = applyRotary(b, k, cos, sin, half);
    }
    q = b.mul(q, qScale);
    // keys cached pre-transposed so decode never transposes the cache
    const kT = b.transpose(k, [0, 2, 3, 1]);
    const vv = b.transpose(v, [0, 2, 1, 3]);
    presentK.push(kT);
    presentV.push(vv);
    // grouped-query attention broadcasts K/V over the query groups (5-D MatMul), no copies
    const qh = grouped
      ? b.transpose(b.reshape(q, [0, 0, d.kvHeads, d.groups, hd]), [0, 2, 3, 1, 4])
      : b.transpose(q, [0, 2, 1, 3]);
    const kvView = (x: Value) => (grouped ? b.unsqueeze(x, [2]) : x);
    let heads: Value;
    if (opts.past) {
      // cache slots (masked) and the new token itself, softmax over both without concatenating the cache
      const sPast = b.add(b.matmul(qh, kvView(opts.past.k[l]!)), mask);
      const sNew = b.matmul(qh, kvView(kT));
      const top = b.max(b.reduceMax(sPast, [-1], true), b.reduceMax(sNew, [-1], true));
      const ePast = b.exp(b.sub(sPast, top));
      const eNew = b.exp(b.sub(sNew, top));
      const denom = b.add(b.reduceSum(ePast, [-1], true), b.reduceSum(eNew, [-1], true));
      const num = b.add(b.matmul(ePast, kvView(opts.past.v[l]!)), b.matmul(eNew, kvView(vv)));
      heads = b.div(num, denom);
    } else {
      const scores = b.add(b.matmul(qh, kvView(kT)), mask);
      heads = b.matmul(b.softmax(scores, -1), kvView(vv));
    }
    const ctx = grouped
      ? b.reshape(b.transpose(heads, [0, 3, 1, 2, 4]), [0, 0, c.heads * hd])
      : b.reshape(b.transpose(heads, [0, 2, 1, 3]), [0, 0, c.heads * hd]);
    x = b.add(
      x,
      linear(
        b,
        ctx,
        param(p, `layers.${l}.attn.out`),
        optionalParam(p, `layers.${l}.attn.out_bias`, c.attnOutBias),
      ),
    );

    const m = norm(b, c, p, `layers.${l}.mlp_norm`, x);
    const up = linear(
      b,
      m,
      param(p, `layers.${l}.mlp.up`),
      optionalParam(p, `layers.${l}.mlp.up_bias`, c.mlpBias),
    );
    let act: Value;
    if (c.activation === "swiglu") {
      const [gate, lin] = b.split(up, [d.mlpWidth, d.mlpWidth], -1);
      act = b.mul(b.mul(gate!, b.sigmoid(gate!)), lin!);
    } else act = opts.inference && b.floatType === "float32" ? b.fastGelu(up) : gelu(b, up);
    x = b.add(
      x,
      linear(
        b,
        act,
        param(p, `layers.${l}.mlp.down`),
        optionalParam(p, `layers.${l}.mlp.down_bias`, c.mlpBias),
      ),
    );
  }
  return { hidden: norm(b, c, p, "final_norm", x), presentK, presentV };
}

/**
 * logits [B,T,V]; a tied head multiplies by the embedding [V,D] as a transposed-B Gemm, so no
 * vocabulary-sized Transpose runs per call (151,936 x 896 floats for Qwen2.5-0.5B)
 */
export function logitsOf(b: GraphBuilder, c: ModelConfig, p: ParamValues, hidden: Value): Value {
  if (!c.tiedEmbeddings) return linear(b, hidden, param(p, "head.weight"));
  const flat = b.reshape(hidden, [-1, c.width]);
  const logits = b.gemm(flat, param(p, "embed.weight"), undefined, { transB: true });
  const lead = b.slice(b.shape(hidden), [0], [2], [0]);
  return b.reshape(logits, b.concat([lead, b.ints([c.vocabSize])], 0), [
    hidden.shape[0]!,
    hidden.shape[1]!,
    c.vocabSize,
  ]);
}

function causalMask(b: GraphBuilder, length: number): Value {
  const m: number[] = [];
  for (let i = 0; i < length; i++) for (let j = 0; j < length; j++) m.push(j <= i ? 0 : NEG_INF);
  return b.constant(m, [length, length]);
}

/** parameters as one flat input, split into named views (the split's backward is one Concat) */
function flatParams(b: GraphBuilder, layout: ParamLayout, flat: Value): ParamValues {
  const parts = b.split(
    flat,
    layout.specs.map((s) => s.size),
    0,
  );
  const out: Record<string, Value> = {};
  layout.specs.forEach((s, i) => {
    out[s.name] = b.reshape(parts[i]!, s.shape);
  });
  return out;
}

/** parameters as one input each (inference graphs: fed as zero-copy views of the flat vector) */
function separateParams(b: GraphBuilder, layout: ParamLayout): ParamValues {
  const out: Record<string, Value> = {};
  for (const s of layout.specs) out[s.name] = b.input(s.name, b.floatType, s.shape);
  return out;
}

/** per-token log-prob of the targets and the policy entropy, both [B,T] */
function tokenStats(
  b: GraphBuilder,
  logits: Value,
  targets: Value,
): { logp: Value; entropy: Value; logProbs: Value } {
  const logProbs = b.logSoftmax(logits, -1);
  const picked = b.gatherElements(logProbs, b.unsqueeze(targets, [-1]), -1);
  const logp = b.squeeze(picked, [-1]);
  const entropy = b.neg(b.reduceSum(b.mul(b.exp(logProbs), logProbs), [-1], false));
  return { logp, entropy, logProbs };
}

// ---------------------------------------------------------------- scoring

export const SCORE_OUTPUTS = { logp: "logp", entropy: "entropy" } as const;

/** log-probs of `target_ids` given `input_ids` ([B,T] static), with right padding */
export function buildScoreGraph(
  c: ModelConfig,
  batch: number,
  length: number,
  floatType: FloatDType = "float32",
  withLogits = false,
) {
  const b = new GraphBuilder(floatType);
  const layout = paramLayout(c);
  const p = separateParams(b, layout);
  const inputIds = b.input("input_ids", "int64", [batch, length]);
  const targetIds = b.input("target_ids", "int64", [batch, length]);
  const trunk = buildTrunk(b, c, p, inputIds, {
    positions: { kind: "static", length },
    mask: causalMask(b, length),
    inference: true,
  });
  const logits = logitsOf(b, c, p, trunk.hidden);
  const stats = tokenStats(b, logits, targetIds);
  b.output(stats.logp, SCORE_OUTPUTS.logp);
  b.output(stats.entropy, SCORE_OUTPUTS.entropy);
  if (withLogits) b.output(logits, "logits");
  return b;
}

// ---------------------------------------------------------------- generation

/**
 * Prefill (`withCache` false): tokens [B,T], positions [B,T] int64, mask [B,T,T] additive; outputs the
 * last position's logits [B,V] and the prompt's keys `new_k.{l}` [B,KV,hd,T] and values `new_v.{l}`
 * [B,KV,T,hd]. Decode (`withCache` true): one token per row (tokens, positions [B,1]), a cache of C
 * slots `past_k.{l}` [B,KV,hd,C] / `past_v.{l}` [B,KV,C,hd] with mask [B,1,C] choosing the valid slots;
 * outputs logits and the new token's `new_k.{l}` [B,KV,hd,1] / `new_v.{l}` [B,KV,1,hd]. The host owns the
 * cache buffers and writes the new entries into them, so no step copies the whole cache.
 */
export function buildGenerateGraph(c: ModelConfig, withCache: boolean, floatType: FloatDType = "float32") {
  const d = modelDims(c);
  const b = new GraphBuilder(floatType);
  const layout = paramLayout(c);
  const p = separateParams(b, layout);
  const T: Dim = withCache ? 1 : "T";
  const tokens = b.input("tokens", "int64", ["B", T]);
  const positions = b.input("positions", "int64", ["B", T]);
  const mask = b.input("mask", floatType, ["B", T, withCache ? "C" : "T"]);
  let past: TrunkOptions["past"];
  if (withCache) {
    const k: Value[] = [];
    const v: Value[] = [];
    for (let l = 0; l < c.layers; l++) {
      k.push(b.input(`past_k.${l}`, floatType, ["B", d.kvHeads, d.headDim, "C"]));
      v.push(b.input(`past_v.${l}`, floatType, ["B", d.kvHeads, "C", d.headDim]));
    }
    past = { k, v };
  }
  const trunk = buildTrunk(b, c, p, tokens, {
    positions: { kind: "dynamic", positions },
    mask,
    ...(past ? { past } : {}),
    inference: true,
  });
  const last = b.gather(trunk.hidden, b.ints([-1]), 1);
  const logits = b.squeeze(logitsOf(b, c, p, last), [1]);
  b.output(logits, "logits");
  trunk.presentK.forEach((k, l) => {
    b.output(k, `new_k.${l}`);
  });
  trunk.presentV.forEach((v, l) => {
    b.output(v, `new_v.${l}`);
  });
  return b;
}

// ---------------------------------------------------------------- training

export const LossKind = { ppo: "ppo", supervised: "supervised" } as const;
export type LossKind = (typeof LossKind)[keyof typeof LossKind];

export interface TrainGraphSpec {
  readonly batch: number;
  readonly length: number;
  readonly loss: LossKind;
  /** add klCoef x KL(policy || reference) per token (needs reference_logp) */
  readonly klToReference: boolean;
  /** subtract entropyCoef x entropy per token */
  readonly entropyBonus: boolean;
  /**
   * PPO's proximal policy is the parameters this graph runs with (one update per step): its
   * log-probs are this forward's, held constant, instead of a `proximal_logp` input that a separate
   * forward pass would have to compute first
   */
  readonly proximalFromCurrent?: boolean;
  /**
   * fused: loss, backward and AdamW in one graph over the flat parameter vector; gradient: loss and
   * the flat gradient only; separate: each parameter its own (zero-copy) input and its own gradient
   * output `grad.<name>`, no flat copies at all (for large models, whose optimiser runs on the host)
   */
  readonly mode: "fused" | "gradient" | "separate";
}

/** metric sums over masked tokens (divide by the token count), emitted by every train graph */
export const TRAIN_METRIC_SUMS = {
  ppo: [
    "sum_entropy",
    "sum_clipped",
    "sum_approx_kl",
    "sum_pg_loss",
    "sum_kl_ref",
    "sum_importance_weight",
    "sum_logprob_gap",
  ],
  supervised: ["sum_entropy", "sum_nll", "sum_correct"],
} as const;

interface LossParts {
  loss: Value;
  sums: Record<string, Value>;
}

function ppoLoss(b: GraphBuilder, spec: TrainGraphSpec, logp: Value, entropy: Value, mask: Value): LossParts {
  const shape = [spec.batch, spec.length];
  const ft = b.floatType;
  const advantages = b.input("advantages", ft, shape);
  const behaviour = b.input("behaviour_logp", ft, shape);
  let proximal: Value;
  if (spec.proximalFromCurrent) {
    // a stop-gradient: the same values as logp, no gradient through them
    proximal = b.identity(logp);
    b.customGradient(proximal, [logp], () => []);
  } else proximal = b.input("proximal_logp", ft, shape);
  const clipLow = b.input("clip_low", ft, []);
  const clipHigh = b.input("clip_high", ft, []);
  const iwCap = b.input("iw_cap", ft, []);
  const one = b.scalar(1);
  // decoupled PPO: ratio against the proximal policy, behaviour importance weight capped
  const logRatio = b.sub(logp, proximal);
  const ratio = b.exp(logRatio);
  const lo = b.sub(one, clipLow);
  const hi = b.add(one, clipHigh);
  const surr1 = b.mul(ratio, advantages);
  const surr2 = b.mul(b.clip(ratio, lo, hi), advantages);
  // tokens whose behaviour weight exceeds the cap get `iw_over_cap` instead: 0 drops them (AReaL), cap clips
  const iwOverCap = b.input("iw_over_cap", ft, []);
  const rawWeight = b.exp(b.sub(proximal, behaviour));
  const weight = b.where(b.lessOrEqual(rawWeight, iwCap), rawWeight, iwOverCap);
  const pg = b.neg(b.mul(b.min(surr1, surr2), weight));
  let perToken = pg;
  const zero = b.scalar(0);
  const positive = b.greater(advantages, zero);
  const negative = b.less(advantages, zero);
  const clipped = b.or(b.and(positive, b.greater(ratio, hi)), b.and(negative, b.less(ratio, lo)));
  const sums: Record<string, Value> = {
    sum_entropy: b.sumAll(b.mul(entropy, mask)),
    sum_clipped: b.sumAll(b.mul(b.cast(clipped, ft), mask)),
    // k3 estimator of KL(proximal || current)
    sum_approx_kl: b.sumAll(b.mul(b.sub(b.sub(ratio, one), logRatio), mask)),
    sum_pg_loss: b.sumAll(b.mul(pg, mask)),
    sum_importance_weight: b.sumAll(b.mul(weight, mask)),
    // |log pi_proximal - log pi_behaviour|: how far the sampler's log-probs are from the learner's
    sum_logprob_gap: b.sumAll(b.mul(b.max(b.sub(proximal, behaviour), b.sub(behaviour, proximal)), mask)),
  };
  if (spec.klToReference) {
    const reference = b.input("reference_logp", ft, shape);
    const klCoef = b.input("kl_coef", ft, []);
    const r = b.sub(reference, logp);
    const kl = b.sub(b.sub(b.exp(r), r), one);
    sums.sum_kl_ref = b.sumAll(b.mul(kl, mask));
    perToken = b.add(perToken, b.mul(klCoef, kl));
  } else sums.sum_kl_ref = b.sumAll(b.mul(zero, mask));
  if (spec.entropyBonus) {
    const entropyCoef = b.input("entropy_coef", ft, []);
    perToken = b.sub(perToken, b.mul(entropyCoef, entropy));
  }
  return { loss: b.sumAll(b.mul(perToken, mask)), sums };
}

function supervisedLoss(
  b: GraphBuilder,
  spec: TrainGraphSpec,
  logp: Value,
  entropy: Value,
  logProbs: Value,
  targets: Value,
  mask: Value,
): LossParts {
  const nll = b.neg(logp);
  let perToken = nll;
  if (spec.entropyBonus) {
    const entropyCoef = b.input("entropy_coef", b.floatType, []);
    perToken = b.sub(perToken, b.mul(entropyCoef, entropy));
  }
  const argmax = b.node("ArgMax", [logProbs], [{ dtype: "int64", shape: [spec.batch, spec.length] }], {
    axis: { kind: "int", value: -1 },
    keepdims: { kind: "int", value: 0 },
  })[0]!;
  const correct = b.cast(b.equal(argmax, targets), b.floatType);
  return {
    loss: b.sumAll(b.mul(perToken, mask)),
    sums: {
      sum_entropy: b.sumAll(b.mul(entropy, mask)),
      sum_nll: b.sumAll(b.mul(nll, mask)),
      sum_correct: b.sumAll(b.mul(correct, mask)),
    },
  };
}

/** AdamW with bias correction and global-norm clipping over flat vectors; emits new_* outputs */
function adamW(b: GraphBuilder, n: number, params: Value, grad: Value): void {
  const ft = b.floatType;
  const m = b.input("adam_m", ft, [n]);
  const v = b.input("adam_v", ft, [n]);
  const decay = b.input("decay_mask", ft, [n]);
  const lr = b.input("lr", ft, []);
  const beta1 = b.input("beta1", ft, []);
  const beta2 = b.input("beta2", ft, []);
  const eps = b.input("adam_eps", ft, []);
  const weightDecay = b.input("weight_decay", ft, []);
  const biasCorr1 = b.input("bias_corr1", ft, []);
  const biasCorr2 = b.input("bias_corr2", ft, []);
  const maxGradNorm = b.input("max_grad_norm", ft, []);
  const one = b.scalar(1);
  const gradNorm = b.sqrt(b.sumAll(b.mul(grad, grad)));
  const coef = b.min(one, b.div(maxGradNorm, b.add(gradNorm, b.scalar(1e-6))));
  const g = b.mul(grad, coef);
  const newM = b.add(b.mul(beta1, m), b.mul(b.sub(one, beta1), g));
  const newV = b.add(b.mul(beta2, v), b.mul(b.sub(one, beta2), b.mul(g, g)));
  const update = b.div(b.div(newM, biasCorr1), b.add(b.sqrt(b.div(newV, biasCorr2)), eps));
  const decayTerm = b.mul(b.mul(weightDecay, decay), params);
  const newParams = b.sub(params, b.mul(lr, b.add(update, decayTerm)));
  b.output(newParams, "new_params");
  b.output(newM, "new_m");
  b.output(newV, "new_v");
  b.output(gradNorm, "grad_norm");
}

/**
 * Train-step graph for one static (batch, length) bucket. Inputs: `params` [N], `input_ids`,
 * `target_ids` [B,T] int64, `loss_mask` [B,T], `loss_scale` [] (1 / masked tokens of the whole step),
 * the loss's own inputs, and for `fused` the AdamW state and hyper-parameters.
 */
export function buildTrainGraph(c: ModelConfig, spec: TrainGraphSpec, floatType: FloatDType = "float32") {
  const b = new GraphBuilder(floatType);
  const layout = paramLayout(c);
  const flat = spec.mode === "separate" ? undefined : b.input("params", floatType, [layout.total]);
  const p = flat ? flatParams(b, layout, flat) : separateParams(b, layout);
  const shape = [spec.batch, spec.length];
  const inputIds = b.input("input_ids", "int64", shape);
  const targetIds = b.input("target_ids", "int64", shape);
  const mask = b.input("loss_mask", floatType, shape);
  const lossScale = b.input("loss_scale", floatType, []);
  const trunk = buildTrunk(b, c, p, inputIds, {
    positions: { kind: "static", length: spec.length },
    mask: causalMask(b, spec.length),
  });
  const stats = tokenStats(b, logitsOf(b, c, p, trunk.hidden), targetIds);
  const parts =
    spec.loss === "ppo"
      ? ppoLoss(b, spec, stats.logp, stats.entropy, mask)
      : supervisedLoss(b, spec, stats.logp, stats.entropy, stats.logProbs, targetIds, mask);
  const loss = b.mul(parts.loss, lossScale);
  b.output(loss, "loss");
  for (const [name, v] of Object.entries(parts.sums)) b.output(v, name);
  if (!flat) {
    const grads = gradients(
      b,
      loss,
      layout.specs.map((s) => p[s.name]!),
    );
    layout.specs.forEach((s, i) => {
      b.output(grads[i]!, `grad.${s.name}`);
    });
    return b;
  }
  const [grad] = gradients(b, loss, [flat]);
  if (spec.mode === "fused") adamW(b, layout.total, flat, grad!);
  else b.output(grad!, "grad");
  return b;
}

/** the optimiser alone, for steps that accumulate gradients over several micro-batches */
export function buildApplyGraph(c: ModelConfig, floatType: FloatDType = "float32") {
  const b = new GraphBuilder(floatType);
  const n = paramLayout(c).total;
  const params = b.input("params", floatType, [n]);
  const grad = b.input("grad", floatType, [n]);
  adamW(b, n, params, grad);
  return b;
}
