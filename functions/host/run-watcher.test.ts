import { describe, expect, it } from "vitest";
import { type EvaluationResultData, RolloutGroup, RunStatus } from "../contracts/events.ts";
import { QuestATrainingSpecSchema } from "../contracts/questatraining.ts";
import type { FunctionDeps } from "../runtime/define-function.ts";
import type { CloudEvent } from "../runtime/event-definition.ts";
import { loopTiming } from "./embedded-run.ts";
import { RunWatcher } from "./run-watcher.ts";

const spec = QuestATrainingSpecSchema.parse({ datasets: { train: [{ name: "t", synthetic: {} }] } });
const since = Date.parse("2026-12-06T12:00:00.000Z");

function event<T>(type: string, id: string, time: string, data: T): CloudEvent<T> {
  return {
    specversion: "1.0",
    id,
    source: "/questa/t/test",
    type,
    subject: "t",
    time,
    datacontenttype: "application/json",
    data,
  };
}

function group(id: string, time: string, responseTokens: number) {
  return event(RolloutGroup.type, id, time, {
    run: "t",
    questionId: `q-${id}`,
    stage: 0,
    purpose: "train" as const,
    epoch: 0,
    policyVersion: 0,
    rewards: [0, 5],
    passCount: 1,
    successRate: 0.5,
    responseTokens,
    shard: { uri: "file:///x", key: "x", sha256: "0".repeat(64), size: 1 },
  });
}

function step(n: number, time: string, tokensPerSecond: number, samplingTokensPerSecond?: number) {
  return event(RunStatus.type, `s${n}`, time, {
    run: "t",
    kind: "step" as const,
    step: n,
    stage: 0,
    hintRatio: 0.5,
    metrics: {
      rewardMean: 1,
      passRate: 0.2,
      entropy: 1,
      clipFraction: 0,
      approxKl: 0,
      gradNorm: 1,
      loss: 0,
      tokensPerSecond,
      ...(samplingTokensPerSecond === undefined ? {} : { samplingTokensPerSecond }),
      staleness: 0,
      groupsKept: 2,
      groupsRejected: 0,
    },
  });
}

describe("RunWatcher's loop numbers", () => {
  it("counts this session's sampled tokens once per group and averages its steps' training speed", async () => {
    const watcher = new RunWatcher({ spec, since });
    const deps = {} as FunctionDeps;
    const handle = (e: CloudEvent<unknown>) => watcher.fn.handle(e as never, deps);
    await handle(group("old", "2026-12-06T11:59:59.000Z", 1000)); // an earlier session's
    await handle(group("a", "2026-12-06T12:00:01.000Z", 300));
    await handle(group("a", "2026-12-06T12:00:01.000Z", 300)); // redelivered
    await handle(group("b", "2026-12-06T12:00:02.000Z", 200));
    await handle(step(1, "2026-12-06T11:59:00.000Z", 999, 1));
    await handle(step(2, "2026-12-06T12:00:03.000Z", 100, 4000));
    await handle(step(3, "2026-12-06T12:00:04.000Z", 300));
    await handle(step(4, "2026-12-06T12:00:05.000Z", 200, 6000));
    expect(watcher.sampledTokens).toBe(500);
    expect(watcher.trainTokensPerSecond).toBe(200);
    // the rollout engines' speed, as run.status carries it (steps whose groups reported one)
    expect(watcher.engineSamplingTokensPerSecond).toBe(5000);
    expect(watcher.step).toBe(4);
  });

  it("turns busy time into shares of the wall time and sampling speed", () => {
    const timing = loopTiming(
      10_000,
      [
        { fn: { name: "cli" }, busyMilliseconds: 10 },
        { fn: { name: "rollout" }, busyMilliseconds: 8_000 },
        { fn: { name: "learn" }, busyMilliseconds: 4_000 },
      ],
      { sampledTokens: 4_000, trainTokensPerSecond: 250, logProbGap: 0.03 },
      {
        rollout: { prefillSeconds: 1, decodeSeconds: 7, decodeSteps: 100, decodedRows: 3_250 },
        evaluate: undefined,
      },
    );
    expect(timing).toEqual({
      wallSeconds: 10,
      functions: { rollout: { busySeconds: 8, share: 0.8 }, learn: { busySeconds: 4, share: 0.4 } },
      samplingSeconds: { rollout: 8, evaluate: 0 },
      sampledTokens: 4_000,
      samplingTokensPerSecond: 500,
      rolloutMeanDecodeRows: 32.5,
      trainTokensPerSecond: 250,
      logProbGap: 0.03,
    });
    const idle = { sampledTokens: 0, trainTokensPerSecond: undefined, logProbGap: undefined };
    expect(loopTiming(1000, [], idle, { rollout: undefined, evaluate: undefined })).toMatchObject({
      samplingTokensPerSecond: undefined,
      rolloutMeanDecodeRows: undefined,
      trainTokensPerSecond: undefined,
    });
  });

  it("keeps a resumed run's earlier evaluations for the final table without reporting them again", () => {
    const reported: string[] = [];
    const withBenchmark = QuestATrainingSpecSchema.parse({
      datasets: { train: [{ name: "t", synthetic: {} }] },
      learner: { totalSteps: 0 },
      evaluation: { benchmarks: [{ name: "easy", synthetic: {} }] },
    });
    const watcher = new RunWatcher({
      spec: withBenchmark,
      finished: true,
      report: (p) => reported.push(p.kind),
    });
    expect(watcher.complete).toBe(false);
    const earlier = {
      run: "t",
      step: 0,
      benchmark: "easy",
      samples: 4,
      problems: 2,
      passAt1: 0.5,
      passAtK: { "1": 0.5 },
      majAtK: {},
      passAt1Interval: { low: 0.2, high: 0.8 },
      results: { uri: "file:///r", key: "r", sha256: "0".repeat(64), size: 1 },
      gradingMode: "lenient",
    } as unknown as EvaluationResultData;
    watcher.remember([earlier, { ...earlier, passAt1: 0.9 }]);
    expect(watcher.evaluations).toEqual([earlier]); // the first of a step and benchmark stays
    expect(watcher.complete).toBe(true);
    expect(reported).toEqual([]);
  });
});
