/**
 * How much memory the engine needs for a model: weights, training state and activations, in bytes.
 * The engine computes in float32 whatever dtype the weights are stored in.
 */
import { type ModelConfig, modelDims } from "./config.ts";
import { HOST_OPTIMIZER_MIN_PARAMS } from "./engine.ts";
import { paramCount } from "./params.ts";

export interface MemoryEstimate {
  parameters: number;
  /** float32 weights: what sampling holds */
  weightsBytes: number;
  /** the KV cache per token of every sequence being sampled */
  kvCacheBytesPerToken: number;
  /** weights, one gradient and AdamW's two moments, all float32 (host optimiser: 16 bytes per parameter) */
  trainingStateBytes: number;
  /** activations and backward buffers per token of a train micro-batch (estimate, see below) */
  activationBytesPerToken: number;
  /** training state plus activations of one micro-batch of `microBatchTokens` */
  trainStepBytes: number;
  microBatchTokens: number;
  /** the sequence length the attention part of the activations assumes */
  length: number;
}

/**
 * Floats kept per token and layer by the forward and backward graphs (q/k/v, attention output,
 * MLP activations and their gradients), per token for the logits (log-softmax, probabilities and
 * their gradient), and per token and head for attention scores, times 2 for onnxruntime's arenas
 * and autodiff's intermediates: calibrated on bench/qwen-shaped.bench.ts, where a Qwen2.5-0.5B-shaped
 * model's step over 4 x 128 tokens peaked at 14.5 GiB.
 */
function activationFloatsPerToken(c: ModelConfig, length: number): number {
  const d = modelDims(c);
  const perLayer =
    12 * c.width + 4 * d.mlpWidth + 2 * (c.heads + 2 * d.kvHeads) * d.headDim + 3 * c.heads * length;
  return 2 * (c.layers * perLayer + 6 * c.vocabSize);
}

export function memoryEstimate(
  c: ModelConfig,
  opts: { microBatchTokens?: number; length?: number } = {},
): MemoryEstimate {
  const parameters = paramCount(c);
  const d = modelDims(c);
  const microBatchTokens = opts.microBatchTokens ?? 512;
  const length = opts.length ?? Math.min(c.maxSeqLen, 1024);
  const weightsBytes = 4 * parameters;
  // the fused graph (small models) holds about ten copies of the weights; the host optimiser four
  const trainingStateBytes = (parameters >= HOST_OPTIMIZER_MIN_PARAMS ? 16 : 40) * parameters;
  const activationBytesPerToken = 4 * activationFloatsPerToken(c, length);
  return {
    parameters,
    weightsBytes,
    kvCacheBytesPerToken: 4 * 2 * c.layers * d.kvHeads * d.headDim,
    trainingStateBytes,
    activationBytesPerToken,
    trainStepBytes: trainingStateBytes + microBatchTokens * activationBytesPerToken,
    microBatchTokens,
    length,
  };
}
