import type { ObjectRef } from "../contracts/events.ts";
import type { ObjectStore } from "../runtime/object-store.ts";

/**
 * What the learner needs from a policy engine. A port, so the learner's logic is tested with a
 * tiny in-memory policy and runs unchanged on the onnxruntime engine (functions/model).
 */
export interface PpoSample {
  /** prompt + response token ids */
  tokens: readonly number[];
  /** 1 on response tokens (trained), 0 on the prompt; aligned with tokens, entry 0 unused */
  lossMask: readonly number[];
  /** per-token advantage (the response's scalar advantage broadcast) */
  advantages: readonly number[];
  /** log-probs under the policy that sampled the response */
  behaviourLogProbs: readonly number[];
}

export interface PpoSettings {
  learningRate: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  gradClip: number;
  clipLow: number;
  clipHigh: number;
  importanceCap: number;
  klCoef: number;
  entropyCoef: number;
  /** tokens per micro-batch for gradient accumulation (spec.learner.microBatchTokens); engine default when absent */
  microBatchTokens?: number;
}

export interface PpoStepMetrics {
  loss: number;
  entropy: number;
  clipFraction: number;
  approxKl: number;
  gradNorm: number;
  tokens: number;
  /** mean over trained tokens of |log pi_proximal - log pi_behaviour|: the sampler/learner log-prob mismatch */
  logProbGap: number;
  /** mean over trained tokens of the k3 KL to the reference policy; reported while klCoef > 0 */
  klToReference?: number;
}

export interface LearnerEngine {
  /**
   * one optimiser step over all samples (gradient accumulation inside if needed). Decoupled PPO:
   * the proximal policy is the parameters before this step, whose log-probs the engine takes from
   * the step's own forward pass (one update per step, so no separate recomputation is needed)
   */
  trainPpo(samples: readonly PpoSample[], settings: PpoSettings): Promise<PpoStepMetrics>;
  /**
   * writes a checkpoint under `prefix` (manifest last, so it is visible only when complete);
   * `withOptimizer: false` writes weights only (a policy update for rollout workers); `publish`
   * marks a full checkpoint for users, which a model that came as a Hugging Face folder also
   * writes in that form (under `<prefix>/hf/`)
   */
  saveCheckpoint(
    store: ObjectStore,
    prefix: string,
    meta: { step: number; parentStep?: number; withOptimizer: boolean; publish?: boolean },
  ): Promise<ObjectRef>;
  /** restores parameters and optimiser state from a checkpoint written by saveCheckpoint */
  loadCheckpoint(store: ObjectStore, prefix: string): Promise<void>;
  /**
   * loads the reference policy of the KL penalty (the run's initial policy), which `trainPpo` then
   * scores every sample with while `klCoef` > 0; an engine without it refuses a KL penalty at start
   */
  loadReference?(store: ObjectStore, prefix: string): Promise<void>;
}
