import { describe, expect, it } from "vitest";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import { emptyProgress, foldRunEvents, latestPassAt1, progressFromStatus } from "./run-progress.ts";

let id = 0;
const nextId = () => {
  id += 1;
  return String(id);
};
const event = (type: string, data: unknown, time = "2026-01-01T00:00:00.000Z"): CloudEvent<unknown> => ({
  specversion: "1.0",
  id: nextId(),
  source: "/questa/demo/test",
  type,
  subject: "demo",
  time,
  datacontenttype: "application/json",
  data,
});
const ref = (key: string) => ({ uri: `s3://b/${key}`, key, sha256: "0".repeat(64), size: 1 });
const status = (step: number, kind = "step", stage = 0) =>
  event("dev.questa.run.status.v1", { run: "demo", kind, step, stage, hintRatio: stage === 0 ? 0.5 : 0.25 });
const checkpoint = (step: number) =>
  event("dev.questa.checkpoint.published.v1", {
    run: "demo",
    step,
    stage: 0,
    reason: "interval",
    manifest: ref(`c/${step}`),
  });
const evaluation = (step: number, benchmark: string, passAt1: number) =>
  event("dev.questa.evaluation.result.v1", {
    run: "demo",
    step,
    benchmark,
    problems: 1,
    samples: 1,
    temperature: 0.6,
    topP: 0.95,
    hinted: false,
    passAt1,
    passAtK: { "1": passAt1 },
    majAtK: {},
    passAt1Interval: { low: 0, high: 1 },
    results: ref(`e/${step}`),
  });

describe("foldRunEvents", () => {
  it("tracks step, stage, newest checkpoint and per-benchmark evaluations", () => {
    const progress = foldRunEvents(emptyProgress(), [
      status(0, "started"),
      status(3),
      checkpoint(2),
      evaluation(2, "aime24", 0.2),
      evaluation(2, "aime25", 0.4),
      status(10, "stage", 1),
    ]);
    expect(progress).toMatchObject({
      started: true,
      step: 10,
      stage: 1,
      hintRatio: 0.25,
      latestCheckpoint: { step: 2, uri: "s3://b/c/2" },
    });
    expect(latestPassAt1(progress)).toBeCloseTo(0.3, 10);
  });

  it("is order-insensitive for stale events and idempotent under redelivery", () => {
    const events = [
      status(5),
      checkpoint(4),
      evaluation(4, "a", 0.5),
      status(2),
      checkpoint(1),
      evaluation(1, "a", 0.1),
    ];
    const once = foldRunEvents(emptyProgress(), events);
    const twice = foldRunEvents(once, events);
    expect(once).toMatchObject({ step: 5, latestCheckpoint: { step: 4 } });
    expect(once.latestEvaluation.a?.passAt1).toBe(0.5);
    expect(twice).toEqual(once);
  });

  it("marks the run finished or failed, and ignores unknown or malformed events", () => {
    expect(foldRunEvents(emptyProgress(), [status(9, "finished")]).finished).toBe(true);
    const failed = foldRunEvents(emptyProgress(), [
      event("dev.questa.run.status.v1", {
        run: "demo",
        kind: "failed",
        step: 1,
        stage: 0,
        hintRatio: 0.5,
        message: "oom",
      }),
    ]);
    expect(failed).toMatchObject({ failed: true, message: "oom" });
    const untouched = foldRunEvents(emptyProgress(), [
      event("dev.questa.rollout.group.v1", {}),
      event("dev.questa.run.status.v1", { run: "demo", kind: "step" }),
    ]);
    expect(untouched).toEqual(emptyProgress());
  });

  it("mean pass@1 counts only the benchmarks of the newest evaluated step", () => {
    const progress = foldRunEvents(emptyProgress(), [evaluation(10, "a", 0.6), evaluation(5, "b", 0.0)]);
    expect(latestPassAt1(progress)).toBe(0.6);
    expect(latestPassAt1(emptyProgress())).toBeUndefined();
  });

  it("resumes from a status written earlier", () => {
    const seeded = progressFromStatus({
      phase: "Running",
      step: 40,
      stage: 1,
      latestCheckpoint: { step: 40, uri: "s3://b/c/40", time: "2026-01-01T00:00:00.000Z" },
    });
    const next = foldRunEvents(seeded, [status(12), checkpoint(12)]);
    expect(next).toMatchObject({ started: true, step: 40, latestCheckpoint: { step: 40 } });
  });
});
