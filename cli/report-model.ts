/**
 * What `questa report` shows, built from a run's parsed events (no I/O, no plotting): the learner's
 * metrics by step, the hint curriculum's stages as step spans, and every evaluation with pass@k
 * and its interval. report-charts.ts draws it, report-command.ts reads the files.
 */
import { z } from "zod";
import type {
  CurriculumStageChangedData,
  EvaluationResultData,
  RunStatusData,
  StepMetrics,
} from "../functions/contracts/events.ts";
import type { EvaluationProblemResult } from "../functions/contracts/shards.ts";
import { bootstrapInterval, passAtK } from "../functions/rl/pass-at-k.ts";
import { seededRandom } from "../functions/runtime/random.ts";

/**
 * The parts of a run's spec (its run.json) the report reads, not the whole resource schema: run.json
 * holds the spec the run trained with, which a resource file may not spell that way (bench:questa
 * runs with an absolute storage.localDir).
 */
export const ReportSpecSchema = z.object({
  datasets: z.object({ train: z.array(z.unknown()) }),
  augmentation: z.object({ curriculum: z.array(z.object({ ratio: z.number().min(0).max(1) })) }),
  learner: z.object({ totalSteps: z.int().min(0) }),
  evaluation: z.object({ benchmarks: z.array(z.unknown()) }),
});
export type ReportSpec = z.infer<typeof ReportSpecSchema>;

/** A run's events as read from its log, already checked against their schemas. */
export interface RunEvents {
  run: string;
  status: readonly RunStatusData[];
  stageChanges: readonly CurriculumStageChangedData[];
  evaluations: readonly EvaluationResultData[];
  /** per-problem results of evaluations, by resultsKey(benchmark, step); missing ones get no pass@k interval */
  results: ReadonlyMap<string, readonly EvaluationProblemResult[]>;
  /** the run's spec (run.json), when there is one */
  spec?: ReportSpec;
}

export function resultsKey(benchmark: string, step: number): string {
  return `${step}\u0000${benchmark}`;
}

export interface StepPoint {
  step: number;
  stage: number;
  hintRatio: number;
  metrics: StepMetrics;
}

/** a curriculum stage over the steps [from, to] */
export interface StageSpan {
  stage: number;
  hintRatio: number;
  from: number;
  to: number;
}

export interface Interval {
  low: number;
  high: number;
}

export interface PassAtKPoint {
  k: number;
  value: number;
  /** 95% bootstrap interval over problems; absent when the per-problem results could not be read */
  interval?: Interval;
}

export interface EvaluationPoint {
  benchmark: string;
  step: number;
  problems: number;
  samples: number;
  passAt1: number;
  passAt1Interval: Interval;
  /** by k ascending, k = 1 included */
  passAtK: PassAtKPoint[];
}

export type Arm = "questa" | "baseline";

export interface RunReport {
  run: string;
  /** the name plots and legends use, unique within a report */
  label: string;
  /** baseline: no step of the run had a hint (every stage's ratio 0) */
  arm: Arm;
  steps: StepPoint[];
  stages: StageSpan[];
  evaluations: EvaluationPoint[];
  /** the last step any status event reported */
  lastStep: number;
  totalSteps?: number;
  state: "finished" | "failed" | "running or stopped";
  /** the failure's message, when the run failed */
  message?: string;
}

export interface ReportModel {
  title: string;
  /** the run the report is about, then the --vs run */
  runs: RunReport[];
  /** every benchmark any run evaluated, sorted */
  benchmarks: string[];
  /** things the reader should know: what is missing, what could not be computed */
  notes: string[];
}

function lastByKey<T>(items: readonly T[], key: (item: T) => string): T[] {
  const map = new Map<string, T>();
  for (const item of items) map.set(key(item), item);
  return [...map.values()];
}

/**
 * Curriculum stages as step spans. A stage change event marks where a stage begins; the first
 * stage's ratio is the earliest status event's. Runs without stage change events (a run that
 * never left its first stage) fall back to the stage the status events report.
 */
export function stageSpans(
  status: readonly RunStatusData[],
  stageChanges: readonly CurriculumStageChangedData[],
): StageSpan[] {
  if (status.length === 0) return [];
  const byStep = [...status].sort((a, b) => a.step - b.step);
  const first = byStep[0] as RunStatusData;
  const lastStep = Math.max(...status.map((s) => s.step), ...stageChanges.map((c) => c.step));
  // a resumed run may report a transition twice: one per stage reached
  const changes = lastByKey(stageChanges, (c) => String(c.toStage)).sort((a, b) => a.step - b.step);
  const starts: { stage: number; hintRatio: number; from: number }[] = [
    { stage: first.stage, hintRatio: first.hintRatio, from: first.step },
  ];
  if (changes.length > 0) {
    for (const change of changes) {
      starts.push({ stage: change.toStage, hintRatio: change.ratio, from: change.step });
    }
  } else {
    for (const s of byStep) {
      const current = starts[starts.length - 1] as (typeof starts)[number];
      if (s.stage !== current.stage) starts.push({ stage: s.stage, hintRatio: s.hintRatio, from: s.step });
    }
  }
  const spans: StageSpan[] = [];
  for (const [i, start] of starts.entries()) {
    const next = starts[i + 1];
    const to = next === undefined ? lastStep : next.from;
    // a stage that began and ended at the same step covers nothing
    if (next !== undefined && next.from <= start.from) continue;
    spans.push({ ...start, to: Math.max(to, start.from) });
  }
  return spans;
}

const INTERVAL_RESAMPLES = 1000;

