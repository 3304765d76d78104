import { mkdir, readFile, writeFile } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { augmentConfigFromSpec } from "../augment/config.ts";
import { loadDatasetSource, type OpenDataset } from "../augment/dataset-source.ts";
import { augmentFunction } from "../augment/handler.ts";
import {
  CheckpointPublished,
  type CheckpointPublishedData,
  EvaluationResult,
  type EvaluationResultData,
  type ObjectRef,
  RunStatus,
  type RunStatusData,
} from "../contracts/events.ts";
import type { QuestATraining, QuestATrainingSpec } from "../contracts/questatraining.ts";
import { type Benchmark, evaluateFunction } from "../evaluate/handler.ts";
import { gradeResponse } from "../grading/reward.ts";
import { learnFunction } from "../learn/handler.ts";
import { Learner } from "../learn/learner.ts";
import { RunKeys } from "../learn/run-keys.ts";
import { rolloutFunction } from "../rollout/handler.ts";
import type { Grade } from "../rollout/policy-sampler.ts";
import { StalenessGate } from "../rollout/staleness-gate.ts";
import { toBinaryMessage } from "../runtime/cloudevents.ts";
import { DeadLetter, type DeadLetterRecord } from "../runtime/dead-letter.ts";
import { defineFunction, isEvent } from "../runtime/define-function.ts";
import { InputError } from "../runtime/errors.ts";
import type { CloudEvent, EmittedEvent } from "../runtime/event-definition.ts";
import { FsObjectStore } from "../runtime/fs-object-store.ts";
import { type Logger, silentLogger } from "../runtime/logger.ts";
import { MemoryBus } from "../runtime/memory-bus.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { bindFunction, type FunctionRunner } from "../runtime/runner.ts";
import { type EngineSettings, OnnxLearnerEngine, OnnxPolicySampler } from "./onnx-adapters.ts";
import type { WarmStartProgress } from "./warm-start.ts";
import { cachedWarmStart } from "./warm-start-cache.ts";

/** What the embedded run reports while it works (the CLI renders it). */
export type RunProgress =
  | { kind: "warm-start"; progress: WarmStartProgress; cached: boolean }
  | { kind: "status"; data: RunStatusData }
  | { kind: "evaluation"; data: EvaluationResultData }
  | { kind: "checkpoint"; data: CheckpointPublishedData }
  | { kind: "dead-letter"; data: DeadLetterRecord };

export interface EmbeddedRunOptions {
  resource: QuestATraining;
  /** directory relative paths (storage.localDir, dataset files) resolve against: the resource file's */
  baseDir: string;
  /** plain RL with the same budget: every curriculum stage's hint ratio is 0 */
  baseline?: boolean;
  /** overrides spec.seed */
  seed?: number;
  signal?: AbortSignal;
  report?: (progress: RunProgress) => void;
  logger?: Logger;
  /** where warm starts are cached across runs; undefined disables the cache */
  cacheDir?: string;
}

export interface RunSummary {
  run: string;
  runDir: string;
  finished: boolean;
  interrupted: boolean;
  step: number;
  evaluations: EvaluationResultData[];
  deadLetters: number;
}

/** The run's spec as it is trained: the baseline arm keeps everything but the hints. */
export function effectiveSpec(
  spec: QuestATrainingSpec,
  options: { baseline?: boolean; seed?: number },
): QuestATrainingSpec {
  const seed = options.seed ?? spec.seed;
  if (!options.baseline) return { ...spec, seed };
  return {
    ...spec,
    seed,
    augmentation: {
      ...spec.augmentation,
      curriculum: spec.augmentation.curriculum.map((stage) => ({ ...stage, ratio: 0 })),
    },
  };
}

export function runName(resource: QuestATraining, baseline: boolean): string {
  return baseline ? `${resource.metadata.name}-baseline`.slice(0, 63) : resource.metadata.name;
}

/** Checks that a run directory belongs to this spec, so a rerun resumes the same run, never a different one. */
async function claimRunDir(runDir: string, spec: QuestATrainingSpec): Promise<void> {
  await mkdir(runDir, { recursive: true });
  const path = join(runDir, "run.json");
  const body = `${JSON.stringify({ spec }, null, 2)}\n`;
  const existing = await readFile(path, "utf8").catch(() => undefined);
  if (existing === undefined) {
    await writeFile(path, body);
    return;
  }
  if (existing !== body) {
    throw new InputError("run_dir_mismatch", [
      {
        path: "metadata.name",
        message: `${runDir} holds a run started from a different spec (or seed)`,
        hint: "rename the run (metadata.name), or delete that directory to start over",
      },
    ]);
  }
}

