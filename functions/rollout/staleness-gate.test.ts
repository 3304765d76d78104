import { describe, expect, it } from "vitest";
import { StalenessGate } from "./staleness-gate.ts";

describe("StalenessGate", () => {
  it("lets (v + maxStaleness + 1) * promptsPerStep groups through, then waits for the learner", async () => {
    const gate = new StalenessGate({ maxStaleness: 1, promptsPerStep: 2 });
    expect(gate.capacity).toBe(4);
    for (let i = 0; i < 4; i++) {
      await gate.waitForCapacity();
      gate.recordProduced();
    }
    expect(gate.capacity).toBe(0);
    let released = false;
    const waiting = gate.waitForCapacity().then(() => {
      released = true;
    });
    await Promise.resolve();
    expect(released).toBe(false);
    gate.observeLearner(1);
    await waiting;
    expect(released).toBe(true);
    expect(gate.capacity).toBe(2);
    expect(gate.oldestAllowedVersion).toBe(0);
    gate.observeLearner(3);
    expect(gate.oldestAllowedVersion).toBe(2);
  });

  it("ignores old learner versions and stops waiting on abort", async () => {
    const gate = new StalenessGate({ maxStaleness: 0, promptsPerStep: 1, produced: 5, learnerVersion: 4 });
    expect(gate.capacity).toBe(0);
    gate.observeLearner(2);
    expect(gate.learnerVersion).toBe(4);
    const controller = new AbortController();
    const waiting = gate.waitForCapacity(controller.signal);
    controller.abort(new Error("draining"));
    await expect(waiting).rejects.toThrow("draining");
  });

  it("holds reserved capacity, so concurrent questions cannot overshoot the bound together", async () => {
    const gate = new StalenessGate({ maxStaleness: 0, promptsPerStep: 2 });
    const first = await gate.reserve();
    const second = await gate.reserve();
    expect(gate.capacity).toBe(0);
    let third: (() => void) | undefined;
    const waiting = gate.reserve().then((release) => {
      third = release;
    });
    await Promise.resolve();
    expect(third).toBeUndefined();
    // the first group counted: its reservation becomes production, the bound stays reached
    gate.recordProduced();
    first();
    first(); // releasing twice is harmless
    await Promise.resolve();
    expect(third).toBeUndefined();
    // the second group was dropped by the group filter: its unit returns and the third goes on
    second();
    await waiting;
    expect(third).toBeDefined();
    expect(gate.capacity).toBe(0);
    third!();
    expect(gate.capacity).toBe(1);
  });
});
