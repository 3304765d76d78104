import { describe, expect, it } from "vitest";
import { DeadLetterError, UnavailableError } from "../runtime/errors.ts";
import { capturingLogger } from "../runtime/logger.ts";
import { parseFunctionEnv, STARTUP_OUTAGE_BUDGET_MS, whileStarting } from "./function-process.ts";

const settings = parseFunctionEnv({
  QUESTA_RUN: "r",
  QUESTA_CONFIG: "/dev/null",
  QUESTA_TOPIC_PREFIX: "questa.default.r",
  QUESTA_METRICS_PORT: "0",
  QUESTA_METRICS_HOST: "127.0.0.1",
});

/** a clock that moves only when the code under test sleeps */
function fakeTime() {
  let now = 0;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
}

describe("whileStarting", () => {
  it("waits out an unavailable store or broker at start-up, logging once when it starts and once when it ends", async () => {
    const time = fakeTime();
    const logs = capturingLogger("debug");
    let calls = 0;
    const result = await whileStarting(
      settings,
      async () => {
        calls++;
        if (calls < 6) throw new UnavailableError("s3_unavailable", "s3 head: connect ECONNREFUSED");
        return "started";
      },
      { logger: logs.logger, ...time },
    );
    expect(result).toBe("started");
    expect(time.sleeps).toEqual([500, 1000, 2000, 4000, 8000]);
    expect(logs.records.filter((r) => r.level === 40).map((r) => r.msg)).toEqual([
      "start-up: a dependency is unavailable; waiting for it",
      "start-up: dependency back; starting",
    ]);
  });

  it("fails at once on other errors, and after the outage budget on a dependency that stays away", async () => {
    await expect(
      whileStarting(settings, async () => {
        throw new DeadLetterError("corrupt_learner_state", "state.json is not valid");
      }),
    ).rejects.toThrow(/state.json is not valid/);
    const time = fakeTime();
    await expect(
      whileStarting(
        settings,
        async () => {
          throw new UnavailableError("kafka_unavailable", "no broker");
        },
        time,
      ),
    ).rejects.toThrow(/no broker/);
    expect(time.now()).toBeGreaterThanOrEqual(STARTUP_OUTAGE_BUDGET_MS);
    expect(Math.max(...time.sleeps)).toBe(30_000);
  });
});
