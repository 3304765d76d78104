/**
 * DAPO dynamic sampling: a group whose success rate is outside [min, max] has (almost) no reward
 * variance and so no policy gradient; it is dropped before batching.
 */
export interface GroupFilterBounds {
  minSuccessRate: number;
  maxSuccessRate: number;
}

export type GroupVerdict = { keep: true } | { keep: false; reason: "too_hard" | "too_easy" };

export function judgeGroup(successRate: number, bounds: GroupFilterBounds): GroupVerdict {
  if (successRate < bounds.minSuccessRate) return { keep: false, reason: "too_hard" };
  if (successRate > bounds.maxSuccessRate) return { keep: false, reason: "too_easy" };
  return { keep: true };
}
