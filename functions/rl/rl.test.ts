import { describe, expect, it } from "vitest";
import { computeAdvantages } from "./advantages.ts";
import { judgeGroup } from "./group-filter.ts";
import { bootstrapInterval, majorityCorrect, passAtK, scoreBenchmark } from "./pass-at-k.ts";

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

describe("passAtK", () => {
  it("matches hand-computed unbiased values", () => {
    // n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    expect(passAtK(4, 1, 2)).toBeCloseTo(0.5, 12);
    // n=5, c=2, k=3: 1 - C(3,3)/C(5,3) = 1 - 1/10
    expect(passAtK(5, 2, 3)).toBeCloseTo(0.9, 12);
    expect(passAtK(8, 0, 8)).toBe(0);
    expect(passAtK(8, 1, 8)).toBe(1);
    expect(passAtK(32, 3, 1)).toBeCloseTo(3 / 32, 12);
  });

  it("equals the binomial formula across a grid", () => {
    for (let n = 1; n <= 20; n++)
      for (let c = 0; c <= n; c++)
        for (let k = 1; k <= n; k++) {
          const expected = n - c < k ? 1 : 1 - binomial(n - c, k) / binomial(n, k);
          expect(passAtK(n, c, k)).toBeCloseTo(expected, 10);
        }
  });

  it("rejects impossible arguments", () => {
    expect(() => passAtK(4, 5, 1)).toThrow(RangeError);
    expect(() => passAtK(4, 1, 5)).toThrow(/k <= n/);
  });
});

describe("majority and benchmark scores", () => {
  it("grades the most frequent answer, ties to the first seen", () => {
    expect(majorityCorrect(["1", "2", "2"], [true, false, false], 3)).toBe(false);
    expect(majorityCorrect(["1", "2", "1"], [true, false, true], 3)).toBe(true);
    expect(majorityCorrect(["2", "1"], [false, true], 2)).toBe(false);
    expect(majorityCorrect([null, null], [false, false], 2)).toBe(false);
  });

  it("averages pass@1, pass@k and maj@k over problems", () => {
    const scores = scoreBenchmark(
      [
        { answers: ["1", "1", "2", "3"], correct: [true, true, false, false] },
        { answers: ["5", "6", "7", "8"], correct: [false, false, false, false] },
      ],
      [1, 2, 4],
    );
    expect(scores.passAt1).toBeCloseTo(0.25, 12);
    expect(scores.passAtK["2"]).toBeCloseTo((1 - binomial(2, 2) / binomial(4, 2)) / 2, 12);
    expect(scores.passAtK["4"]).toBeCloseTo(0.5, 12);
    expect(scores.majAtK["4"]).toBeCloseTo(0.5, 12);
  });

  it("bootstraps an interval around the mean", () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const scores = Array.from({ length: 200 }, (_, i) => (i % 4 === 0 ? 1 : 0));
    const ci = bootstrapInterval(scores, random);
    expect(ci.low).toBeLessThan(0.25);
    expect(ci.high).toBeGreaterThan(0.25);
    expect(ci.high - ci.low).toBeLessThan(0.2);
  });
});

describe("advantages", () => {
  it("batch mode normalises over the whole batch (official default)", () => {
    const adv = computeAdvantages(
      [
        [5, 0],
        [0, 0],
      ],
      "batch",
    );
    // mean 1.25, population std sqrt(4.6875)
    const sigma = Math.sqrt(4.6875);
    expect(adv[0]?.[0]).toBeCloseTo(3.75 / sigma, 5);
    expect(adv[1]?.[1]).toBeCloseTo(-1.25 / sigma, 5);
  });

  it("group mode is GRPO; dr-grpo does not divide by the std", () => {
    expect(computeAdvantages([[5, 0]], "group")[0]?.[0]).toBeCloseTo(1, 5);
    expect(computeAdvantages([[5, 0]], "dr-grpo")[0]).toEqual([2.5, -2.5]);
    expect(computeAdvantages([[5, 5]], "group")[0]).toEqual([0, 0]);
  });
});

describe("group filter", () => {
  it("drops all-wrong and all-right groups with the default bounds", () => {
    const bounds = { minSuccessRate: 0.05, maxSuccessRate: 0.95 };
    expect(judgeGroup(0, bounds)).toEqual({ keep: false, reason: "too_hard" });
    expect(judgeGroup(1, bounds)).toEqual({ keep: false, reason: "too_easy" });
    expect(judgeGroup(1 / 16, bounds)).toEqual({ keep: true });
  });
});
