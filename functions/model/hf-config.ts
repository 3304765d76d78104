/**
 * Hugging Face `config.json` -> the engine's ModelConfig, for the decoder families questa trains:
 * qwen2 (Qwen2/2.5, Qwen2.5-Math, DeepSeek-R1-Distill-Qwen, OpenMath-Nemotron), llama (Llama 2/3,
 * SmolLM2) and qwen3. Both dialects are read: released folders (`rope_theta`, `rope_scaling`,
 * `torch_dtype`) and what transformers 5 writes (`rope_parameters`, `dtype`).
 */
import { z } from "zod";
import { type ModelConfig, ModelConfigSchema, type RopeScaling } from "./config.ts";

export const SUPPORTED_MODEL_TYPES = ["qwen2", "llama", "qwen3"] as const;
export type SupportedModelType = (typeof SUPPORTED_MODEL_TYPES)[number];

/** one problem with a folder's config.json: the key and what is wrong with it */
export interface ConfigProblem {
  key: string;
  message: string;
  hint?: string;
}

const positiveInt = z.number().int().positive();

const RopeSchema = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().positive().optional(),
  high_freq_factor: z.number().positive().optional(),
  original_max_position_embeddings: positiveInt.optional(),
});

/** the keys questa reads; everything else in config.json is kept verbatim for export and ignored */
export const HfConfigSchema = z.looseObject({
  model_type: z.string(),
  architectures: z.array(z.string()).optional(),
  vocab_size: positiveInt,
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  max_position_embeddings: positiveInt,
  rms_norm_eps: z.number().positive().default(1e-6),
  hidden_act: z.string().default("silu"),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  rope_theta: z.number().positive().optional(),
  rope_scaling: RopeSchema.nullish(),
  rope_parameters: RopeSchema.nullish(),
  use_sliding_window: z.boolean().optional(),
  layer_types: z.array(z.string()).optional(),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});
export type HfConfig = z.infer<typeof HfConfigSchema>;

function ropeOf(cfg: HfConfig, problems: ConfigProblem[]): { theta: number; scaling?: RopeScaling } {
  // transformers 5 folds rope_theta into rope_parameters; released folders keep them apart
  const params = cfg.rope_parameters ?? cfg.rope_scaling ?? undefined;
  const key = cfg.rope_parameters ? "rope_parameters" : "rope_scaling";
  const theta = cfg.rope_parameters?.rope_theta ?? cfg.rope_theta ?? 10000;
  const kind = params?.rope_type ?? params?.type ?? "default";
  if (!params || kind === "default") return { theta };
  if (kind === "linear") {
    if (params.factor === undefined) {
      problems.push({ key: `${key}.factor`, message: "linear rope scaling needs factor" });
      return { theta };
    }
    return { theta, scaling: { type: "linear", factor: params.factor } };
  }
  if (kind === "llama3") {
    const { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } = params;
    if (
      factor === undefined ||
      low_freq_factor === undefined ||
      high_freq_factor === undefined ||
      original_max_position_embeddings === undefined
    ) {
      problems.push({
        key,
        message:
          "llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings",
      });
      return { theta };
    }
    return {
      theta,
      scaling: {
        type: "llama3",
        factor,
        lowFreqFactor: low_freq_factor,
        highFreqFactor: high_freq_factor,
        originalMaxPositions: original_max_position_embeddings,
      },
    };
  }
  problems.push({
    key: `${key}.rope_type`,
    message: `rope scaling ${JSON.stringify(kind)} is not supported (supported: default, linear, llama3)`,
    hint: "remove the scaling to train within the original context, or use a model without it",
  });
  return { theta };
}

/**
 * The engine config of a Hugging Face config.json, or every problem found (each naming its key).
 * `maxSeqLen` defaults to `max_position_embeddings`.
 */
