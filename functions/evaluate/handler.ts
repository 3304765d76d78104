import {
  CheckpointPublished,
  type CheckpointPublishedData,
  EvaluationResult,
  type EvaluationResultData,
  EXAMPLE_RESPONSE_CHARS,
} from "../contracts/events.ts";
import type { EvaluationSpec } from "../contracts/questatraining.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import type { EvaluationProblemResult } from "../contracts/shards.ts";
import type { Grade } from "../grading/reward.ts";
import type { PolicySampler } from "../model/policy-sampler.ts";
import { DEFAULT_UNHINTED_TEMPLATE } from "../questa/augmentation.ts";
import { bootstrapInterval, scoreBenchmark } from "../rl/pass-at-k.ts";
import { mapConcurrently } from "../runtime/concurrency.ts";
import { defineFunction, emit, type FunctionDeps } from "../runtime/define-function.ts";
import type { EmittedEvent } from "../runtime/event-definition.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { seededRandom } from "../runtime/random.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { parseJsonWith } from "../runtime/stored-json.ts";

/** One evaluation problem: the original problem, never a hint. */
export interface BenchmarkProblem {
  id: string;
  problem: string;
  answer: string;
}

export interface Benchmark {
  name: string;
  problems: readonly BenchmarkProblem[];
}

export interface EvaluateServices {
  sampler: PolicySampler;
  grade: Grade;
  evaluation: EvaluationSpec;
  /** the run's final step: its checkpoint is always evaluated */
  totalSteps: number;
  benchmarks: () => Promise<readonly Benchmark[]>;
  keys: RunKeys;
}

/**
 * Problems of a benchmark sampled at once: the sampler decodes their rows in one batch (continuous
 * batching), and the bound keeps an abort from waiting for a whole benchmark's samples.
 */
export const EVALUATION_PROBLEMS_IN_FLIGHT = 64;

/** The evaluation prompt: the official un-hinted format (`problem + "\n\n"`), the same as an un-hinted training prompt. */
export function evaluationPrompt(problem: string): string {
  return DEFAULT_UNHINTED_TEMPLATE.replace("{problem}", problem);
}

/** Which published checkpoints are evaluated: the start (if asked), every `interval` steps, the end. */
export function shouldEvaluate(
  checkpoint: CheckpointPublishedData,
  spec: EvaluationSpec,
  totalSteps: number,
): boolean {
  if (checkpoint.reason === "policy") return false;
  // a run of zero steps only evaluates: its initial policy is also its final one
  if (checkpoint.reason === "initial") return spec.atStart || totalSteps === 0;
  if (checkpoint.reason === "final" || checkpoint.step >= totalSteps) return true;
  return checkpoint.step % spec.interval === 0;
}

export function evaluationResultsKey(keys: RunKeys, step: number, benchmark: string): string {
  return keys.key("evaluations", `step-${String(step).padStart(6, "0")}`, `${benchmark}.jsonl`);
}

/**
 * The event an evaluation published, stored beside its per-problem results: a checkpoint delivered
 * again (a redelivery, or the learner announcing its last step again after a restart) is answered
 * from it instead of sampled again.
 */
export function evaluationEventKey(keys: RunKeys, step: number, benchmark: string): string {
  return keys.key("evaluations", `step-${String(step).padStart(6, "0")}`, `${benchmark}.result.json`);
}

async function storedEvaluation(
  store: ObjectStore,
  key: string,
  expected: { run: string; step: number; benchmark: string },
): Promise<EvaluationResultData | undefined> {
  const bytes = await store.get(key);
  if (bytes === undefined) return undefined;
  const parsed = parseJsonWith(bytes, EvaluationResult.data);
  // anything else (a torn or foreign object) is evaluated again and overwritten
  if (!parsed.ok) return undefined;
  const { run, step, benchmark } = parsed.value;
  return run === expected.run && step === expected.step && benchmark === expected.benchmark
    ? parsed.value
    : undefined;
}

