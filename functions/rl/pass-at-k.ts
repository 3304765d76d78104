/**
 * Evaluation metrics over n samples per problem.
 * pass@k is the unbiased estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a
 * running product so it never overflows: 1 - prod_{i=n-c+1}^{n} (1 - k / i).
 */
export function passAtK(n: number, c: number, k: number): number {
  if (
    !Number.isInteger(n) ||
    !Number.isInteger(c) ||
    !Number.isInteger(k) ||
    n < 1 ||
    k < 1 ||
    c < 0 ||
    c > n
  ) {
    throw new RangeError(`pass@k needs integers n >= 1, 0 <= c <= n, k >= 1 (got n=${n}, c=${c}, k=${k})`);
  }
  if (k > n) throw new RangeError(`pass@k needs k <= n (got k=${k}, n=${n})`);
  if (n - c < k) return 1;
  let product = 1;
  for (let i = n - c + 1; i <= n; i++) product *= 1 - k / i;
  return 1 - product;
}

/**
 * maj@k over the first k samples of each problem: the most frequent extracted answer (ties broken
 * by first appearance) is graded. `answers` are canonical answer strings (null: none extracted),
 * `correct[i]` says whether sample i was graded correct.
 */
export function majorityCorrect(
  answers: readonly (string | null)[],
  correct: readonly boolean[],
  k: number,
): boolean {
  const counts = new Map<string, { count: number; first: number }>();
  const limit = Math.min(k, answers.length);
  for (let i = 0; i < limit; i++) {
    const answer = answers[i];
    if (answer === null || answer === undefined) continue;
    const entry = counts.get(answer);
    if (entry) entry.count++;
    else counts.set(answer, { count: 1, first: i });
  }
  let best: { count: number; first: number } | undefined;
  for (const entry of counts.values()) {
    if (!best || entry.count > best.count || (entry.count === best.count && entry.first < best.first))
      best = entry;
  }
  return best !== undefined && correct[best.first] === true;
}

/** Percentile bootstrap 95% interval of the mean of per-problem scores; `random` in [0, 1). */
export function bootstrapInterval(
  scores: readonly number[],
  random: () => number,
  resamples = 1000,
): { low: number; high: number } {
  if (scores.length === 0) return { low: 0, high: 0 };
  const means: number[] = new Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let sum = 0;
    for (let i = 0; i < scores.length; i++) sum += scores[Math.floor(random() * scores.length)] ?? 0;
    means[r] = sum / scores.length;
  }
  means.sort((a, b) => a - b);
  const at = (q: number) => means[Math.min(resamples - 1, Math.max(0, Math.floor(q * resamples)))] ?? 0;
  return { low: at(0.025), high: at(0.975) };
}

export interface ProblemSamples {
  /** canonical extracted answer per sample (null when none) */
  answers: readonly (string | null)[];
  correct: readonly boolean[];
}

export interface BenchmarkScores {
  passAt1: number;
  passAtK: Record<string, number>;
  majAtK: Record<string, number>;
  perProblemPassAt1: number[];
}

/** pass@1 (avg@n), unbiased pass@k and maj@k averaged over problems. */
export function scoreBenchmark(problems: readonly ProblemSamples[], ks: readonly number[]): BenchmarkScores {
  const perProblemPassAt1: number[] = [];
  const passAtKSum = new Map<number, number>();
  const majSum = new Map<number, number>();
  for (const problem of problems) {
    const n = problem.correct.length;
    const c = problem.correct.filter(Boolean).length;
    perProblemPassAt1.push(n === 0 ? 0 : c / n);
    for (const k of ks) {
      if (k > n) continue;
      passAtKSum.set(k, (passAtKSum.get(k) ?? 0) + passAtK(n, c, k));
      majSum.set(k, (majSum.get(k) ?? 0) + (majorityCorrect(problem.answers, problem.correct, k) ? 1 : 0));
    }
  }
  const count = Math.max(1, problems.length);
  const passAtKOut: Record<string, number> = {};
  const majOut: Record<string, number> = {};
  for (const [k, sum] of passAtKSum) passAtKOut[String(k)] = sum / count;
  for (const [k, sum] of majSum) majOut[String(k)] = sum / count;
  return {
    passAt1: perProblemPassAt1.reduce((a, b) => a + b, 0) / count,
    passAtK: passAtKOut,
    majAtK: majOut,
    perProblemPassAt1,
  };
}
