/**
 * The services each function runs with, built the same way whether the four functions share one
 * process (`questa run`, embedded) or each runs in its own (`questa function X`, a pod).
 */
import { readFile } from "node:fs/promises";
import { isAbsolute, resolve } from "node:path";
import {
  datasetSourceOf,
  loadDatasetSource,
  type OpenDataset,
  requireRecords,
} from "../augment/dataset-source.ts";
import type { ObjectRef } from "../contracts/events.ts";
import type { LearnerProgress } from "../contracts/learner-progress.ts";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import type { Benchmark, EvaluateServices } from "../evaluate/handler.ts";
import { type Grade, gradeResponse } from "../grading/reward.ts";
import { Learner } from "../learn/learner.ts";
import type { LearnerEngine } from "../learn/learner-engine.ts";
import { CheckpointManifestSchema, saveCheckpoint } from "../model/checkpoint.ts";
import { readHuggingFaceFolder } from "../model/hf-folder.ts";
import type { PolicySampler } from "../model/policy-sampler.ts";
import type { RolloutServices } from "../rollout/handler.ts";
import { StalenessGate } from "../rollout/staleness-gate.ts";
import type { Bus } from "../runtime/bus.ts";
import { toBinaryMessage } from "../runtime/cloudevents.ts";
import { InputError } from "../runtime/errors.ts";
import { type CloudEvent, cloudEvent, type EmittedEvent } from "../runtime/event-definition.ts";
import { describeJsonError } from "../runtime/json-text.ts";
import type { Logger } from "../runtime/logger.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { parseJsonWith } from "../runtime/stored-json.ts";
import { type EngineSettings, OnnxLearnerEngine, OnnxPolicySampler } from "./onnx-adapters.ts";
import { parseVllmEndpoints, resolvingEndpoints, VLLM_ENDPOINTS_ENV } from "./vllm-endpoints.ts";
import { VllmPolicySampler } from "./vllm-policy-sampler.ts";
import type { WarmStartProgress } from "./warm-start.ts";
import { cachedWarmStart } from "./warm-start-cache.ts";

export function engineSettings(spec: QuestATrainingSpec): EngineSettings {
  return {
    executionProvider: spec.model.executionProvider,
    threads: spec.model.threads,
    prompt: { format: spec.model.prompt.format, enableThinking: spec.model.prompt.enableThinking },
    ...(spec.rollout.engine === "vllm" ? { huggingFaceWithPolicies: true } : {}),
  };
}

/** the sampler rollout runs with: the policy sampler port, and a way to let go of it */
export type RolloutSampler = PolicySampler & { dispose(): Promise<void> };

/**
 * Rollout's sampler by spec.rollout.engine: questa's onnxruntime engine in this process, or the
 * vLLM servers named by QUESTA_VLLM_ENDPOINTS (the operator sets it; without it the run is refused,
 * naming the variable). Evaluation keeps the onnxruntime engine either way.
 */
export function createRolloutSampler(
  spec: QuestATrainingSpec,
  env: Record<string, string | undefined>,
  logger: Logger,
): RolloutSampler {
  if (spec.rollout.engine === "onnx") return new OnnxPolicySampler(engineSettings(spec));
  return new VllmPolicySampler({
    endpoints: resolvingEndpoints(parseVllmEndpoints(env[VLLM_ENDPOINTS_ENV])),
    prompt: { format: spec.model.prompt.format, enableThinking: spec.model.prompt.enableThinking },
    logger,
  });
}

/**
 * The verifier as rollout and evaluate use it: reward on the run's scale, plus the verdict. The
 * reward reads answers in `rollout.gradingMode` (strict by default, so the policy learns to mark
 * its answer), evaluation reports in `evaluation.gradingMode` (lenient by default).
 */
export function gradeFor(spec: QuestATrainingSpec, purpose: "reward" | "evaluation"): Grade {
  const scale = spec.learner.rewardScale;
  const mode = purpose === "reward" ? spec.rollout.gradingMode : spec.evaluation.gradingMode;
  return async (gold, response) => {
    const result = gradeResponse(gold, response, { scale, mode });
    return {
      reward: result.reward,
      correct: result.equal,
      extracted: result.extracted,
      reason: result.reason,
    };
  };
}

async function manifestRefAt(store: ObjectStore, key: string): Promise<ObjectRef | undefined> {
  const info = await store.head(key);
  return info ? { uri: store.uri(info.key), key: info.key, sha256: info.sha256, size: info.size } : undefined;
}

/** the step-0 checkpoint's manifest when it exists */
export function initialCheckpointRef(store: ObjectStore, keys: RunKeys): Promise<ObjectRef | undefined> {
  return manifestRefAt(store, `${keys.checkpoint(0)}/manifest.json`);
}

/**
 * Copies a questa checkpoint (`<uri>/manifest.json` and the files it lists) into `folder`, checking
 * each file against the manifest's sha256; the manifest goes last, so the copy is visible only whole.
 */
