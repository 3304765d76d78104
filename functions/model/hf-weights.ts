/**
 * Where every Hugging Face weight of a qwen2 / llama / qwen3 model lives in the engine's flat
 * parameters. Hugging Face stores linear layers as [out, in]; the engine as [in, out], with q, k and v
 * fused into one `attn.qkv` matrix and the gate and up projections into one `mlp.up` ([gate | up]).
 * Each mapping copies one HF tensor in (`place`) and back out (`extract`), transposing as needed.
 */
import { type ModelConfig, modelDims } from "./config.ts";
import { type ParamSpec, paramLayout } from "./params.ts";

export interface HfTensorMapping {
  readonly hfName: string;
  /** the tensor's shape as Hugging Face stores it */
  readonly hfShape: readonly number[];
  /** the engine parameter it fills (part of) */
  readonly param: string;
  /** writes the HF tensor (float32, HF layout) into the flat parameters */
  place(src: Float32Array, flat: Float32Array): void;
  /** reads the HF tensor (float32, HF layout) out of the flat parameters into `out` */
  extract(flat: Float32Array, out: Float32Array): void;
}

/** tensors transformers ignores on load (buffers older checkpoints saved) */
export function isIgnoredHfTensor(name: string): boolean {
  return /\.rotary_emb\.inv_freq$/.test(name);
}

const TILE = 64;

/**
 * dst[colOffset + j, i] <- src[j, i] viewed through a transpose: `src` is [rows, cols] (HF [out, in]),
 * written into columns [colOffset, colOffset + rows) of the row-major [cols, dstCols] matrix at `base`.
 * Tiled so both sides stay in cache (a 151,936 x 896 head transposes in well under a second).
 */
function transposeInto(
  src: Float32Array,
  rows: number,
  cols: number,
  dst: Float32Array,
  base: number,
  dstCols: number,
  colOffset: number,
): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let c = c0; c < c1; c++) {
        const d = base + c * dstCols + colOffset;
        for (let r = r0; r < r1; r++) dst[d + r] = src[r * cols + c]!;
      }
    }
  }
}

/** the inverse of transposeInto: out [rows, cols] <- columns [colOffset, colOffset + rows) of the [cols, srcCols] matrix */
function transposeOut(
  src: Float32Array,
  base: number,
  srcCols: number,
  colOffset: number,
  out: Float32Array,
  rows: number,
  cols: number,
): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let c = c0; c < c1; c++) {
        const s = base + c * srcCols + colOffset;
        for (let r = r0; r < r1; r++) out[r * cols + c] = src[s + r]!;
      }
    }
  }
}

/** every Hugging Face tensor of `config`'s model, in the order transformers names them */
export function hfWeightMap(config: ModelConfig): HfTensorMapping[] {
  const specs = new Map<string, ParamSpec>(paramLayout(config).specs.map((s) => [s.name, s]));
  const spec = (name: string): ParamSpec => {
    const s = specs.get(name);
    if (!s) throw new Error(`no engine parameter ${name}`);
    return s;
  };
  const d = modelDims(config);
  const out: HfTensorMapping[] = [];

  const copy = (hfName: string, param: string) => {
    const s = spec(param);
    out.push({
      hfName,
      hfShape: s.shape,
      param,
      place: (src, flat) => flat.set(src, s.offset),
      extract: (flat, o) => o.set(flat.subarray(s.offset, s.offset + s.size)),
    });
  };
  /** HF [rows, in] into columns [colOffset, colOffset + rows) of the engine's [in, total] matrix */
  const columns = (hfName: string, param: string, rows: number, colOffset: number) => {
    const s = spec(param);
    const [inDim, total] = s.shape as [number, number];
    out.push({
      hfName,
      hfShape: [rows, inDim],
      param,
      place: (src, flat) => transposeInto(src, rows, inDim, flat, s.offset, total, colOffset),
      extract: (flat, o) => transposeOut(flat, s.offset, total, colOffset, o, rows, inDim),
    });
  };
  /** HF bias [n] into entries [offset, offset + n) of an engine bias vector */
  const slice = (hfName: string, param: string, n: number, offset: number) => {
    const s = spec(param);
    out.push({
      hfName,
      hfShape: [n],
      param,
      place: (src, flat) => flat.set(src, s.offset + offset),
      extract: (flat, o) => o.set(flat.subarray(s.offset + offset, s.offset + offset + n)),
    });
  };

  copy("model.embed_tokens.weight", "embed.weight");
  const q = config.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  for (let l = 0; l < config.layers; l++) {
    const hf = `model.layers.${l}`;
    const ours = `layers.${l}`;
    copy(`${hf}.input_layernorm.weight`, `${ours}.attn_norm.scale`);
    columns(`${hf}.self_attn.q_proj.weight`, `${ours}.attn.qkv`, q, 0);
    columns(`${hf}.self_attn.k_proj.weight`, `${ours}.attn.qkv`, kv, q);
    columns(`${hf}.self_attn.v_proj.weight`, `${ours}.attn.qkv`, kv, q + kv);
    if (config.qkvBias) {
      slice(`${hf}.self_attn.q_proj.bias`, `${ours}.attn.qkv_bias`, q, 0);
      slice(`${hf}.self_attn.k_proj.bias`, `${ours}.attn.qkv_bias`, kv, q);
      slice(`${hf}.self_attn.v_proj.bias`, `${ours}.attn.qkv_bias`, kv, q + kv);
    }
    if (config.qkNorm) {
      copy(`${hf}.self_attn.q_norm.weight`, `${ours}.attn.q_norm.scale`);
      copy(`${hf}.self_attn.k_norm.weight`, `${ours}.attn.k_norm.scale`);
    }
    columns(`${hf}.self_attn.o_proj.weight`, `${ours}.attn.out`, config.width, 0);
    if (config.attnOutBias) slice(`${hf}.self_attn.o_proj.bias`, `${ours}.attn.out_bias`, config.width, 0);
    copy(`${hf}.post_attention_layernorm.weight`, `${ours}.mlp_norm.scale`);
    columns(`${hf}.mlp.gate_proj.weight`, `${ours}.mlp.up`, d.mlpWidth, 0);
    columns(`${hf}.mlp.up_proj.weight`, `${ours}.mlp.up`, d.mlpWidth, d.mlpWidth);
    columns(`${hf}.mlp.down_proj.weight`, `${ours}.mlp.down`, config.width, 0);
    if (config.mlpBias) {
      slice(`${hf}.mlp.gate_proj.bias`, `${ours}.mlp.up_bias`, d.mlpWidth, 0);
      slice(`${hf}.mlp.up_proj.bias`, `${ours}.mlp.up_bias`, d.mlpWidth, d.mlpWidth);
      slice(`${hf}.mlp.down_proj.bias`, `${ours}.mlp.down_bias`, config.width, 0);
    }
  }
  copy("model.norm.weight", "final_norm.scale");
  if (!config.tiedEmbeddings) columns("lm_head.weight", "head.weight", config.vocabSize, 0);
  return out;
}

/** true when the engine architecture maps onto a Hugging Face Llama/Qwen model at all */
export function hasHfArchitecture(config: ModelConfig): { ok: true } | { ok: false; fields: string[] } {
  const fields: string[] = [];
  if (config.norm !== "rmsnorm") fields.push("norm (needs rmsnorm)");
  if (config.activation !== "swiglu") fields.push("activation (needs swiglu)");
  if (config.positions !== "rotary") fields.push("positions (needs rotary)");
  return fields.length === 0 ? { ok: true } : { ok: false, fields };
}
