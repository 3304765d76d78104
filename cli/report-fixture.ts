/**
 * Small runs' events for the report's tests: a QuestA run with a two-stage hint curriculum and its
 * no-hint baseline, as `questa run` would have logged them (checked by the event schemas).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import {
  CurriculumStageChanged,
  type CurriculumStageChangedData,
  EvaluationResult,
  type EvaluationResultData,
  RunStatus,
  type RunStatusData,
} from "../functions/contracts/events.ts";
import type { EvaluationProblemResult } from "../functions/contracts/shards.ts";
import { passAtK } from "../functions/rl/pass-at-k.ts";
import { toStructured } from "../functions/runtime/cloudevents.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import { sha256Hex } from "../functions/runtime/sha256.ts";
import type { RunEvents } from "./report-model.ts";
import { resultsKey } from "./report-model.ts";

export const FIXTURE_STEPS = 8;
export const FIXTURE_BENCHMARKS = ["hard-eval", "easy-eval"] as const;
const SAMPLES = 4;
const PROBLEMS = 6;

/** correct samples of problem `p` at `step`: rises with the step, more on the easy benchmark */
function correctCount(benchmark: string, step: number, p: number, baseline: boolean): number {
  const base = benchmark === "easy-eval" ? 2 : 0;
  return Math.min(
    SAMPLES,
    Math.max(0, base + ((p + step / (baseline ? 4 : 2)) % 3 >= 2 ? 1 : 0) + (p === 0 ? 1 : 0)),
  );
}

function evaluation(run: string, benchmark: string, step: number, baseline: boolean) {
  const results: EvaluationProblemResult[] = Array.from({ length: PROBLEMS }, (_, p) => {
    const c = correctCount(benchmark, step, p, baseline);
    return {
      benchmark,
      step,
      problemId: `${benchmark}-${p}`,
      answer: String(p),
      samples: Array.from({ length: SAMPLES }, (_, i) => ({
        extracted: i < c ? String(p) : "x",
        correct: i < c,
        reason: i < c ? "equal" : "different",
        tokens: 10,
      })),
      passAt1: c / SAMPLES,
    };
  });
  const mean = (k: number) =>
    results.reduce((sum, r) => sum + passAtK(SAMPLES, r.samples.filter((s) => s.correct).length, k), 0) /
    PROBLEMS;
  const passAt1 = mean(1);
  const body = fixtureResultsBody(results);
  const key = `evaluations/step-${step}/${benchmark}.jsonl`;
  const data: EvaluationResultData = EvaluationResult.data.parse({
    run,
    step,
    benchmark,
    problems: PROBLEMS,
    samples: SAMPLES,
    temperature: 0.6,
    topP: 0.95,
    hinted: false,
    passAt1,
    passAtK: { "1": passAt1, "2": mean(2), "4": mean(4) },
    majAtK: { "1": passAt1 },
    passAt1Interval: { low: Math.max(0, passAt1 - 0.1), high: Math.min(1, passAt1 + 0.1) },
    results: {
      uri: `file:///runs/${run}/objects/${key}`,
      key,
      sha256: sha256Hex(body),
      size: Buffer.byteLength(body),
    },
  });
  return { data, results };
}

/** the events of a fixture run: QuestA (p = 0.5 for 4 steps, then 0.25) or its baseline (p = 0) */
export function fixtureRunEvents(options: { baseline?: boolean; withResults?: boolean } = {}): RunEvents {
  const baseline = options.baseline ?? false;
  const run = baseline ? "fixture-baseline" : "fixture";
  const ratio = (stage: number) => (baseline ? 0 : stage === 0 ? 0.5 : 0.25);
  const status: RunStatusData[] = [
    RunStatus.data.parse({ run, kind: "started", step: 0, stage: 0, hintRatio: ratio(0) }),
  ];
  const stageChanges: CurriculumStageChangedData[] = [];
  for (let step = 1; step <= FIXTURE_STEPS; step++) {
    const stage = step >= 4 ? 1 : 0;
    if (step === 4) {
      stageChanges.push(
        CurriculumStageChanged.data.parse({
          run,
          fromStage: 0,
          toStage: 1,
          ratio: ratio(1),
          step,
          reason: "steps",
        }),
      );
    }
    status.push(
      RunStatus.data.parse({
        run,
        kind: "step",
        step,
        stage,
        hintRatio: ratio(stage),
        metrics: {
          rewardMean: (baseline ? 0.5 : 2) + step * 0.1,
          passRate: (baseline ? 0.1 : 0.4) + step * 0.01,
          entropy: 1 - step * 0.05,
          clipFraction: 0.01 * step,
          approxKl: 0.001,
          gradNorm: 1,
          loss: -0.1,
          logProbGap: 0.002 + step * 0.0005,
          klToReference: 0.001 * step,
          tokensPerSecond: 1000 + step * 10,
          staleness: step % 2,
          groupsKept: 8 - (step % 3),
          groupsRejected: step % 4,
        },
      }),
    );
  }
  status.push(
    RunStatus.data.parse({ run, kind: "finished", step: FIXTURE_STEPS, stage: 1, hintRatio: ratio(1) }),
  );
  const evaluations: EvaluationResultData[] = [];
  const results = new Map<string, readonly EvaluationProblemResult[]>();
  for (const step of [0, 4, 8]) {
    for (const benchmark of FIXTURE_BENCHMARKS) {
      const e = evaluation(run, benchmark, step, baseline);
      evaluations.push(e.data);
      if (options.withResults ?? true) results.set(resultsKey(benchmark, step), e.results);
    }
  }
  return { run, status, stageChanges, evaluations, results };
}

/** the per-problem results of a fixture evaluation, as the evaluate function stores them (JSON lines) */
export function fixtureResultsBody(results: readonly EvaluationProblemResult[]): string {
  return results.map((r) => `${JSON.stringify(r)}\n`).join("");
}

/**
 * Writes `events` as `questa run` lays a run out: `<dir>/events/<run>.<topic>.jsonl` and the
 * evaluations' per-problem results under `<dir>/objects/`.
 */
export async function writeFixtureRun(dir: string, events: RunEvents): Promise<void> {
  await mkdir(join(dir, "events"), { recursive: true });
  const envelope = (type: string, id: string, data: unknown): CloudEvent<unknown> => ({
    specversion: "1.0",
    id,
    source: `/questa/${events.run}/fixture`,
    type,
    subject: events.run,
    time: "2026-12-06T12:00:00.000Z",
    datacontenttype: "application/json",
    data,
  });
  const lines = (list: CloudEvent<unknown>[]) => list.map((e) => `${toStructured(e)}\n`).join("");
  const status = [
    ...events.status.map((s, i) => envelope(RunStatus.type, `status-${i}`, s)),
    ...events.stageChanges.map((c, i) => envelope(CurriculumStageChanged.type, `stage-${i}`, c)),
  ];
  await writeFile(join(dir, "events", `${events.run}.${RunStatus.topic}.jsonl`), lines(status));
  await writeFile(
    join(dir, "events", `${events.run}.${EvaluationResult.topic}.jsonl`),
    lines(events.evaluations.map((e, i) => envelope(EvaluationResult.type, `evaluation-${i}`, e))),
  );
  for (const e of events.evaluations) {
    const results = events.results.get(resultsKey(e.benchmark, e.step));
    if (results === undefined) continue;
    const path = join(dir, "objects", e.results.key);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, fixtureResultsBody(results));
  }
}