async function copyCheckpoint(
  open: OpenDataset,
  uri: string,
  store: ObjectStore,
  folder: string,
): Promise<ObjectRef> {
  const base = uri.replace(/\/+$/, "").replace(/\/manifest\.json$/, "");
  const missing = (what: string) =>
    new InputError("checkpoint_not_found", [
      {
        path: "spec.model.uri",
        message: `no ${what} at ${base}`,
        hint: "point uri at a questa checkpoint folder",
      },
    ]);
  const manifestBytes = await open(`${base}/manifest.json`);
  if (manifestBytes === undefined) throw missing("manifest.json");
  // a checkpoint the user points at: what is wrong with it is their input, not corruption of ours
  const parsed = parseJsonWith(manifestBytes, CheckpointManifestSchema);
  if (!parsed.ok) {
    const message =
      parsed.problem === "not-json"
        ? `${base}/manifest.json is ${describeJsonError(parsed.error)}`
        : `${base}/manifest.json: ${parsed.error.message}`;
    throw new InputError("checkpoint_invalid", [{ path: "spec.model.uri", message }]);
  }
  for (const [name, expected] of Object.entries(parsed.value.files)) {
    const bytes = await open(`${base}/${name}`);
    if (bytes === undefined) throw missing(name);
    const put = await store.put(`${folder}/${name}`, bytes);
    if (put.info.sha256 !== expected.sha256) {
      throw new InputError("checkpoint_invalid", [
        { path: "spec.model.uri", message: `${base}/${name} does not match the sha256 in its manifest` },
      ]);
    }
  }
  await store.put(`${folder}/manifest.json`, manifestBytes, { contentType: "application/json" });
  const ref = await manifestRefAt(store, `${folder}/manifest.json`);
  if (!ref) throw new Error(`${folder}/manifest.json missing after write`);
  return ref;
}

/**
 * Converts a Hugging Face model folder into the run's step-0 checkpoint (engine weights, tokenizer,
 * the folder's metadata, and the folder itself again under `hf/`). The whole folder is read and
 * checked first: a bad folder is refused with every problem named, and nothing is written.
 */
async function importHuggingFaceFolder(
  open: OpenDataset,
  uri: string,
  store: ObjectStore,
  folder: string,
): Promise<ObjectRef> {
  const base = uri.replace(/\/+$/, "");
  const model = await readHuggingFaceFolder((name) => open(`${base}/${name}`), {
    where: base,
    path: "spec.model.uri",
  });
  await saveCheckpoint(
    store,
    folder,
    {
      config: model.config,
      params: model.params,
      tokenizerJson: model.tokenizerJson,
      huggingFace: model.source,
      step: 0,
      metadata: { origin: "huggingface", uri: base },
    },
    { exportHuggingFace: true },
  );
  const ref = await manifestRefAt(store, `${folder}/manifest.json`);
  if (!ref) throw new Error(`${folder}/manifest.json missing after write`);
  return ref;
}

/**
 * The starting policy (step 0): read back when it exists, else made once: the synthetic policy is
 * warm-started (cached across runs under `cacheDir`), a `checkpoint` model is copied in, a
 * `huggingface` folder is converted.
 */
export async function ensureInitialCheckpoint(options: {
  spec: QuestATrainingSpec;
  store: ObjectStore;
  keys: RunKeys;
  /** reads `spec.model.uri` for checkpoint models */
  open: OpenDataset;
  signal?: AbortSignal;
  cacheDir?: string;
  onWarmStart?: (progress: WarmStartProgress, cached: boolean) => void;
}): Promise<ObjectRef> {
  const { spec, store, keys } = options;
  const existing = await initialCheckpointRef(store, keys);
  if (existing) return existing;
  const folder = keys.checkpoint(0);
  if (spec.model.source === "checkpoint") {
    return copyCheckpoint(options.open, spec.model.uri ?? "", store, folder);
  }
  if (spec.model.source === "huggingface") {
    return importHuggingFaceFolder(options.open, spec.model.uri ?? "", store, folder);
  }
  return cachedWarmStart({
    spec,
    store,
    folder,
    engine: engineSettings(spec),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    ...(options.onWarmStart === undefined ? {} : { onProgress: options.onWarmStart }),
  });
}

/**
 * A learner restored from the store (the initial checkpoint must exist) with its engine (default:
 * the onnx engine; learner-engines.ts starts the one spec.learner.engine names).
 */
export async function openLearner(options: {
  run: string;
  spec: QuestATrainingSpec;
  store: ObjectStore;
  keys: RunKeys;
  engine?: LearnerEngine;
}): Promise<{ learner: Learner; engine: LearnerEngine }> {
  const { spec, store } = options;
  const engine = options.engine ?? new OnnxLearnerEngine(engineSettings(spec));
  const learner = await Learner.open({
    run: options.run,
    learner: spec.learner,
    curriculum: spec.augmentation.curriculum,
    engine,
    store,
    keys: options.keys,
    clock: { now: () => Date.now() },
    uri: (key) => store.uri(key),
  });
  return { learner, engine };
}

