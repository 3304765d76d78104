import { z } from "zod";

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
    mlpWidth: z.number().int().min(1).optional().describe("hidden width of the MLP; defaults to 4 x width"),
    activation: z.enum(["gelu", "swiglu"]).default("gelu"),
    norm: z.enum(["layernorm", "rmsnorm"]).default("layernorm"),
    positions: z.enum(["learned", "rotary"]).default("learned"),
    maxSeqLen: z.number().int().min(1).describe("longest sequence (prompt + completion) the model handles"),
    tiedEmbeddings: z.boolean().default(true),
    normEpsilon: z.number().positive().default(1e-5),
    ropeTheta: z.number().positive().default(10000),
    initStd: z.number().positive().default(0.02),
  })
  .superRefine((c, ctx) => {
    if (c.width % c.heads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["heads"],
        message: `width ${c.width} must be divisible by heads ${c.heads}`,
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
    if (c.positions === "rotary" && (c.width / c.heads) % 2 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["positions"],
        message: "rotary positions need an even head dimension",
      });
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
    headDim: c.width / c.heads,
    kvHeads,
    groups: c.heads / kvHeads,
    mlpWidth: c.mlpWidth ?? 4 * c.width,
  };
}
