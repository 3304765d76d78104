/**
 * Advantages of a batch of groups, one scalar per response (broadcast to every token by the learner).
 * - batch (official QuestA/AReaL default): (r - mean over the whole batch) / std over the whole batch
 * - group (GRPO): (r - group mean) / group std
 * - dr-grpo (Dr. GRPO): r - group mean, no std division (avoids the difficulty bias of std scaling)
 */
export type AdvantageMode = "batch" | "group" | "dr-grpo";

// guards the division when every reward in the scope is equal (std 0): advantages become 0
const STD_EPS = 1e-6;

function mean(values: readonly number[]): number {
  let sum = 0;
  for (const v of values) sum += v;
  return values.length === 0 ? 0 : sum / values.length;
}

/** population standard deviation (ddof 0), as the official code's torch `.std(unbiased=False)` */
function std(values: readonly number[], mu: number): number {
  let sum = 0;
  for (const v of values) sum += (v - mu) * (v - mu);
  return values.length === 0 ? 0 : Math.sqrt(sum / values.length);
}

export function computeAdvantages(groups: readonly (readonly number[])[], mode: AdvantageMode): number[][] {
  switch (mode) {
    case "batch": {
      const all = groups.flat();
      const mu = mean(all);
      const sigma = std(all, mu);
      return groups.map((g) => g.map((r) => (r - mu) / (sigma + STD_EPS)));
    }
    case "group":
      return groups.map((g) => {
        const mu = mean(g);
        const sigma = std(g, mu);
        return g.map((r) => (r - mu) / (sigma + STD_EPS));
      });
    case "dr-grpo":
      return groups.map((g) => {
        const mu = mean(g);
        return g.map((r) => r - mu);
      });
    default: {
      const never: never = mode;
      throw new Error(`unknown advantage mode ${String(never)}`);
    }
  }
}
