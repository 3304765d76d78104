import type { PpoSample } from "../learn/learner-engine.ts";
import { InputError, type InputIssue } from "../runtime/errors.ts";

/**
 * A PPO batch as the torch learner reads it (torch-learner/questa_torch_learner/batch.py): for
 * N = the samples' tokens together, int32 token ids, then float32 loss masks, advantages and
 * behaviour log-probs, N entries each, little-endian; `lengths` says where each sample ends.
 */
export function encodeTorchBatch(samples: readonly PpoSample[]): { bytes: Uint8Array; lengths: number[] } {
  const issues: InputIssue[] = [];
  samples.forEach((s, i) => {
    if (s.tokens.length < 2)
      issues.push({ path: `samples[${i}].tokens`, message: "needs at least 2 tokens" });
    for (const name of ["lossMask", "advantages", "behaviourLogProbs"] as const) {
      if (s[name].length !== s.tokens.length) {
        issues.push({
          path: `samples[${i}].${name}`,
          message: `has ${s[name].length} entries, tokens has ${s.tokens.length}`,
          hint: "per-token arrays are aligned with tokens (entry 0 unused)",
        });
      }
    }
    const bad = s.tokens.findIndex((t) => !Number.isInteger(t) || t < 0 || t > 0x7fffffff);
    if (bad >= 0) issues.push({ path: `samples[${i}].tokens[${bad}]`, message: "is not a token id" });
  });
  if (samples.length === 0) issues.push({ path: "samples", message: "is empty" });
  if (issues.length > 0) throw new InputError("torch_learner.invalid_batch", issues);
  const lengths = samples.map((s) => s.tokens.length);
  const n = lengths.reduce((a, b) => a + b, 0);
  const buffer = new ArrayBuffer(16 * n);
  const tokens = new Int32Array(buffer, 0, n);
  const mask = new Float32Array(buffer, 4 * n, n);
  const advantages = new Float32Array(buffer, 8 * n, n);
  const behaviour = new Float32Array(buffer, 12 * n, n);
  let at = 0;
  for (const s of samples) {
    tokens.set(s.tokens, at);
    mask.set(s.lossMask, at);
    advantages.set(s.advantages, at);
    behaviour.set(s.behaviourLogProbs, at);
    at += s.tokens.length;
  }
  // typed arrays are in the platform's byte order: every platform Node.js ships for is little-endian
  return { bytes: new Uint8Array(buffer), lengths };
}
