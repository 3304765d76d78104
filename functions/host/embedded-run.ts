import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { augmentConfigFromSpec } from "../augment/config.ts";
import { augmentFunction } from "../augment/handler.ts";
import { EvaluationResult, type EvaluationResultData, QuestionAugmented } from "../contracts/events.ts";
import type { QuestATraining, QuestATrainingSpec } from "../contracts/questatraining.ts";
import { KNOWN_EVENT_TYPES } from "../contracts/registry.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import { evaluateFunction } from "../evaluate/handler.ts";
import { learnFunction } from "../learn/handler.ts";
import type { GenerationStats } from "../model/engine.ts";
import { rolloutFunction } from "../rollout/handler.ts";
import { type Clock, systemClock } from "../runtime/clock.ts";
import { parseBinaryMessage } from "../runtime/cloudevents.ts";
import { InputError } from "../runtime/errors.ts";
import { FsObjectStore } from "../runtime/fs-object-store.ts";
import { type Logger, silentLogger } from "../runtime/logger.ts";
import { MemoryBus } from "../runtime/memory-bus.ts";
import { bindFunction, type FunctionRunner } from "../runtime/runner.ts";
import {
  engineSettings,
  ensureInitialCheckpoint,
  evaluateServices,
  localDatasetOpener,
  openLearner,
  publishStartEvents,
  rolloutServices,
} from "./function-services.ts";
import { type LearnerNode, startLearnerNode } from "./learner-engines.ts";
import { OnnxPolicySampler } from "./onnx-adapters.ts";
import { repeatInBackground } from "./periodic-task.ts";
import { type RunProgress, RunWatcher } from "./run-watcher.ts";
import { type VllmEndpoint, VllmHttpServer } from "./vllm-api.ts";
import { parseVllmEndpoints, resolvingEndpoints, VLLM_ENDPOINTS_ENV } from "./vllm-endpoints.ts";
import { VllmPolicySampler } from "./vllm-policy-sampler.ts";
import { prepareLocalVllm, type RunningLocalVllm, startLocalVllm, type VllmMachine } from "./vllm-process.ts";
import type { VllmDevice } from "./vllm-server-args.ts";
import { servedStep, VllmWeightSync, vllmSyncFunction } from "./vllm-weight-sync.ts";

export type { RunProgress } from "./run-watcher.ts";

export interface EmbeddedRunOptions {
  resource: QuestATraining;
  /** directory relative dataset paths resolve against: the resource file's */
  baseDir: string;
  /** directory a relative storage.localDir resolves against (the user's working directory); default baseDir */
  workDir?: string;
  /** plain RL with the same budget: every curriculum stage's hint ratio is 0 */
  baseline?: boolean;
  /** overrides spec.seed */
  seed?: number;
  signal?: AbortSignal;
  report?: (progress: RunProgress) => void;
  logger?: Logger;
  /** where warm starts are cached across runs; undefined disables the cache */
  cacheDir?: string;
  /** told once the run is complete, before its functions are stopped */
  onComplete?: () => void;
  /** where the loop's timing reads time; default the system clock */
  clock?: Clock;
  /**
   * the environment: QUESTA_TORCH_PYTHON and QUESTA_CACHE_DIR for the torch learner; rollout.engine
   * vllm samples from the servers of QUESTA_VLLM_ENDPOINTS (whose model directory is
   * QUESTA_VLLM_MODEL_DIR, default `<run dir>/vllm-models`), or, when that is unset, from a local
   * server started from QUESTA_VLLM_PYTHON or the cached vLLM venv; default process.env
   */
  env?: Record<string, string | undefined>;
}

/**
 * Where this session's time went, from the moment the functions started (after the warm start)
 * until the run completed or stopped; a resumed run counts from its resumption.
 */
