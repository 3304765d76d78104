import { z } from "zod";

/**
 * How rotary frequencies are rescaled for long contexts (Hugging Face `rope_scaling` /
 * `rope_parameters`): none, `linear` (positions divided by `factor`) or `llama3` (Llama 3.1's
 * wavelength-dependent rule).
 */
export const RopeScalingSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("linear"), factor: z.number().positive() }),
  z.object({
    type: z.literal("llama3"),
    factor: z.number().positive(),
    lowFreqFactor: z.number().positive(),
    highFreqFactor: z.number().positive(),
    originalMaxPositions: z.number().int().positive(),
  }),
]);
export type RopeScaling = z.infer<typeof RopeScalingSchema>;

/** A decoder-only transformer's shape. Everything the graphs and checkpoints need to rebuild the model. */
export const ModelConfigSchema = z
  .object({
    vocabSize: z.number().int().min(2).describe("number of token ids"),
    layers: z.number().int().min(1).describe("transformer blocks"),
    width: z.number().int().min(2).describe("residual stream width (d_model)"),
    heads: z.number().int().min(1).describe("query heads"),
    kvHeads: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("key/value heads (grouped-query attention); defaults to heads"),
    headDim: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("width of one attention head; defaults to width / heads (Qwen3 sets it explicitly)"),
    mlpWidth: z.number().int().min(1).optional().describe("hidden width of the MLP; defaults to 4 x width"),
    activation: z.enum(["gelu", "swiglu"]).default("gelu"),
    norm: z.enum(["layernorm", "rmsnorm"]).default("layernorm"),
    positions: z.enum(["learned", "rotary"]).default("learned"),
    maxSeqLen: z.number().int().min(1).describe("longest sequence (prompt + completion) the model handles"),
    tiedEmbeddings: z.boolean().default(true),
    normEpsilon: z.number().positive().default(1e-5),
    ropeTheta: z.number().positive().default(10000),
    ropeScaling: RopeScalingSchema.optional(),
    /** biases on the query, key and value projections (Qwen2; Llama with attention_bias) */
    qkvBias: z.boolean().default(false),
    /** bias on the attention output projection (Llama with attention_bias) */
    attnOutBias: z.boolean().default(false),
    /** biases on the MLP projections (Llama with mlp_bias) */
    mlpBias: z.boolean().default(false),
    /** RMSNorm over each query and key head before the rotary embedding (Qwen3) */
    qkNorm: z.boolean().default(false),
    initStd: z.number().positive().default(0.02),
  })
  .superRefine((c, ctx) => {
    if (c.headDim === undefined && c.width % c.heads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["heads"],
        message: `width ${c.width} must be divisible by heads ${c.heads} (or set headDim)`,
      });
    }
    const kv = c.kvHeads ?? c.heads;
    if (c.heads % kv !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["kvHeads"],
        message: `heads ${c.heads} must be divisible by kvHeads ${kv}`,
      });
    }
    const headDim = c.headDim ?? c.width / c.heads;
    if (c.positions === "rotary" && headDim % 2 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["positions"],
        message: "rotary positions need an even head dimension",
      });
    }
    if (c.qkNorm && c.norm !== "rmsnorm") {
      ctx.addIssue({ code: "custom", path: ["qkNorm"], message: "qkNorm needs norm rmsnorm" });
    }
  });
export type ModelConfig = z.infer<typeof ModelConfigSchema>;
export type ModelConfigInput = z.input<typeof ModelConfigSchema>;

/** derived sizes used throughout the graphs */
export interface ModelDims {
  readonly headDim: number;
  readonly kvHeads: number;
  /** query heads per kv head */
  readonly groups: number;
  readonly mlpWidth: number;
}

export function modelDims(c: ModelConfig): ModelDims {
  const kvHeads = c.kvHeads ?? c.heads;
  return {
    headDim: c.headDim ?? c.width / c.heads,
    kvHeads,
    groups: c.heads / kvHeads,
    mlpWidth: c.mlpWidth ?? 4 * c.width,
  };
}
