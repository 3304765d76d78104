import { describe, expect, it } from "vitest";
import { createRng } from "./rng.ts";
import { logProbOf, sampleToken } from "./sampler.ts";

const logits = Float32Array.from([2, 1, 0.5, -1, 3]);

function histogram(opts: { temperature: number; topP: number; topK: number }, n = 20000): number[] {
  const rng = createRng(42);
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleToken(logits, 0, logits.length, opts, rng).token]! += 1;
  return counts.map((c) => c / n);
}

describe("sampler", () => {
  it("greedy picks the argmax with its policy log-prob", () => {
    const s = sampleToken(logits, 0, 5, { temperature: 0, topP: 1, topK: 0 }, createRng(1));
    expect(s.token).toBe(4);
    expect(s.logProb).toBeCloseTo(logProbOf(logits, 0, 5, 4), 12);
  });

  it("temperature 1 follows the softmax distribution", () => {
    const freq = histogram({ temperature: 1, topP: 1, topK: 0 });
    const z = Array.from(logits).reduce((s, x) => s + Math.exp(x), 0);
    Array.from(logits).forEach((x, i) => {
      expect(freq[i]!).toBeCloseTo(Math.exp(x) / z, 1);
    });
  });

  it("top-k keeps only the k most likely tokens", () => {
    const freq = histogram({ temperature: 1, topP: 1, topK: 2 });
    expect(freq[1]! + freq[2]! + freq[3]!).toBe(0);
    expect(freq[0]! + freq[4]!).toBe(1);
  });

  it("top-p keeps the smallest prefix with the requested mass", () => {
    // p(4) ~ 0.61, p(0) ~ 0.22: top-p 0.7 keeps exactly tokens 4 and 0
    const freq = histogram({ temperature: 1, topP: 0.7, topK: 0 });
    expect(freq[1]! + freq[2]! + freq[3]!).toBe(0);
    expect(freq[4]!).toBeGreaterThan(freq[0]!);
  });

  it("is deterministic for a seed and reads the row at its offset", () => {
    const two = Float32Array.from([0, 0, 0, 9, 9, 9, 9, 50, 9, 9]);
    const a = sampleToken(two, 5, 5, { temperature: 0.7, topP: 0.95, topK: 0 }, createRng(3));
    const b = sampleToken(two, 5, 5, { temperature: 0.7, topP: 0.95, topK: 0 }, createRng(3));
    expect(a).toEqual(b);
    expect(a.token).toBe(2);
  });
});