export interface LoopTiming {
  wallSeconds: number;
  /**
   * per function, the wall time in which at least one of its handlers ran (waits inside a handler,
   * e.g. rollout on the staleness gate, included), and that as a share of wallSeconds (functions
   * overlap, so the shares may add up to more than 1)
   */
  functions: Record<string, { busySeconds: number; share: number }>;
  /** seconds the policy engines spent prefilling and decoding: rollout's and evaluation's */
  samplingSeconds: { rollout: number; evaluate: number };
  /** response tokens of the rollout groups sampled (probes included; evaluation not) */
  sampledTokens: number;
  /** sampledTokens per second of rollout's engine time */
  samplingTokensPerSecond: number | undefined;
  /** rows per decode step of rollout's engine, on average (its batch fill) */
  rolloutMeanDecodeRows: number | undefined;
  /** the learner's training tokens/s, averaged over the steps taken */
  trainTokensPerSecond: number | undefined;
  /** the learner's log-prob gap to the sampler (mean |log pi_learner - log pi_sampler|), averaged over the steps taken */
  logProbGap: number | undefined;
}

/** how a run (embedded, or its functions as processes) ended, from its events */
export interface RunOutcome {
  run: string;
  finished: boolean;
  interrupted: boolean;
  step: number;
  evaluations: EvaluationResultData[];
  deadLetters: number;
  /** dead letters by reason */
  deadLetterReasons: Record<string, number>;
}