/**
 * The rollout worker's services, resuming from the learner's progress: the newest policy it
 * published, a staleness gate counting what it already holds, its curriculum stage.
 */
export async function rolloutServices(options: {
  spec: QuestATrainingSpec;
  store: ObjectStore;
  keys: RunKeys;
  progress: LearnerProgress;
  sampler?: RolloutSampler;
}): Promise<RolloutServices & { sampler: RolloutSampler }> {
  const { spec, keys, progress } = options;
  const sampler = options.sampler ?? new OnnxPolicySampler(engineSettings(spec));
  await sampler.load(
    options.store,
    progress.step > 0 ? keys.policy(progress.step) : keys.checkpoint(0),
    progress.step,
  );
  const gate = new StalenessGate({
    maxStaleness: spec.learner.maxStaleness,
    promptsPerStep: spec.learner.promptsPerStep,
    produced: progress.step * spec.learner.promptsPerStep + progress.pendingCount,
    learnerVersion: progress.step,
  });
  return {
    sampler,
    grade: gradeFor(spec, "reward"),
    gate,
    rollout: spec.rollout,
    learner: spec.learner,
    keys,
    stage: { current: progress.stage },
  };
}

/**
 * A dataset opener for local runs: local paths resolve against `baseDir`, a URI that is no local
 * file is tried as a key of the run's store; S3 datasets are refused (embedded runs read local files).
 */
export function localDatasetOpener(baseDir: string, store: ObjectStore): OpenDataset {
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

/** The evaluate function's services: its own sampler and the benchmarks, loaded once on first use. */
export function evaluateServices(options: {
  spec: QuestATrainingSpec;
  keys: RunKeys;
  open: OpenDataset;
  sampler?: OnnxPolicySampler;
}): EvaluateServices & { sampler: OnnxPolicySampler } {
  const { spec, open } = options;
  const sampler = options.sampler ?? new OnnxPolicySampler(engineSettings(spec));
  let benchmarks: Promise<Benchmark[]> | undefined;
  const loadBenchmarks = () => {
    benchmarks ??= Promise.all(
      spec.evaluation.benchmarks.map(async (ref, index) => {
        const source = datasetSourceOf(ref);
        const read = await loadDatasetSource(source, open);
        requireRecords(read, source, `evaluation.benchmarks[${index}]`);
        return {
          name: ref.name,
          problems: read.records.map((r) => ({ id: r.id, problem: r.problem, answer: r.answer })),
        };
      }),
    );
    return benchmarks;
  };
  return {
    sampler,
    grade: gradeFor(spec, "evaluation"),
    evaluation: spec.evaluation,
    totalSteps: spec.learner.totalSteps,
    benchmarks: loadBenchmarks,
    keys: options.keys,
  };
}

function cloudEventOf(run: string, source: string, emitted: EmittedEvent, time: string): CloudEvent {
  return cloudEvent({
    id: emitted.id ?? `${run}:${emitted.definition.type}:${emitted.key}`,
    run,
    source,
    type: emitted.definition.type,
    time,
    key: emitted.key,
    data: emitted.data,
  });
}

/**
 * Announces the initial policy once per run: the first start publishes the learner's start events,
 * then writes a marker; a restart finds the marker and publishes nothing. (A crash between the two
 * publishes again: the events carry fixed ids, so consumers see the same events.)
 */
export async function publishStartEvents(options: {
  bus: Bus;
  store: ObjectStore;
  keys: RunKeys;
  run: string;
  topicPrefix: string;
  learner: Learner;
  initial: ObjectRef;
  /** the CloudEvents source segment: `/questa/<run>/<source>` */
  source: string;
  /** create the topics first (a bus that does not create topics on publish) */
  ensureTopics?: boolean;
  clock?: () => Date;
}): Promise<boolean> {
  const { bus, store, keys, run, topicPrefix } = options;
  const marker = keys.key("run", "started.json");
  if (await store.head(marker)) return false;
  const time = (options.clock?.() ?? new Date()).toISOString();
  const events = options.learner.startEvents(options.initial);
  if (options.ensureTopics) {
    const topics = [...new Set(events.map((e) => `${topicPrefix}.${e.definition.topic}`))];
    await bus.ensureTopics(topics.map((name) => ({ name })));
  }
  for (const emitted of events) {
    await bus.publish(`${topicPrefix}.${emitted.definition.topic}`, [
      toBinaryMessage(cloudEventOf(run, options.source, emitted, time)),
    ]);
  }
  await store.put(marker, JSON.stringify({ time }));
  return true;
}
