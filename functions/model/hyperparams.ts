import { z } from "zod";

/** AdamW with bias correction and global-norm clipping (defaults: the official QuestA recipe) */
export const OptimizerHyperparamsSchema = z.object({
  lr: z.number().nonnegative().default(2e-5),
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.95),
  eps: z.number().positive().default(1e-5),
  weightDecay: z.number().nonnegative().default(0.05),
  maxGradNorm: z.number().positive().default(1.0),
  /**
   * sequences per graph run; larger batches accumulate gradients over several runs. Default: 32,
   * fewer when their logits would exceed 2^26 floats (large vocabularies)
   */
  microBatchSize: z.number().int().min(1).optional(),
});

/** decoupled PPO (behaviour vs proximal policy), token-mean aggregation */
export const PpoHyperparamsSchema = OptimizerHyperparamsSchema.extend({
  clipLow: z.number().nonnegative().default(0.2),
  clipHigh: z.number().nonnegative().default(0.2),
  /** cap on the behaviour importance weight exp(proximal - behaviour) */
  importanceWeightCap: z.number().positive().default(5),
  /** above the cap: `mask` drops the token from the loss (AReaL's rule), `clip` uses the cap */
  importanceWeightMode: z.enum(["mask", "clip"]).default("mask"),
  /** coefficient of the k3 KL to the reference policy (needs referenceLogProbs); 0 = none */
  klCoef: z.number().nonnegative().default(0),
  /** entropy bonus coefficient; 0 = none */
  entropyCoef: z.number().nonnegative().default(0),
  /**
   * where the proximal log-probs come from: `samples` (each sample's proximalLogProbs, else its
   * behaviour log-probs) or `current`, the parameters before this update, computed in the training
   * forward pass itself. With one update per call the two agree (`current` spares a forward pass).
   */
  proximalPolicy: z.enum(["samples", "current"]).default("samples"),
});

export const SupervisedHyperparamsSchema = OptimizerHyperparamsSchema.extend({
  entropyCoef: z.number().nonnegative().default(0),
});

export type OptimizerHyperparams = z.infer<typeof OptimizerHyperparamsSchema>;
export type PpoHyperparams = z.infer<typeof PpoHyperparamsSchema>;
export type PpoHyperparamsInput = z.input<typeof PpoHyperparamsSchema>;
export type SupervisedHyperparams = z.infer<typeof SupervisedHyperparamsSchema>;
export type SupervisedHyperparamsInput = z.input<typeof SupervisedHyperparamsSchema>;

/**
 * One sequence (prompt + completion) for a PPO update. Per-token arrays are aligned with `tokens`:
 * entry i describes the prediction of tokens[i] from tokens[0..i-1]; entry 0 is never used.
 */
export interface PolicySample {
  readonly tokens: readonly number[];
  /** 1 for completion tokens that count in the loss, 0 for prompt and padding */
  readonly lossMask: readonly number[];
  readonly advantages: readonly number[];
  /** log-probs under the policy that generated the tokens */
  readonly behaviourLogProbs: readonly number[];
  /**
   * log-probs under the proximal policy (recomputed before the update); defaults to behaviour; must
   * be absent when the hyper-parameters say `proximalPolicy: "current"`
   */
  readonly proximalLogProbs?: readonly number[];
  /** log-probs under the reference policy, required when klCoef > 0 */
  readonly referenceLogProbs?: readonly number[];
}

/** one sequence for supervised (cross-entropy) training; lossMask defaults to every token after the first */
export interface SupervisedSample {
  readonly tokens: readonly number[];
  readonly lossMask?: readonly number[];
}

export interface PpoMetrics {
  /** token-mean loss actually optimised */
  readonly loss: number;
  readonly policyLoss: number;
  readonly entropy: number;
  readonly clipFraction: number;
  /** k3 estimate of KL(proximal || current) */
  readonly approxKl: number;
  readonly klToReference: number;
  readonly importanceWeight: number;
  /** mean |log pi_proximal - log pi_behaviour| over trained tokens: the sampler/learner log-prob mismatch */
  readonly logProbGap: number;
  /** global gradient norm before clipping */
  readonly gradNorm: number;
  readonly tokens: number;
  readonly microBatches: number;
  readonly step: number;
}

export interface SupervisedMetrics {
  readonly loss: number;
  readonly nll: number;
  readonly tokenAccuracy: number;
  readonly entropy: number;
  readonly gradNorm: number;
  readonly tokens: number;
  readonly microBatches: number;
  readonly step: number;
}