export function modelConfigFromHf(
  raw: unknown,
  opts: { maxSeqLen?: number } = {},
):
  | { ok: true; config: ModelConfig; hf: HfConfig; modelType: SupportedModelType }
  | { ok: false; problems: ConfigProblem[] } {
  // the model type first: an unsupported one is the whole story, whatever else the file holds
  const modelType = z.looseObject({ model_type: z.string() }).safeParse(raw).data?.model_type;
  if (modelType === undefined || !(SUPPORTED_MODEL_TYPES as readonly string[]).includes(modelType)) {
    return {
      ok: false,
      problems: [
        {
          key: "model_type",
          message: `${JSON.stringify(modelType ?? null)} is not supported; supported: ${SUPPORTED_MODEL_TYPES.join(", ")}`,
          hint: "use a Qwen2/Qwen2.5, Llama or Qwen3 model",
        },
      ],
    };
  }
  const parsed = HfConfigSchema.safeParse(raw);
  if (!parsed.success) {
    return {
      ok: false,
      problems: parsed.error.issues.map((i) => ({ key: i.path.join(".") || "(root)", message: i.message })),
    };
  }
  const cfg = parsed.data;
  const problems: ConfigProblem[] = [];
  const causal = cfg.architectures?.filter((a) => !a.endsWith("ForCausalLM")) ?? [];
  if (causal.length > 0) {
    problems.push({
      key: "architectures",
      message: `${causal.join(", ")} is not a causal language model head`,
      hint: "use the *ForCausalLM checkpoint of the model",
    });
  }
  if (cfg.hidden_act !== "silu") {
    problems.push({
      key: "hidden_act",
      message: `hidden_act ${JSON.stringify(cfg.hidden_act)} is not supported (the gated MLP needs silu)`,
    });
  }
  if (cfg.use_sliding_window === true) {
    problems.push({
      key: "use_sliding_window",
      message: "sliding-window attention is not supported",
      hint: "set use_sliding_window to false (Qwen2.5 and Qwen3 releases ship with it off)",
    });
  }
  const otherLayers = (cfg.layer_types ?? []).filter((t) => t !== "full_attention");
  if (otherLayers.length > 0) {
    problems.push({
      key: "layer_types",
      message: `only full_attention layers are supported, found ${[...new Set(otherLayers)].join(", ")}`,
    });
  }
  const rope = ropeOf(cfg, problems);
  const qwen2 = modelType === "qwen2";
  const candidate = {
    vocabSize: cfg.vocab_size,
    layers: cfg.num_hidden_layers,
    width: cfg.hidden_size,
    heads: cfg.num_attention_heads,
    kvHeads: cfg.num_key_value_heads ?? cfg.num_attention_heads,
    ...(cfg.head_dim ? { headDim: cfg.head_dim } : {}),
    mlpWidth: cfg.intermediate_size,
    activation: "swiglu" as const,
    norm: "rmsnorm" as const,
    positions: "rotary" as const,
    maxSeqLen: Math.min(opts.maxSeqLen ?? cfg.max_position_embeddings, cfg.max_position_embeddings),
    tiedEmbeddings: cfg.tie_word_embeddings,
    normEpsilon: cfg.rms_norm_eps,
    ropeTheta: rope.theta,
    ...(rope.scaling ? { ropeScaling: rope.scaling } : {}),
    // Qwen2 always has q/k/v biases and no output bias; Llama and Qwen3 bias all four when attention_bias
    qkvBias: qwen2 || cfg.attention_bias,
    attnOutBias: !qwen2 && cfg.attention_bias,
    mlpBias: modelType === "llama" && cfg.mlp_bias,
    qkNorm: modelType === "qwen3",
  };
  const config = ModelConfigSchema.safeParse(candidate);
  if (!config.success) {
    for (const i of config.error.issues) problems.push({ key: i.path.join("."), message: i.message });
  }
  if (problems.length > 0 || !config.success) return { ok: false, problems };
  return { ok: true, config: config.data, hf: cfg, modelType: modelType as SupportedModelType };
}

/** the dtype config.json declares (`dtype` in transformers 5, `torch_dtype` before) */
export function declaredDType(cfg: HfConfig): string | undefined {
  return cfg.dtype ?? cfg.torch_dtype ?? undefined;
}
