/**
 * Rollout worker autoscaling from consumer lag (pure). Each worker is expected to keep up with
 * `lagPerReplica` queued questions; scaling up is immediate, scaling down (and to zero when idle) waits
 * until the lower demand has lasted `scaleDownAfterMs`, so a brief lull does not kill warm workers.
 */
export interface AutoscalePolicy {
  min: number;
  max: number;
  lagPerReplica: number;
  scaleDownAfterMs: number;
}

export interface AutoscaleState {
  /** when demand first fell below the current replica count; undefined while it has not */
  belowSince?: number | undefined;
}

export interface AutoscaleDecision {
  replicas: number;
  state: AutoscaleState;
  reason: "scale-up" | "scale-down" | "idle" | "steady" | "bounds";
}

export const DEFAULT_LAG_PER_REPLICA = 64;
export const DEFAULT_SCALE_DOWN_AFTER_MS = 120_000;

const clamp = (value: number, low: number, high: number) => Math.min(high, Math.max(low, value));

export function decideRolloutReplicas(input: {
  lag: number;
  current: number;
  policy: AutoscalePolicy;
  state: AutoscaleState;
  now: number;
}): AutoscaleDecision {
  const { lag, current, policy, state, now } = input;
  const min = Math.max(0, policy.min);
  const max = Math.max(min, policy.max);
  const demand =
    lag > 0 ? clamp(Math.ceil(lag / Math.max(1, policy.lagPerReplica)), Math.max(1, min), max) : min;
  if (current < min || current > max)
    return { replicas: clamp(current, min, max), state: {}, reason: "bounds" };
  if (demand > current) return { replicas: demand, state: {}, reason: "scale-up" };
  if (demand === current) return { replicas: current, state: {}, reason: "steady" };
  const belowSince = state.belowSince ?? now;
  if (now - belowSince < policy.scaleDownAfterMs)
    return { replicas: current, state: { belowSince }, reason: "steady" };
  return { replicas: demand, state: {}, reason: lag === 0 ? "idle" : "scale-down" };
}
