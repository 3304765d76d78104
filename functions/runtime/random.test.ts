import { describe, expect, it } from "vitest";
import { seededRandom } from "./random.ts";
import { backoffDelay, defaultRetryPolicy } from "./retry.ts";

describe("seededRandom", () => {
  it("repeats the same sequence for the same seed and differs for another", () => {
    const a = seededRandom("run-1/event-7");
    const b = seededRandom("run-1/event-7");
    const c = seededRandom("run-1/event-8");
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.next())).not.toEqual(seqA);
  });

  it("draws uniformly in [0, 1) and integers in range", () => {
    const rng = seededRandom(42);
    const buckets = new Array(10).fill(0);
    let min = 1;
    let max = 0;
    for (let i = 0; i < 20_000; i++) {
      const x = rng.next();
      min = Math.min(min, x);
      max = Math.max(max, x);
      buckets[Math.floor(x * 10)]++;
    }
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
    // each bucket expects 2000; 5 sigma is about 212
    for (const count of buckets) expect(Math.abs(count - 2000)).toBeLessThan(250);
    const ints = new Set(Array.from({ length: 1000 }, () => rng.int(3)));
    expect([...ints].sort()).toEqual([0, 1, 2]);
    expect(() => rng.int(0)).toThrow(RangeError);
  });

  it("forks stable independent streams", () => {
    const x = seededRandom("s").fork("a").next();
    const parent = seededRandom("s");
    parent.next();
    expect(parent.fork("a").next()).toBe(x);
    expect(seededRandom("s").fork("b").next()).not.toBe(x);
  });
});

describe("backoffDelay", () => {
  const policy = { ...defaultRetryPolicy, baseDelayMs: 100, maxDelayMs: 1000 };
  it("doubles, caps and jitters between half and all of the exponential delay", () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(policy, a, 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(policy, a, 1))).toEqual([100, 200, 400, 800, 1000]);
  });
  it("never waits less than the source's retry-after", () => {
    expect(backoffDelay(policy, 1, 0, 5000)).toBe(5000);
    expect(backoffDelay(policy, 4, 1, 10)).toBe(800);
  });
});