function localOpener(baseDir: string, store: ObjectStore): OpenDataset {
  return async (uri) => {
    if (uri.startsWith("s3://")) {
      throw new InputError("dataset_needs_s3", [
        {
          path: "datasets",
          message: `${uri} is in S3; the embedded run reads local files`,
          hint: "use a local path",
        },
      ]);
    }
    const path = uri.startsWith("file://")
      ? new URL(uri).pathname
      : isAbsolute(uri)
        ? uri
        : resolve(baseDir, uri);
    try {
      return new Uint8Array(await readFile(path));
    } catch {
      return store.get(uri).catch(() => undefined);
    }
  };
}

function cloudEventOf(run: string, emitted: EmittedEvent, time: string): CloudEvent {
  return {
    specversion: "1.0",
    id: emitted.id ?? `${run}:${emitted.definition.type}:${emitted.key}`,
    source: `/questa/${run}/cli`,
    type: emitted.definition.type,
    subject: run,
    time,
    datacontenttype: "application/json",
    partitionkey: emitted.key,
    data: emitted.data,
  };
}

/**
 * `questa run` in one process: a journaled in-process bus and a directory store under
 * `<localDir>/runs/<name>/`, the four functions bound to them, the warm-started policy. Returns when
 * the run finished and its final checkpoint was evaluated, or when `signal` aborts (then every
 * function drains and a later call resumes where this one stopped).
 */