/**
 * pass@k by k with a 95% percentile bootstrap interval over problems, from the per-problem
 * results; k = 1 keeps the interval the evaluation reported (the same bootstrap, seeded by step and
 * benchmark), other ks are drawn from a seed of their own, so a report is the same every time.
 */
function passAtKPoints(
  evaluation: EvaluationResultData,
  results: readonly EvaluationProblemResult[] | undefined,
): PassAtKPoint[] {
  const ks = [...new Set(["1", ...Object.keys(evaluation.passAtK)])]
    .map(Number)
    .filter((k) => Number.isInteger(k) && k >= 1)
    .sort((a, b) => a - b);
  return ks.map((k) => {
    const value = k === 1 ? evaluation.passAt1 : (evaluation.passAtK[String(k)] ?? Number.NaN);
    if (k === 1) return { k, value, interval: evaluation.passAt1Interval };
    if (results === undefined || results.length === 0) return { k, value };
    const scores = results.flatMap((r) => {
      const n = r.samples.length;
      if (n < k) return [];
      return [passAtK(n, r.samples.filter((s) => s.correct).length, k)];
    });
    if (scores.length === 0) return { k, value };
    const random = seededRandom(`${evaluation.step}:${evaluation.benchmark}:pass@${k}`);
    const interval = bootstrapInterval(scores, () => random.next(), INTERVAL_RESAMPLES);
    // the interval holds the reported value, as the evaluation's own pass@1 interval does
    return {
      k,
      value,
      interval: { low: Math.min(interval.low, value), high: Math.max(interval.high, value) },
    };
  });
}

function armOf(events: RunEvents, stages: readonly StageSpan[]): Arm {
  const ratios = [
    ...events.status.map((s) => s.hintRatio),
    ...events.stageChanges.map((c) => c.ratio),
    ...stages.map((s) => s.hintRatio),
    ...(events.spec?.augmentation.curriculum.map((c) => c.ratio) ?? []),
  ];
  return ratios.every((r) => r === 0) ? "baseline" : "questa";
}

const ARM_NAMES: Record<Arm, string> = { questa: "QuestA", baseline: "no hints" };

/** One run's part of a report. */
export function buildRunReport(events: RunEvents): { report: RunReport; notes: string[] } {
  const notes: string[] = [];
  const steps = lastByKey(
    events.status.filter((s) => s.kind === "step" && s.metrics !== undefined),
    (s) => String(s.step),
  )
    .map((s) => ({ step: s.step, stage: s.stage, hintRatio: s.hintRatio, metrics: s.metrics as StepMetrics }))
    .sort((a, b) => a.step - b.step);
  const stages = stageSpans(events.status, events.stageChanges);
  const evaluations = lastByKey(events.evaluations, (e) => resultsKey(e.benchmark, e.step))
    .sort((a, b) => a.benchmark.localeCompare(b.benchmark) || a.step - b.step)
    .map((e): EvaluationPoint => {
      const results = events.results.get(resultsKey(e.benchmark, e.step));
      const passAtK = passAtKPoints(e, results);
      if (results === undefined && passAtK.some((p) => p.k > 1)) {
        notes.push(
          `${events.run}: the per-problem results of ${e.benchmark} at step ${e.step} could not be read, so its pass@k (k > 1) has no interval`,
        );
      }
      return {
        benchmark: e.benchmark,
        step: e.step,
        problems: e.problems,
        samples: e.samples,
        passAt1: e.passAt1,
        passAt1Interval: e.passAt1Interval,
        passAtK,
      };
    });
  const ended = [...events.status].reverse().find((s) => s.kind === "finished" || s.kind === "failed");
  const lastStep = Math.max(0, ...events.status.map((s) => s.step));
  const arm = armOf(events, stages);
  const report: RunReport = {
    run: events.run,
    label: `${events.run} (${ARM_NAMES[arm]})`,
    arm,
    steps,
    stages,
    evaluations,
    lastStep,
    ...(events.spec === undefined ? {} : { totalSteps: events.spec.learner.totalSteps }),
    state:
      ended?.kind === "finished" ? "finished" : ended?.kind === "failed" ? "failed" : "running or stopped",
    ...(ended?.kind === "failed" && ended.message !== undefined ? { message: ended.message } : {}),
  };
  if (steps.length === 0) notes.push(`${events.run}: no learner step yet, so the training plots are empty`);
  if (evaluations.length === 0) notes.push(`${events.run}: no evaluation yet, so the pass@k plots are empty`);
  return { report, notes };
}

/** The report on `primary`, with `vs` overlaid when given. */
export function buildReport(primary: RunEvents, vs?: RunEvents): ReportModel {
  const first = buildRunReport(primary);
  const second = vs === undefined ? undefined : buildRunReport(vs);
  const runs = second === undefined ? [first.report] : [first.report, second.report];
  if (second !== undefined && second.report.label === first.report.label) {
    second.report.label = `${second.report.label} [--vs]`;
  }
  const benchmarks = [...new Set(runs.flatMap((r) => r.evaluations.map((e) => e.benchmark)))].sort();
  return {
    title:
      second === undefined ? `questa report: ${primary.run}` : `questa report: ${primary.run} vs ${vs?.run}`,
    runs,
    benchmarks,
    notes: [...first.notes, ...(second?.notes ?? [])],
  };
}

/**
 * How the tasks of two runs differ (training data and benchmarks), empty when they are the same
 * task: comparing pass rates across different problems would mean nothing.
 */
export function taskDifferences(a: ReportSpec, b: ReportSpec): string[] {
  const differences: string[] = [];
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  if (!same(a.datasets.train, b.datasets.train)) differences.push("spec.datasets.train");
  if (!same(a.evaluation.benchmarks, b.evaluation.benchmarks)) differences.push("spec.evaluation.benchmarks");
  return differences;
}