export async function evaluateCheckpoint(
  checkpoint: CheckpointPublishedData,
  deps: FunctionDeps<EvaluateServices>,
): Promise<EmittedEvent[]> {
  const { services, store } = deps;
  const spec = services.evaluation;
  if (!shouldEvaluate(checkpoint, spec, services.totalSteps)) return [];
  const benchmarks = await services.benchmarks();
  const stored = new Map<string, EvaluationResultData>();
  for (const benchmark of benchmarks) {
    const key = evaluationEventKey(services.keys, checkpoint.step, benchmark.name);
    const known = await storedEvaluation(store, key, { ...checkpoint, benchmark: benchmark.name });
    if (known) stored.set(benchmark.name, known);
  }
  const folder = checkpoint.manifest.key.replace(/\/manifest\.json$/, "");
  if (stored.size < benchmarks.length) await services.sampler.load(store, folder, checkpoint.step);
  const events: EmittedEvent[] = [];
  const settings = {
    temperature: spec.temperature,
    topP: spec.topP,
    topK: 0,
    maxNewTokens: spec.maxNewTokens,
  };
  for (const benchmark of benchmarks) {
    const known = stored.get(benchmark.name);
    if (known) {
      events.push(emit(EvaluationResult, known, `${checkpoint.run}:${benchmark.name}`));
      continue;
    }
    const key = evaluationResultsKey(services.keys, checkpoint.step, benchmark.name);
    const results: EvaluationProblemResult[] = [];
    let example: EvaluationResultData["example"];
    // sampled concurrently (each problem's draw depends only on its seed), reported in order
    const sampled = await mapConcurrently(
      benchmark.problems,
      EVALUATION_PROBLEMS_IN_FLIGHT,
      async (problem) => {
        deps.signal.throwIfAborted();
        const prompt = services.sampler.encodePrompt(evaluationPrompt(problem.problem));
        const seed = Number.parseInt(
          sha256Hex(`${checkpoint.step}:${benchmark.name}:${problem.id}`).slice(0, 8),
          16,
        );
        const { responses } = await services.sampler.sample(prompt, spec.samples, settings, seed);
        const graded = await Promise.all(responses.map((r) => services.grade(problem.answer, r.text)));
        return { problem, responses, graded };
      },
    );
    for (const { problem, responses, graded } of sampled) {
      const correct = graded.filter((g) => g.correct).length;
      const first = responses[0];
      if (example === undefined && first !== undefined && graded[0] !== undefined) {
        example = {
          problemId: problem.id,
          response:
            first.text.length > EXAMPLE_RESPONSE_CHARS
              ? `${first.text.slice(0, EXAMPLE_RESPONSE_CHARS)}...`
              : first.text,
          extracted: graded[0].extracted,
          correct: graded[0].correct,
        };
      }
      results.push({
        benchmark: benchmark.name,
        step: checkpoint.step,
        problemId: problem.id,
        answer: problem.answer,
        samples: graded.map((g, i) => ({
          extracted: g.extracted,
          correct: g.correct,
          reason: g.reason,
          tokens: responses[i]?.tokens.length ?? 0,
        })),
        passAt1: correct / Math.max(1, graded.length),
      });
    }
    const scores = scoreBenchmark(
      results.map((r) => ({
        answers: r.samples.map((s) => s.extracted),
        correct: r.samples.map((s) => s.correct),
      })),
      spec.k,
    );
    const random = seededRandom(`${checkpoint.step}:${benchmark.name}`);
    const interval = bootstrapInterval(scores.perProblemPassAt1, () => random.next());
    const body = results.map((r) => JSON.stringify(r)).join("\n") + (results.length > 0 ? "\n" : "");
    const put = await store.put(key, body, { contentType: "application/x-ndjson" });
    const data: EvaluationResultData = {
      run: checkpoint.run,
      step: checkpoint.step,
      benchmark: benchmark.name,
      problems: Math.max(1, results.length),
      samples: spec.samples,
      temperature: spec.temperature,
      topP: spec.topP,
      hinted: false,
      passAt1: scores.passAt1,
      passAtK: scores.passAtK,
      majAtK: scores.majAtK,
      passAt1Interval: {
        low: Math.min(interval.low, scores.passAt1),
        high: Math.max(interval.high, scores.passAt1),
      },
      results: { uri: store.uri(key), key, sha256: put.info.sha256, size: put.info.size },
      gradingMode: spec.gradingMode,
      ...(example === undefined ? {} : { example }),
    };
    // the results first, then the event's data: one without the other is evaluated again
    await store.put(
      evaluationEventKey(services.keys, checkpoint.step, benchmark.name),
      JSON.stringify(data),
      { contentType: "application/json" },
    );
    events.push(emit(EvaluationResult, data, `${checkpoint.run}:${benchmark.name}`));
  }
  return events;
}

export const evaluateFunction = defineFunction({
  name: "evaluate",
  consumes: [CheckpointPublished] as const,
  emits: [EvaluationResult],
  handle: (event, deps: FunctionDeps<EvaluateServices>) => evaluateCheckpoint(event.data, deps),
});
