import { describe, expect, it } from "vitest";
import { KvCache, type PromptKv, promptKvFromPrefill } from "./kv-cache.ts";

const shape = { layers: 1, kvHeads: 2, headDim: 3 };

/** a prompt whose key and value at (head h, dim d, position t) is id*1000 + h*100 + d*10 + t */
function prompt(id: number, length: number): PromptKv {
  const k = new Float32Array(2 * 3 * length);
  const v = new Float32Array(2 * length * 3);
  for (let h = 0; h < 2; h++)
    for (let d = 0; d < 3; d++)
      for (let t = 0; t < length; t++) {
        const x = id * 1000 + h * 100 + d * 10 + t;
        k[(h * 3 + d) * length + t] = x;
        v[(h * length + t) * 3 + d] = x;
      }
  return { length, k: [k], v: [v], logits: new Float32Array(4) };
}

/** what the cache holds for `row` at slot t (key and value must agree) */
function entry(cache: KvCache, row: number, h: number, d: number, t: number): number {
  const { k, v } = cache.views();
  const C = cache.capacity;
  const key = k[0]![((row * 2 + h) * 3 + d) * C + t]!;
  expect(v[0]![((row * 2 + h) * C + t) * 3 + d]).toBe(key);
  return key;
}

describe("KvCache", () => {
  it("keeps each row's prompt and fill level through growth, removal and decode writes", () => {
    const cache = new KvCache(shape);
    cache.reserve(2, 4);
    expect(cache.append(prompt(1, 2))).toBe(0);
    expect(cache.append(prompt(2, 4))).toBe(1);
    // a longer row joins: more rows and more slots, the rows already there keep their entries
    cache.reserve(3, 6);
    expect(cache.append(prompt(3, 5))).toBe(2);
    expect(entry(cache, 1, 1, 2, 3)).toBe(2123);
    expect(entry(cache, 0, 0, 1, 1)).toBe(1011);
    expect([0, 1, 2].map((r) => cache.filled(r))).toEqual([2, 4, 5]);
    // one decode step writes each row's new entry at its own next slot
    const stepK = Float32Array.from({ length: 3 * 6 }, (_, i) => -1 - i);
    const stepV = Float32Array.from({ length: 3 * 6 }, (_, i) => {
      const row = Math.floor(i / 6);
      const h = Math.floor((i % 6) / 3);
      const d = i % 3;
      return stepK[(row * 2 + h) * 3 + d]!;
    });
    cache.write(0, stepK, stepV);
    cache.advance();
    expect(entry(cache, 0, 1, 0, 2)).toBe(-1 - 3);
    expect(entry(cache, 2, 0, 2, 5)).toBe(-1 - 14);
    expect(cache.mask(-9).slice(0, 6)).toEqual(Float32Array.of(0, 0, 0, -9, -9, -9));
    // the first row leaves: the last one moves into its place, with its fill level
    expect(cache.remove(0)).toBe(2);
    expect(cache.rows).toBe(2);
    expect(cache.filled(0)).toBe(6);
    expect(entry(cache, 0, 1, 1, 4)).toBe(3114);
    expect(cache.remove(1)).toBeUndefined();
    expect(cache.views().k[0]!.length).toBe(1 * 2 * 3 * 6);
  });

  it("copies a prompt out of a left-padded prefill batch", () => {
    // batch of 2, padded length 4: row 1 is a 3-token prompt after one pad slot
    const Lp = 4;
    const k = new Float32Array(2 * 2 * 3 * Lp);
    const v = new Float32Array(2 * 2 * Lp * 3);
    for (let b = 0; b < 2; b++)
      for (let h = 0; h < 2; h++)
        for (let d = 0; d < 3; d++)
          for (let t = 0; t < Lp; t++) {
            const x = b * 1000 + h * 100 + d * 10 + t;
            k[((b * 2 + h) * 3 + d) * Lp + t] = x;
            v[((b * 2 + h) * Lp + t) * 3 + d] = x;
          }
    const logits = Float32Array.of(1, 2, 3, 4, 5, 6);
    const p = promptKvFromPrefill(shape, { k: [k], v: [v], logits }, 1, Lp, 1, 3);
    expect(p.length).toBe(3);
    expect(p.logits).toEqual(Float32Array.of(4, 5, 6));
    // position 0 of the prompt is padded position 1
    expect(p.k[0]![(1 * 3 + 2) * 3 + 0]).toBe(1000 + 100 + 20 + 1);
    expect(p.v[0]![(0 * 3 + 2) * 3 + 1]).toBe(1000 + 0 + 10 + 3);
  });
});