export interface RunSummary extends RunOutcome {
  runDir: string;
  timing: LoopTiming;
  /** rollout.engine vllm: the servers' side of the run */
  vllm?: VllmRunSummary;
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

/**
 * Ties `runDir` to the spec it runs: created with it, refused for a different one, so a rerun
 * resumes the same run, never a different one.
 */
export async function claimRunDir(runDir: string, spec: QuestATrainingSpec): Promise<void> {
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

/** the evaluation results already on a resumed run's bus (its earlier sessions') */
function publishedEvaluations(bus: MemoryBus, topicPrefix: string): EvaluationResultData[] {
  return bus.messages(`${topicPrefix}.${EvaluationResult.topic}`).flatMap((message) => {
    const parsed = parseBinaryMessage(message);
    if (!parsed.ok || parsed.value.type !== EvaluationResult.type) return [];
    const data = EvaluationResult.data.safeParse(parsed.value.data);
    return data.success ? [data.data] : [];
  });
}

/** the loop's timing from the runners' busy time, the engines' counters and what the watcher counted */
export function loopTiming(
  wallMs: number,
  runners: readonly { fn: { name: string }; busyMilliseconds: number }[],
  watcher: {
    sampledTokens: number;
    trainTokensPerSecond: number | undefined;
    logProbGap: number | undefined;
  },
  engines: {
    rollout:
      | Pick<GenerationStats, "prefillSeconds" | "decodeSeconds" | "decodeSteps" | "decodedRows">
      | undefined;
    evaluate: Pick<GenerationStats, "prefillSeconds" | "decodeSeconds"> | undefined;
  },
): LoopTiming {
  const wallSeconds = Math.max(wallMs, 1) / 1000;
  const functions: LoopTiming["functions"] = {};
  for (const runner of runners) {
    if (runner.fn.name === "cli") continue; // the watcher itself
    const busySeconds = runner.busyMilliseconds / 1000;
    functions[runner.fn.name] = { busySeconds, share: busySeconds / wallSeconds };
  }
  const seconds = (stats: Pick<GenerationStats, "prefillSeconds" | "decodeSeconds"> | undefined) =>
    stats === undefined ? 0 : stats.prefillSeconds + stats.decodeSeconds;
  const samplingSeconds = { rollout: seconds(engines.rollout), evaluate: seconds(engines.evaluate) };
  return {
    wallSeconds,
    functions,
    samplingSeconds,
    sampledTokens: watcher.sampledTokens,
    samplingTokensPerSecond:
      samplingSeconds.rollout > 0 ? watcher.sampledTokens / samplingSeconds.rollout : undefined,
    rolloutMeanDecodeRows:
      engines.rollout && engines.rollout.decodeSteps > 0
        ? engines.rollout.decodedRows / engines.rollout.decodeSteps
        : undefined,
    trainTokensPerSecond: watcher.trainTokensPerSecond,
    logProbGap: watcher.logProbGap,
  };
}

/** what an embedded run with rollout.engine vllm tells of its servers at the end */
export interface VllmRunSummary {
  /** the local server `questa run` started; undefined when QUESTA_VLLM_ENDPOINTS named the servers */
  local?: { url: string; device: VllmDevice; startSeconds: number; restarts: number; logFile: string };
  /** policy versions loaded into the servers (undefined: counted by the vllm-sync process) */
  reloads?: number;
  /** mean seconds of a reload (pause to resume) */
  reloadSeconds?: number | undefined;
  /** the learner step the (first) server serves at the end; -1 when it did not answer */
  servedStep: number;
}

interface OpenedVllm {
  sampler: VllmPolicySampler;
  sync: VllmWeightSync;
  /** settles when the local server keeps dying */
  failed: Promise<Error>;
  /** the servers on the learner's newest policy (the end of a complete run) */
  catchUp(): Promise<void>;
  summary(): Promise<VllmRunSummary>;
  /** stops following the learner and the local server */
  close(): Promise<void>;
}

/**
 * rollout.engine vllm in one process: the sampler on the servers of QUESTA_VLLM_ENDPOINTS, or on a
 * local server started here when that is unset (functions/host/vllm-process.ts, its files under
 * `<run dir>/vllm/`), and the weight sync that keeps them on the learner's newest policy (bound as
 * a function beside the others, and following the learner's progress every second for servers
 * that restart).
 */
async function openVllm(options: {
  /** the local server's Python and device; undefined when QUESTA_VLLM_ENDPOINTS names the servers */
  machine: VllmMachine | undefined;
  spec: QuestATrainingSpec;
  run: string;
  env: Record<string, string | undefined>;
  runDir: string;
  store: FsObjectStore;
  keys: RunKeys;
  logger: Logger;
  say: (text: string) => void;
  signal: AbortSignal;
}): Promise<OpenedVllm> {
  const { spec, env, runDir, store, keys, logger } = options;
  let endpoints: () => Promise<VllmEndpoint[]>;
  let modelDir: string;
  let local: RunningLocalVllm | undefined;
  if (options.machine === undefined) {
    endpoints = resolvingEndpoints(parseVllmEndpoints(env[VLLM_ENDPOINTS_ENV]));
    modelDir = env.QUESTA_VLLM_MODEL_DIR ?? join(runDir, "vllm-models");
  } else {
    const dir = join(runDir, "vllm");
    await mkdir(dir, { recursive: true });
    local = await startLocalVllm({
      machine: options.machine,
      store,
      initialCheckpoint: keys.checkpoint(0),
      dir,
      servedModelName: options.run,
      vllm: spec.rollout.vllm,
      sequencesInFlight: EMBEDDED_QUESTION_PARTITIONS * spec.rollout.groupSize,
      env,
      say: options.say,
      signal: options.signal,
    });
    const server = new VllmHttpServer(local.url);
    endpoints = async () => [server];
    modelDir = local.modelDir;
  }
  const running = local;
  try {
    await mkdir(modelDir, { recursive: true });
    const reloads: number[] = [];
    const sync = new VllmWeightSync({
      endpoints,
      modelDir,
      store,
      keys,
      logger,
      onReload: ({ seconds }) => reloads.push(seconds),
    });
    // the servers hold this run's policy before anything samples from them
    await sync.reconcile();
    const follower = repeatInBackground(() => sync.reconcile(), {
      intervalMs: 1000,
      logger,
      failing: "vLLM weight sync failed; trying again every second",
      recovered: "vLLM weight sync works again",
    });
    const sampler = new VllmPolicySampler({
      endpoints,
      prompt: { format: spec.model.prompt.format, enableThinking: spec.model.prompt.enableThinking },
      logger,
    });
    return {
      sampler,
      sync,
      failed: running?.server.failed ?? new Promise<Error>(() => {}),
      catchUp: () => sync.reconcile(),
      async summary() {
        const [first] = await endpoints();
        const tag = first ? await first.weightVersion().catch(() => "unknown") : "unknown";
        return {
          ...(running
            ? {
                local: {
                  url: running.url,
                  device: running.device,
                  ...running.server.stats,
                  logFile: running.server.logFile,
                },
              }
            : {}),
          reloads: reloads.length,
          reloadSeconds: reloads.length > 0 ? reloads.reduce((a, b) => a + b, 0) / reloads.length : undefined,
          servedStep: servedStep(tag),
        };
      },
      async close() {
        await follower.stop();
        await running?.server.stop();
      },
    };
  } catch (error) {
    await running?.server.stop();
    throw error;
  }
}

/** the vLLM sampler's counters in the engine's terms: its busy time as decode time */
function vllmGenerationStats(stats: { generatedTokens: number; busySeconds: number }) {
  return { prefillSeconds: 0, decodeSeconds: stats.busySeconds, decodeSteps: 0, decodedRows: 0 };
}

/**
 * Partitions of the questions topic in embedded runs, i.e. questions sampled at once. A group's
 * rows finish at different lengths and its partition takes the next question only when its last
 * row is done, so the decode batch holds far fewer rows than questions x group size: in
 * bench:rollout 8 partitions gave a mean batch of 24 rows (of 64), 32 partitions 105-115.
 */
export const EMBEDDED_QUESTION_PARTITIONS = 32;

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
  const runDir = resolve(options.workDir ?? options.baseDir, spec.storage.localDir, "runs", run);
  await claimRunDir(runDir, spec);
  const store = new FsObjectStore(join(runDir, "objects"));
  const keys = new RunKeys("");
  const open = localDatasetOpener(options.baseDir, store);

  const env = options.env ?? process.env;
  const say = (text: string) => report({ kind: "notice", text });
  // a local vLLM server needs vLLM installed: said before anything else takes time
  const vllmMachine =
    spec.rollout.engine === "vllm" && !env[VLLM_ENDPOINTS_ENV]?.trim()
      ? await prepareLocalVllm(env)
      : undefined;

  // the starting policy: warm-started (or read from the model folder) once, then read back on every resume
  const initial = await ensureInitialCheckpoint({
    spec,
    store,
    keys,
    open,
    signal,
    ...(options.cacheDir === undefined ? {} : { cacheDir: options.cacheDir }),
    onWarmStart: (progress, cached) => report({ kind: "warm-start", progress, cached }),
  });
  signal.throwIfAborted();

  // the local vLLM server loads (about a minute on a CPU) while the learner starts
  const vllmOpening =
    spec.rollout.engine === "vllm"
      ? openVllm({ spec, run, env, runDir, store, keys, logger, say, signal, machine: vllmMachine })
      : undefined;
  // observed here: a learner that fails first must not leave an unhandled rejection behind
  vllmOpening?.catch(() => {});
  let learnerNode: LearnerNode;
  try {
    learnerNode = await startLearnerNode({
      spec,
      run,
      env,
      install: true,
      say,
      logger,
      workDir: join(runDir, "torch-learner"),
    });
  } catch (error) {
    await (await vllmOpening?.catch(() => undefined))?.close();
    throw error;
  }
  if (learnerNode.role !== "driver")
    throw new Error("an embedded run's torch learner has one node, rank 0's");
  const learnerEngine = learnerNode.engine;
  let learnerStopped: Error | undefined;
  void learnerNode.stopped.then((error) => {
    learnerStopped = error;
  });
  let vllm: OpenedVllm | undefined;
  try {
    vllm = await vllmOpening;
  } catch (error) {
    await learnerEngine.dispose();
    throw error;
  }
  const bus = await MemoryBus.open({ dir: runDir });
  const engine = engineSettings(spec);
  const rolloutSampler = vllm?.sampler ?? new OnnxPolicySampler(engine);
  const evaluateSampler = new OnnxPolicySampler(engine);
  const runners: FunctionRunner<unknown>[] = [];
  try {
    const { learner } = await openLearner({ run, spec, store, keys, engine: learnerEngine });
    // the rollout worker starts from the newest policy the learner published
    const rollout = await rolloutServices({
      spec,
      store,
      keys,
      sampler: rolloutSampler,
      progress: {
        step: learner.step,
        stage: learner.stage,
        finished: learner.finished,
        pendingCount: learner.pendingCount,
      },
    });

    // what the CLI watches: status, evaluations, checkpoints and dead letters
    const clock = options.clock ?? systemClock;
    const started = clock.now();
    const watcher = new RunWatcher({
      spec,
      report,
      finished: learner.finished,
      step: learner.step,
      since: started,
    });
    watcher.remember(publishedEvaluations(bus, run));
    const common = {
      bus,
      store,
      run,
      topicPrefix: run,
      logger,
      seed: `${run}:${spec.seed}`,
      knownTypes: KNOWN_EVENT_TYPES,
      deadLetterKeyPrefix: keys.key("dead-letters"),
    };
    // questions spread over many partitions, which the bus delivers concurrently: rollout samples
    // that many questions at once and its sampler decodes them in one batch (a run started before
    // keeps the partitions it has)
    await bus.ensureTopics([
      {
        name: `${run}.${QuestionAugmented.topic}`,
        partitions: Math.max(spec.kafka.partitions, EMBEDDED_QUESTION_PARTITIONS),
      },
    ]);
    runners.push(
      bindFunction(watcher.fn, common) as FunctionRunner<unknown>,
      bindFunction(augmentFunction, {
        ...common,
        services: { config: augmentConfigFromSpec(run, spec), openDataset: open },
      }) as FunctionRunner<unknown>,
      bindFunction(rolloutFunction, { ...common, services: rollout }) as FunctionRunner<unknown>,
      bindFunction(learnFunction, { ...common, services: { learner } }) as FunctionRunner<unknown>,
      bindFunction(evaluateFunction, {
        ...common,
        services: evaluateServices({ spec, keys, open, sampler: evaluateSampler }),
      }) as FunctionRunner<unknown>,
      ...(vllm
        ? [
            bindFunction(vllmSyncFunction, {
              ...common,
              services: { sync: vllm.sync },
            }) as FunctionRunner<unknown>,
          ]
        : []),
    );
    for (const runner of runners) await runner.start();

    // the first start announces the initial policy; a resume finds the marker and goes on
    await publishStartEvents({ bus, store, keys, run, topicPrefix: run, learner, initial, source: "cli" });

    const failure = Promise.race([
      Promise.race(runners.map((r) => r.done)).then(
        () => undefined,
        (error: unknown) => error,
      ),
      // the torch learner's processes gone: the run stops (a later `questa run` resumes it)
      learnerNode.stopped,
      // the local vLLM server keeps dying
      ...(vllm ? [vllm.failed] : []),
    ]);
    await watcher.untilComplete(signal, failure);
    if (watcher.complete) {
      // the servers end on the final policy (the sync may not have taken its checkpoint yet)
      await vllm
        ?.catchUp()
        .catch((error: unknown) => logger.warn({ err: error }, "vLLM: the final policy did not load"));
      options.onComplete?.();
    }
    return {
      run,
      runDir,
      finished: watcher.complete,
      interrupted: signal.aborted && !watcher.complete,
      step: watcher.step,
      evaluations: watcher.evaluations,
      deadLetters: watcher.deadLetters,
      deadLetterReasons: watcher.deadLetterReasons,
      timing: loopTiming(clock.now() - started, runners, watcher, {
        rollout:
          rolloutSampler instanceof OnnxPolicySampler
            ? rolloutSampler.generationStats
            : vllmGenerationStats(rolloutSampler.samplingStats),
        evaluate: evaluateSampler.generationStats,
      }),
      ...(vllm ? { vllm: await vllm.summary() } : {}),
    };
  } catch (error) {
    // the torch learner's processes gone (loading the first policy, say): the run stops saying
    // why, not with the request that failed. Their exit settles `stopped` at once: a turn is enough
    await new Promise((resolveTurn) => setImmediate(resolveTurn));
    throw learnerStopped ?? error;
  } finally {
    for (const runner of [...runners].reverse()) await runner.stop();
    // after the runners: rollout's last requests drain before the local server goes
    await vllm?.close();
    await bus.close();
    await learnerEngine.dispose();
    await rolloutSampler.dispose();
    await evaluateSampler.dispose();
  }
}
