/**
 * Parameter layout: every tensor lives in one flat Float32Array (train graphs take it whole; inference
 * graphs take zero-copy views). Specs are ordered and named like `layers.0.attn.qkv`.
 */
import { type ModelConfig, modelDims } from "./config.ts";
import { normal, type Rng } from "./rng.ts";

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly offset: number;
  readonly size: number;
  /** AdamW weight decay applies (matrices yes; norms, biases and positions no) */
  readonly decay: boolean;
  readonly init:
    | { readonly kind: "normal"; readonly std: number }
    | { readonly kind: "const"; readonly value: number };
}

export interface ParamLayout {
  readonly specs: readonly ParamSpec[];
  readonly total: number;
}

export function paramLayout(c: ModelConfig): ParamLayout {
  const d = modelDims(c);
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], decay: boolean, init: ParamSpec["init"]) => {
    const size = shape.reduce((a, x) => a * x, 1);
    specs.push({ name, shape, offset, size, decay, init });
    offset += size;
  };
  const std = c.initStd;
  const residualStd = std / Math.sqrt(2 * c.layers);
  const normParams = (prefix: string) => {
    add(`${prefix}.scale`, [c.width], false, { kind: "const", value: 1 });
    if (c.norm === "layernorm") add(`${prefix}.bias`, [c.width], false, { kind: "const", value: 0 });
  };
  add("embed.weight", [c.vocabSize, c.width], true, { kind: "normal", std });
  if (c.positions === "learned")
    add("pos.weight", [c.maxSeqLen, c.width], false, { kind: "normal", std: std / 2 });
  const qkvOut = (c.heads + 2 * d.kvHeads) * d.headDim;
  const upOut = c.activation === "swiglu" ? 2 * d.mlpWidth : d.mlpWidth;
  const zero = { kind: "const", value: 0 } as const;
  for (let l = 0; l < c.layers; l++) {
    normParams(`layers.${l}.attn_norm`);
    add(`layers.${l}.attn.qkv`, [c.width, qkvOut], true, { kind: "normal", std });
    if (c.qkvBias) add(`layers.${l}.attn.qkv_bias`, [qkvOut], false, zero);
    if (c.qkNorm) {
      add(`layers.${l}.attn.q_norm.scale`, [d.headDim], false, { kind: "const", value: 1 });
      add(`layers.${l}.attn.k_norm.scale`, [d.headDim], false, { kind: "const", value: 1 });
    }
    add(`layers.${l}.attn.out`, [c.heads * d.headDim, c.width], true, { kind: "normal", std: residualStd });
    if (c.attnOutBias) add(`layers.${l}.attn.out_bias`, [c.width], false, zero);
    normParams(`layers.${l}.mlp_norm`);
    add(`layers.${l}.mlp.up`, [c.width, upOut], true, { kind: "normal", std });
    if (c.mlpBias) add(`layers.${l}.mlp.up_bias`, [upOut], false, zero);
    add(`layers.${l}.mlp.down`, [d.mlpWidth, c.width], true, { kind: "normal", std: residualStd });
    if (c.mlpBias) add(`layers.${l}.mlp.down_bias`, [c.width], false, zero);
  }
  normParams("final_norm");
  if (!c.tiedEmbeddings) add("head.weight", [c.width, c.vocabSize], true, { kind: "normal", std });
  return { specs, total: offset };
}

/** fresh parameters drawn from `rng` */
export function initParams(c: ModelConfig, rng: Rng): Float32Array {
  const layout = paramLayout(c);
  const flat = new Float32Array(layout.total);
  for (const s of layout.specs) {
    const view = flat.subarray(s.offset, s.offset + s.size);
    if (s.init.kind === "const") view.fill(s.init.value);
    else for (let i = 0; i < view.length; i++) view[i] = normal(rng) * s.init.std;
  }
  return flat;
}

export function paramCount(c: ModelConfig): number {
  return paramLayout(c).total;
}

/** 1 where AdamW weight decay applies, else 0 */
export function decayMask(layout: ParamLayout): Float32Array {
  const mask = new Float32Array(layout.total);
  for (const s of layout.specs) if (s.decay) mask.fill(1, s.offset, s.offset + s.size);
  return mask;
}
