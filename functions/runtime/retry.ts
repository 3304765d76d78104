import { z } from "zod";

/** How the runner retries a failing handler or publish. */
export const RetryPolicySchema = z.object({
  /** attempts in all, the first included; 1 = no retry */
  maxAttempts: z.int().min(1).max(100).default(5),
  /** delay before the second attempt; doubles each time */
  baseDelayMs: z.number().min(0).default(200),
  maxDelayMs: z.number().min(0).default(30_000),
  /**
   * how long an unavailable dependency (object store or broker unreachable, throttling, 5xx) is
   * waited for, per message, before the function stops with the message uncommitted (a restarted
   * process picks it up again); such failures never count as attempts and never dead-letter
   */
  outageBudgetMs: z
    .number()
    .min(0)
    .default(15 * 60_000),
});
export type RetryPolicy = z.infer<typeof RetryPolicySchema>;

export const defaultRetryPolicy: RetryPolicy = RetryPolicySchema.parse({});

/**
 * Delay after the `failedAttempt`-th failure (1-based): exponential, capped, with "equal jitter"
 * (half fixed, half random) so a crowd of consumers does not retry in lockstep. A source's
 * `retryAfterMs` is a floor.
 */
export function backoffDelay(
  policy: RetryPolicy,
  failedAttempt: number,
  jitter: number,
  retryAfterMs?: number,
): number {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempt - 1));
  const delay = exponential / 2 + (Math.min(Math.max(jitter, 0), 1) * exponential) / 2;
  return Math.max(delay, retryAfterMs ?? 0);
}
