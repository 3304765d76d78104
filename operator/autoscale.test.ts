import { describe, expect, it } from "vitest";
import { type AutoscalePolicy, decideRolloutReplicas } from "./autoscale.ts";

const policy: AutoscalePolicy = { min: 0, max: 4, lagPerReplica: 10, scaleDownAfterMs: 1000 };

describe("decideRolloutReplicas", () => {
  it("scales up at once, proportionally to lag, capped at max", () => {
    expect(decideRolloutReplicas({ lag: 25, current: 0, policy, state: {}, now: 0 }).replicas).toBe(3);
    expect(decideRolloutReplicas({ lag: 1, current: 0, policy, state: {}, now: 0 }).replicas).toBe(1);
    expect(decideRolloutReplicas({ lag: 10_000, current: 1, policy, state: {}, now: 0 })).toMatchObject({
      replicas: 4,
      reason: "scale-up",
    });
  });

  it("waits scaleDownAfterMs of lower demand before scaling down, then goes to zero when idle", () => {
    const first = decideRolloutReplicas({ lag: 0, current: 3, policy, state: {}, now: 5000 });
    expect(first).toMatchObject({ replicas: 3, reason: "steady", state: { belowSince: 5000 } });
    const early = decideRolloutReplicas({ lag: 0, current: 3, policy, state: first.state, now: 5500 });
    expect(early.replicas).toBe(3);
    const late = decideRolloutReplicas({ lag: 0, current: 3, policy, state: early.state, now: 6000 });
    expect(late).toMatchObject({ replicas: 0, reason: "idle", state: {} });
  });

  it("a burst of lag resets the scale-down timer", () => {
    const waiting = decideRolloutReplicas({ lag: 0, current: 2, policy, state: {}, now: 0 });
    const busy = decideRolloutReplicas({ lag: 20, current: 2, policy, state: waiting.state, now: 900 });
    expect(busy).toMatchObject({ replicas: 2, state: {} });
    const again = decideRolloutReplicas({ lag: 0, current: 2, policy, state: busy.state, now: 1500 });
    expect(again.replicas).toBe(2);
  });

  it("never goes below min nor above max, and never to zero with lag", () => {
    const withMin = { ...policy, min: 2 };
    expect(decideRolloutReplicas({ lag: 0, current: 0, policy: withMin, state: {}, now: 0 })).toMatchObject({
      replicas: 2,
      reason: "bounds",
    });
    expect(decideRolloutReplicas({ lag: 0, current: 9, policy: withMin, state: {}, now: 0 }).replicas).toBe(
      4,
    );
    const scaledDown = decideRolloutReplicas({
      lag: 3,
      current: 4,
      policy,
      state: { belowSince: 0 },
      now: 10_000,
    });
    expect(scaledDown).toMatchObject({ replicas: 1, reason: "scale-down" });
  });
});
