/** Token sampling from logits: temperature, top-k, top-p, greedy; pure apart from the passed-in Rng. */
import type { Rng } from "./rng.ts";

export interface SamplingOptions {
  /** 0 = greedy (argmax) */
  readonly temperature: number;
  /** nucleus mass in (0, 1]; 1 disables */
  readonly topP: number;
  /** keep the k most likely tokens; 0 disables */
  readonly topK: number;
}

export interface SampledToken {
  readonly token: number;
  /** log-prob of the token under the unmodified policy (temperature 1, no truncation) */
  readonly logProb: number;
}

/** log-softmax of `logits` at `token` */
export function logProbOf(logits: ArrayLike<number>, offset: number, size: number, token: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < size; i++) max = Math.max(max, logits[offset + i]!);
  let sum = 0;
  for (let i = 0; i < size; i++) sum += Math.exp(logits[offset + i]! - max);
  return logits[offset + token]! - max - Math.log(sum);
}

export function argmax(logits: ArrayLike<number>, offset: number, size: number): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < size; i++) {
    const v = logits[offset + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** samples one token from row `logits[offset .. offset+size)` */
export function sampleToken(
  logits: ArrayLike<number>,
  offset: number,
  size: number,
  opts: SamplingOptions,
  rng: Rng,
): SampledToken {
  if (opts.temperature <= 0) {
    const token = argmax(logits, offset, size);
    return { token, logProb: logProbOf(logits, offset, size, token) };
  }
  const inv = 1 / opts.temperature;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < size; i++) max = Math.max(max, logits[offset + i]!);
  const weights = new Float64Array(size);
  let total = 0;
  for (let i = 0; i < size; i++) {
    const w = Math.exp((logits[offset + i]! - max) * inv);
    weights[i] = w;
    total += w;
  }
  let token: number;
  const truncate = (opts.topK > 0 && opts.topK < size) || opts.topP < 1;
  if (!truncate) token = pick(weights, total, rng);
  else {
    const order = Array.from({ length: size }, (_, i) => i).sort((a, b) => weights[b]! - weights[a]!);
    let keep = opts.topK > 0 ? Math.min(opts.topK, size) : size;
    if (opts.topP < 1) {
      let mass = 0;
      for (let i = 0; i < keep; i++) {
        mass += weights[order[i]!]! / total;
        if (mass >= opts.topP) {
          keep = i + 1;
          break;
        }
      }
    }
    let keptTotal = 0;
    for (let i = 0; i < keep; i++) keptTotal += weights[order[i]!]!;
    let u = rng.next() * keptTotal;
    token = order[keep - 1]!;
    for (let i = 0; i < keep; i++) {
      u -= weights[order[i]!]!;
      if (u < 0) {
        token = order[i]!;
        break;
      }
    }
  }
  return { token, logProb: logProbOf(logits, offset, size, token) };
}

function pick(weights: Float64Array, total: number, rng: Rng): number {
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i]!;
    if (u < 0) return i;
  }
  // rounding left u >= 0: the last token with weight
  for (let i = weights.length - 1; i >= 0; i--) if (weights[i]! > 0) return i;
  return 0;
}
