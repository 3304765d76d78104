import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RunStatus } from "../functions/contracts/events.ts";
import { validateYaml } from "../functions/contracts/validate.ts";
import { FIXTURE_BENCHMARKS, FIXTURE_STEPS, fixtureRunEvents } from "./report-fixture.ts";
import { buildReport, buildRunReport, stageSpans, taskDifferences } from "./report-model.ts";

const tinyRun = () => {
  const text = readFileSync(join(import.meta.dirname, "..", "test", "fixtures", "tiny-run.yaml"), "utf8");
  const result = validateYaml(text)[0]?.result;
  if (!result?.ok) throw new Error("test/fixtures/tiny-run.yaml is not valid");
  return result.value.spec;
};

describe("the report model", () => {
  it("has every learner step once, in order, with its metrics, and the curriculum's stages as spans", () => {
    const { report, notes } = buildRunReport(fixtureRunEvents());
    expect(report.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(report.steps[0]?.metrics.rewardMean).toBeCloseTo(2.1);
    expect(report.stages).toEqual([
      { stage: 0, hintRatio: 0.5, from: 0, to: 4 },
      { stage: 1, hintRatio: 0.25, from: 4, to: FIXTURE_STEPS },
    ]);
    expect(report).toMatchObject({
      run: "fixture",
      label: "fixture (QuestA)",
      arm: "questa",
      state: "finished",
    });
    expect(report.lastStep).toBe(FIXTURE_STEPS);
    expect(notes).toEqual([]);
  });

  it("keeps the last report of a step or evaluation a resumed run logged twice", () => {
    const events = fixtureRunEvents();
    const step3 = events.status.find((s) => s.step === 3 && s.kind === "step");
    const again = RunStatus.data.parse({ ...step3, metrics: { ...step3?.metrics, rewardMean: 9 } });
    const evaluation = events.evaluations[0];
    if (evaluation === undefined) throw new Error("fixture without evaluations");
    const { report } = buildRunReport({
      ...events,
      status: [...events.status, again],
      evaluations: [...events.evaluations, { ...evaluation, passAt1: 0.99 }],
    });
    expect(report.steps.filter((s) => s.step === 3).map((s) => s.metrics.rewardMean)).toEqual([9]);
    const same = report.evaluations.filter(
      (e) => e.benchmark === evaluation.benchmark && e.step === evaluation.step,
    );
    expect(same.map((e) => e.passAt1)).toEqual([0.99]);
  });

  it("reads the stages from the status events when a run logged no stage change", () => {
    const events = fixtureRunEvents();
    expect(stageSpans(events.status, [])).toEqual([
      { stage: 0, hintRatio: 0.5, from: 0, to: 4 },
      { stage: 1, hintRatio: 0.25, from: 4, to: FIXTURE_STEPS },
    ]);
    expect(stageSpans([], [])).toEqual([]);
  });

  it("gives pass@k by k with intervals over problems that hold the value, the same on every build", () => {
    const events = fixtureRunEvents();
    const { report } = buildRunReport(events);
    expect(report.evaluations).toHaveLength(3 * FIXTURE_BENCHMARKS.length);
    for (const e of report.evaluations) {
      const source = events.evaluations.find((x) => x.benchmark === e.benchmark && x.step === e.step);
      expect(e.passAtK.map((p) => p.k)).toEqual([1, 2, 4]);
      // k = 1 is the evaluation's own interval
      expect(e.passAtK[0]).toEqual({ k: 1, value: source?.passAt1, interval: source?.passAt1Interval });
      for (const p of e.passAtK) {
        expect(p.value).toBe(p.k === 1 ? source?.passAt1 : source?.passAtK[String(p.k)]);
        expect(p.interval?.low).toBeLessThanOrEqual(p.value);
        expect(p.interval?.high).toBeGreaterThanOrEqual(p.value);
      }
    }
    expect(buildRunReport(events).report).toEqual(report);
  });

  it("says so when an evaluation's per-problem results are missing: pass@k without its interval", () => {
    const { report, notes } = buildRunReport(fixtureRunEvents({ withResults: false }));
    expect(report.evaluations[0]?.passAtK.map((p) => p.interval === undefined)).toEqual([false, true, true]);
    expect(notes).toHaveLength(report.evaluations.length);
    expect(notes[0]).toMatch(/per-problem results of easy-eval at step 0 could not be read/);
  });

  it("tells the baseline (no hint at any step) from QuestA, and overlays it after the report's run", () => {
    const model = buildReport(fixtureRunEvents(), fixtureRunEvents({ baseline: true }));
    expect(model.title).toBe("questa report: fixture vs fixture-baseline");
    expect(model.runs.map((r) => [r.label, r.arm])).toEqual([
      ["fixture (QuestA)", "questa"],
      ["fixture-baseline (no hints)", "baseline"],
    ]);
    expect(model.benchmarks).toEqual(["easy-eval", "hard-eval"]);
    // two runs of one name get different labels: the legend must tell them apart
    const twice = buildReport(fixtureRunEvents(), fixtureRunEvents());
    expect(new Set(twice.runs.map((r) => r.label)).size).toBe(2);
  });

  it("notes a run that has not stepped or evaluated yet, and a failed run's message", () => {
    const events = fixtureRunEvents();
    const started = events.status.filter((s) => s.kind === "started");
    const failed = RunStatus.data.parse({
      run: "fixture",
      kind: "failed",
      step: 0,
      stage: 0,
      hintRatio: 0.5,
      message: "out of memory",
    });
    const { report, notes } = buildRunReport({
      ...events,
      status: [...started, failed],
      stageChanges: [],
      evaluations: [],
    });
    expect(report).toMatchObject({ state: "failed", message: "out of memory", steps: [], evaluations: [] });
    expect(notes).toEqual([
      "fixture: no learner step yet, so the training plots are empty",
      "fixture: no evaluation yet, so the pass@k plots are empty",
    ]);
  });

  it("finds the task two specs differ in: training data or benchmarks, not the hint curriculum", () => {
    const spec = tinyRun();
    const noHints = {
      ...spec,
      augmentation: {
        ...spec.augmentation,
        curriculum: spec.augmentation.curriculum.map((c) => ({ ...c, ratio: 0 })),
      },
    };
    expect(taskDifferences(spec, noHints)).toEqual([]);
    const otherBenchmark = {
      ...spec,
      evaluation: {
        ...spec.evaluation,
        benchmarks: spec.evaluation.benchmarks.map((b) => ({ ...b, name: "other" })),
      },
    };
    expect(taskDifferences(spec, otherBenchmark)).toEqual(["spec.evaluation.benchmarks"]);
    expect(taskDifferences(spec, { ...otherBenchmark, datasets: { train: [] } })).toEqual([
      "spec.datasets.train",
      "spec.evaluation.benchmarks",
    ]);
  });
});