export async function runEmbedded(options: EmbeddedRunOptions): Promise<RunSummary> {
  const baseline = options.baseline ?? false;
  const resource = options.resource;
  const run = runName(resource, baseline);
  const spec = effectiveSpec(resource.spec, options);
  const logger = options.logger ?? silentLogger();
  const report = options.report ?? (() => {});
  const signal = options.signal ?? new AbortController().signal;
  const runDir = resolve(options.baseDir, spec.storage.localDir, "runs", run);
  if (spec.model.source !== "synthetic") {
    throw new InputError("embedded_needs_synthetic", [
      {
        path: "spec.model.source",
        message: "the embedded run trains the built-in synthetic policy on the CPU",
        hint: "use source: synthetic, or run checkpoint models on a cluster (questa run --kafka ... --s3 ...)",
      },
    ]);
  }
  await claimRunDir(runDir, spec);
  const store = new FsObjectStore(join(runDir, "objects"));
  const keys = new RunKeys("");
  const engine: EngineSettings = {
    executionProvider: spec.model.executionProvider,
    threads: spec.model.threads,
  };

  // the starting policy: warm-started once, then read back on every resume
  const initialFolder = keys.checkpoint(0);
  let initial: ObjectRef;
  const initialManifest = await store.head(`${initialFolder}/manifest.json`);
  if (initialManifest) {
    initial = { uri: store.uri(initialManifest.key), ...initialManifest };
  } else {
    initial = await cachedWarmStart({
      spec,
      store,
      folder: initialFolder,
      engine,
      signal,
      ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
      onProgress: (progress, cached) => report({ kind: "warm-start", progress, cached }),
    });
  }
  signal.throwIfAborted();

  const bus = await MemoryBus.open({ dir: runDir });
  const learnerEngine = new OnnxLearnerEngine(engine);
  const rolloutSampler = new OnnxPolicySampler(engine);
  const evaluateSampler = new OnnxPolicySampler(engine);
  const runners: FunctionRunner<unknown>[] = [];
  try {
    const learner = await Learner.open({
      run,
      learner: spec.learner,
      curriculum: spec.augmentation.curriculum,
      engine: learnerEngine,
      store,
      keys,
      clock: { now: () => Date.now() },
      uri: (key) => store.uri(key),
    });
    // the rollout worker starts from the newest policy the learner published
    await rolloutSampler.load(
      store,
      learner.step > 0 ? keys.policy(learner.step) : initialFolder,
      learner.step,
    );
    const gate = new StalenessGate({
      maxStaleness: spec.learner.maxStaleness,
      promptsPerStep: spec.learner.promptsPerStep,
      produced: learner.step * spec.learner.promptsPerStep + learner.pendingCount,
      learnerVersion: learner.step,
    });
    const scale = spec.learner.rewardScale;
    const grade: Grade = async (gold, response) => {
      const result = gradeResponse(gold, response, { scale });
      return {
        reward: result.reward,
        correct: result.equal,
        extracted: result.extracted,
        reason: result.reason,
      };
    };
    const open = localOpener(options.baseDir, store);
    let benchmarks: Promise<Benchmark[]> | undefined;
    const loadBenchmarks = () => {
      benchmarks ??= Promise.all(
        spec.evaluation.benchmarks.map(async (ref) => {
          const read = await loadDatasetSource(
            {
              name: ref.name,
              mapping: ref.mapping,
              format: ref.format,
              ...(ref.uri === undefined ? {} : { uri: ref.uri }),
              ...(ref.synthetic === undefined ? {} : { synthetic: ref.synthetic }),
            },
            open,
          );
          return {
            name: ref.name,
            problems: read.records.map((r) => ({ id: r.id, problem: r.problem, answer: r.answer })),
          };
        }),
      );
      return benchmarks;
    };

    // what the CLI watches: status, evaluations, checkpoints and dead letters
    let finished = learner.finished;
    let lastStep = learner.step;
    let deadLetters = 0;
    const evaluations = new Map<string, EvaluationResultData>();
    let wake: () => void = () => {};
    const watcher = defineFunction({
      name: "cli",
      consumes: [RunStatus, EvaluationResult, CheckpointPublished, DeadLetter] as const,
      emits: [],
      handle(event) {
        if (isEvent(event, RunStatus)) {
          lastStep = Math.max(lastStep, event.data.step);
          if (event.data.kind === "finished") finished = true;
          report({ kind: "status", data: event.data });
        } else if (isEvent(event, EvaluationResult)) {
          evaluations.set(`${event.data.step}:${event.data.benchmark}`, event.data);
          report({ kind: "evaluation", data: event.data });
        } else if (isEvent(event, CheckpointPublished)) {
          if (event.data.reason !== "policy") report({ kind: "checkpoint", data: event.data });
        } else if (isEvent(event, DeadLetter)) {
          deadLetters++;
          report({ kind: "dead-letter", data: event.data });
        }
        wake();
        return [];
      },
    });
    const common = { bus, store, run, topicPrefix: run, logger, seed: `${run}:${spec.seed}` };
    runners.push(
      bindFunction(watcher, common) as FunctionRunner<unknown>,
      bindFunction(augmentFunction, {
        ...common,
        services: { config: augmentConfigFromSpec(run, spec), openDataset: open },
      }) as FunctionRunner<unknown>,
      bindFunction(rolloutFunction, {
        ...common,
        services: {
          sampler: rolloutSampler,
          grade,
          gate,
          rollout: spec.rollout,
          learner: spec.learner,
          keys,
          stage: { current: learner.stage },
        },
      }) as FunctionRunner<unknown>,
      bindFunction(learnFunction, { ...common, services: { learner } }) as FunctionRunner<unknown>,
      bindFunction(evaluateFunction, {
        ...common,
        services: {
          sampler: evaluateSampler,
          grade,
          evaluation: spec.evaluation,
          totalSteps: spec.learner.totalSteps,
          benchmarks: loadBenchmarks,
          keys,
        },
      }) as FunctionRunner<unknown>,
    );
    for (const runner of runners) await runner.start();

    // the first start announces the initial policy; a resume finds the marker and goes on
    const marker = keys.key("run", "started.json");
    if (!(await store.head(marker))) {
      const time = new Date().toISOString();
      for (const emitted of learner.startEvents(initial)) {
        await bus.publish(`${run}.${emitted.definition.topic}`, [
          toBinaryMessage(cloudEventOf(run, emitted, time)),
        ]);
      }
      await store.put(marker, JSON.stringify({ time }));
    }

    const finalEvaluated = () =>
      spec.evaluation.benchmarks.every((b) => evaluations.has(`${spec.learner.totalSteps}:${b.name}`));
    const failure = Promise.race(runners.map((r) => r.done)).then(
      () => undefined,
      (error: unknown) => error,
    );
    let failed: unknown;
    void failure.then((error) => {
      failed = error;
      wake();
    });
    const onAbort = () => wake();
    signal.addEventListener("abort", onAbort, { once: true });
    while (!(finished && finalEvaluated()) && !signal.aborted && failed === undefined) {
      await new Promise<void>((resolveWait) => {
        wake = resolveWait;
      });
    }
    signal.removeEventListener("abort", onAbort);
    if (failed !== undefined) throw failed;
    return {
      run,
      runDir,
      finished: finished && finalEvaluated(),
      interrupted: signal.aborted,
      step: lastStep,
      evaluations: [...evaluations.values()].sort(
        (a, b) => a.step - b.step || a.benchmark.localeCompare(b.benchmark),
      ),
      deadLetters,
    };
  } finally {
    for (const runner of [...runners].reverse()) await runner.stop();
    await bus.close();
    await learnerEngine.dispose();
    await rolloutSampler.dispose();
    await evaluateSampler.dispose();
  }
}
