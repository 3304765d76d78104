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
});
