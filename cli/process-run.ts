/**
 * `questa run FILE --kafka BROKERS --s3 URL`: the run's four functions as separate processes
 * (`questa function X`, what the operator runs as pods) against a real Kafka and S3, supervised
 * here: a function process that dies is started again, as a Deployment would.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { QuestATraining, QuestATrainingSpec } from "../functions/contracts/questatraining.ts";
import { RunKeys } from "../functions/contracts/run-keys.ts";
import type { RunOutcome, VllmRunSummary } from "../functions/host/embedded-run.ts";
import { initialCheckpointRef } from "../functions/host/function-services.ts";
import { type RunProgress, RunWatcher } from "../functions/host/run-watcher.ts";
import { freeLoopbackPort } from "../functions/host/torch-process.ts";
import { VllmHttpServer } from "../functions/host/vllm-api.ts";
import { VLLM_ENDPOINTS_ENV } from "../functions/host/vllm-endpoints.ts";
import { prepareLocalVllm, type RunningLocalVllm, startLocalVllm } from "../functions/host/vllm-process.ts";
import { servedStep } from "../functions/host/vllm-weight-sync.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { KafkaBus, type KafkaLogger } from "../functions/runtime/kafka-bus.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { bindFunction } from "../functions/runtime/runner.ts";
import { S3ObjectStore, s3StoreConfigFromEnv } from "../functions/runtime/s3-object-store.ts";
import { renderTrainingConfig } from "../operator/resources/config-map.ts";
import {
  derivedRunNames,
  FUNCTIONS,
  type FunctionName,
  type RunRef,
  VLLM_SYNC,
} from "../operator/resources/names.ts";
import { runTopics } from "../operator/resources/topics.ts";
import { functionEnv } from "../operator/resources/workloads.ts";

/** where the run's objects go: a bucket (and key prefix) at an endpoint, or on AWS */
export interface S3Location {
  bucket: string;
  prefix: string;
  /** e.g. http://127.0.0.1:9000 (path-style); omitted = AWS */
  endpoint?: string;
}

/**
 * `s3://bucket/prefix/` (AWS) or `http(s)://host:port/bucket/prefix/` (an S3-compatible server such
 * as MinIO, addressed path-style).
 */
export function parseS3Location(text: string): S3Location {
  const invalid = (message: string) =>
    new InputError("invalid_s3_url", [
      { path: "--s3", message, hint: "give s3://BUCKET[/PREFIX] or http://HOST:PORT/BUCKET[/PREFIX]" },
    ]);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`${JSON.stringify(text)} is not a URL`);
  }
  const segments = url.pathname.split("/").filter((s) => s !== "");
  let bucket: string | undefined;
  let rest: string[];
  if (url.protocol === "s3:") {
    bucket = url.hostname;
    rest = segments;
  } else if (url.protocol === "http:" || url.protocol === "https:") {
    [bucket, ...rest] = segments;
  } else {
    throw invalid(`unsupported scheme ${url.protocol}`);
  }
  if (bucket === undefined || bucket === "") throw invalid(`${text} names no bucket`);
  const prefix = rest.length === 0 ? "" : `${rest.join("/")}/`;
  return url.protocol === "s3:" ? { bucket, prefix } : { bucket, prefix, endpoint: url.origin };
}

/** `host:port[,host:port]`, each checked */
export function parseBrokers(text: string): string[] {
  const brokers = text.split(",").flatMap((b) => (b.trim() === "" ? [] : [b.trim()]));
  const bad = brokers.filter((b) => !/^[^\s:/]+:\d{1,5}$/.test(b));
  if (brokers.length === 0 || bad.length > 0) {
    throw new InputError("invalid_brokers", [
      {
        path: "--kafka",
        message: brokers.length === 0 ? "no brokers" : `not host:port: ${bad.join(", ")}`,
        hint: "give host:port[,host:port], e.g. 127.0.0.1:9092",
      },
    ]);
  }
  return brokers;
}

export interface ProcessRunOptions {
  /** the resource as it runs (name and spec final: baseline and seed applied) */
  resource: QuestATraining;
  /** `<localDir>/runs/<name>/`: the config file and the function logs go here */
  runDir: string;
  brokers: string[];
  s3: S3Location;
  /** the environment the function processes inherit (S3 credentials: AWS_ACCESS_KEY_ID, ...) */
  env: Readonly<Record<string, string | undefined>>;
  /** `bin/questa.js`, started with this Node */
  questaBin: string;
  signal: AbortSignal;
  report: (progress: RunProgress) => void;
  /** a line about the function processes (started, exited, restarted) */
  notice: (line: string) => void;
  /** restarts of one function before the run gives up; default 5 */
  maxRestarts?: number;
  /** told once the run is complete, before its processes are stopped */
  onComplete?: () => void;
}

export interface ProcessRunSummary extends RunOutcome {
  /** the local vLLM server of a run with rollout.engine vllm and no QUESTA_VLLM_ENDPOINTS */
  vllm?: VllmRunSummary;
  objects: string;
  logDir: string;
  /** the run's dead-letter topic */
  deadLetterTopic: string;
  /** the functions run in other processes: what the run's events tell of its speed */
  throughput: ProcessRunThroughput;
}

export interface ProcessRunThroughput {
  /** from the functions' start until the run completed or stopped */
  wallSeconds: number;
  /** response tokens of the rollout groups of this session (probes included) */
  sampledTokens: number;
  /** the rollout engines' own speed, as the steps' run.status events report it */
  samplingTokensPerSecond: number | undefined;
  trainTokensPerSecond: number | undefined;
  /** the learner's log-prob gap to the sampler, averaged over the steps of this session */
  logProbGap: number | undefined;
}

/**
 * kafkajs' complaints about the CLI's own connection as one human line per condition (never its
 * JSON), until `recovered()` says Kafka answers again.
 */
export function kafkaNotices(notice: (line: string) => void): { logger: KafkaLogger; recovered: () => void } {
  const seen = new Set<string>();
  const quiet = () => {};
  const logger: KafkaLogger = {
    error: (fields, message) => {
      const broker = typeof fields.broker === "string" ? `${fields.broker}: ` : "";
      const condition = `${broker}${message.replace(/^\[[^\]]*\]\s*/, "")}`;
      if (seen.has(condition)) return;
      seen.add(condition);
      notice(`Kafka: ${condition}; retrying (the run's state is safe)`);
    },
    warn: quiet,
    info: quiet,
    debug: quiet,
  };
  return {
    logger,
    recovered: () => {
      if (seen.size === 0) return;
      seen.clear();
      notice("Kafka: reachable again");
    },
  };
}

/** `work`, but no longer than `ms`: closing clients after broker restarts must not hang the CLI */
async function boundedClose(
  what: string,
  work: Promise<unknown>,
  ms: number,
  notice: (line: string) => void,
) {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((resolveLate) => {
    timer = setTimeout(() => resolveLate("late"), ms);
  });
  const outcome = await Promise.race([
    work.then(
      () => "done" as const,
      () => "done" as const,
    ),
    late,
  ]);
  clearTimeout(timer);
  if (outcome === "late") notice(`${what} did not close within ${Math.round(ms / 1000)} s; leaving it`);
}

/** The spec as the function processes see it: the brokers and the object store of the command line. */
export function clusterSpec(spec: QuestATrainingSpec, brokers: string[], s3: S3Location): QuestATrainingSpec {
  const storage: QuestATrainingSpec["storage"] = { ...spec.storage, bucket: s3.bucket, prefix: s3.prefix };
  if (s3.endpoint === undefined) {
    delete storage.endpoint;
  } else {
    storage.endpoint = s3.endpoint;
    storage.forcePathStyle = true;
  }
  return { ...spec, kafka: { ...spec.kafka, brokers }, storage };
}

/** Environment of one function process: exactly the plain variables the operator sets on its pod. */
export function functionProcessEnv(
  runRef: RunRef,
  spec: QuestATrainingSpec,
  fn: ProcessName,
  configPath: string,
  inherited: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) if (value !== undefined) env[name] = value;
  for (const entry of functionEnv(runRef, spec, fn, derivedRunNames(runRef, spec))) {
    const { name, value } = entry as { name: string; value?: unknown };
    // HOME=/tmp suits a read-only container, not a workstation; secrets are references there
    if (name === "HOME" || typeof value !== "string") continue;
    env[name] = value;
  }
  // rollout.engine vllm: the servers the user started (a pod's service name means nothing here)
  if (inherited.QUESTA_VLLM_ENDPOINTS !== undefined)
    env.QUESTA_VLLM_ENDPOINTS = inherited.QUESTA_VLLM_ENDPOINTS;
  // a pod's group names the pod; here the sync's default (`<topic prefix>.vllm-sync.<host name>`)
  if (fn === VLLM_SYNC) delete env.QUESTA_CONSUMER_GROUP;
  env.QUESTA_CONFIG = configPath;
  // the user's own machine: local dataset paths are theirs to read (pods get object-store only)
  env.QUESTA_DATA_SOURCES = "any";
  // several functions on one machine: each health server takes a free port on loopback
  env.QUESTA_METRICS_PORT = "0";
  env.QUESTA_METRICS_HOST = "127.0.0.1";
  // a process that died is restarted within a second here: let the group hand its partitions on
  // sooner than a pod's default (kafka-bus.ts DEFAULT_SESSION_TIMEOUT_MS); the user's setting wins
  env.QUESTA_KAFKA_SESSION_TIMEOUT_MS ??= String(PROCESSES_SESSION_TIMEOUT_MS);
  return env;
}

/** the processes of a run here: its four functions, and the weight sync beside a local vLLM server */
export type ProcessName = FunctionName | typeof VLLM_SYNC;

/** Kafka session timeout of function processes on one machine: the recovery time after a kill -9 */
export const PROCESSES_SESSION_TIMEOUT_MS = 10_000;

/** A function process exited more often than the supervisor restarts it. */
export class FunctionProcessFailed extends Error {
  override readonly name = "FunctionProcessFailed";
}

interface Supervised {
  fn: ProcessName;
  child: ChildProcess | undefined;
  /** exits in a row, each soon after its start (reset by a process that ran a minute) */
  restarts: number;
  startedAt: number;
}

/** a process that ran this long before exiting was not crash-looping */
const HEALTHY_RUN_MS = 60_000;

/** Claims the run's place in the store for this spec, so a rerun resumes the same run, never another. */
async function claimRun(store: S3ObjectStore, keys: RunKeys, spec: QuestATrainingSpec): Promise<void> {
  const key = keys.key("run", "spec.json");
  const body = `${JSON.stringify({ spec }, null, 2)}\n`;
  const existing = await store.get(key);
  if (existing === undefined) {
    await store.put(key, body, { contentType: "application/json" });
    return;
  }
  if (new TextDecoder().decode(existing) !== body) {
    throw new InputError("run_mismatch", [
      {
        path: "metadata.name",
        message: `${store.uri(key)} belongs to a run started from a different spec (or seed)`,
        hint: "rename the run (metadata.name), or use another bucket or prefix",
      },
    ]);
  }
}

/**
 * Runs the whole pipeline as processes: creates the bucket and topics, spawns `questa function X`
 * for the four functions, follows the run's events until it finished and its final checkpoint was
 * evaluated (or `signal` aborts), then stops the processes (SIGTERM, they drain).
 */
export async function runProcesses(options: ProcessRunOptions): Promise<ProcessRunSummary> {
  const resource = options.resource;
  const run = resource.metadata.name;
  const runRef: RunRef = { name: run, namespace: resource.metadata.namespace ?? "default", uid: "" };
  const spec = clusterSpec(resource.spec, options.brokers, options.s3);
  const names = derivedRunNames(runRef, spec);
  const topicPrefix = names.topicPrefix;
  const logDir = join(options.runDir, "logs");
  await mkdir(logDir, { recursive: true });
  const configPath = join(options.runDir, "training.yaml");
  await writeFile(configPath, renderTrainingConfig(runRef, spec));

  // rollout.engine vllm and no servers named: a local server (started once the learn process wrote
  // the initial policy), rollout pointed at it and its weight sync as a process beside the functions
  const localVllm =
    spec.rollout.engine === "vllm" && !options.env[VLLM_ENDPOINTS_ENV]?.trim()
      ? {
          machine: await prepareLocalVllm(options.env),
          port: await freeLoopbackPort(),
          dir: join(options.runDir, "vllm"),
        }
      : undefined;
  const vllmUrl = localVllm && `http://127.0.0.1:${localVllm.port}`;
  const envOf = (fn: ProcessName) => {
    const env = functionProcessEnv(runRef, spec, fn, configPath, options.env);
    if (localVllm && vllmUrl) {
      if (fn === "rollout") env[VLLM_ENDPOINTS_ENV] = vllmUrl;
      if (fn === VLLM_SYNC) {
        env.QUESTA_VLLM_URL = vllmUrl;
        env.QUESTA_VLLM_MODEL_DIR = join(localVllm.dir, "models");
      }
    }
    return env;
  };
  const store = new S3ObjectStore(s3StoreConfigFromEnv(envOf("learn")));
  const kafka = kafkaNotices(options.notice);
  const bus = new KafkaBus(
    { brokers: options.brokers, clientId: `questa-${run}-cli` },
    { logLevel: "error", logger: kafka.logger },
  );
  const keys = new RunKeys(run);
  const children: Supervised[] = [];
  const vllmStop = new AbortController();
  options.signal.addEventListener("abort", () => vllmStop.abort(), { once: true });
  let localServer: RunningLocalVllm | undefined;
  let vllmStarting: Promise<RunningLocalVllm | undefined> | undefined;
  let stopping = false;
  let gaveUp: ((error: Error) => void) | undefined;
  const supervisorFailure = new Promise<unknown>((resolveFailure) => {
    gaveUp = resolveFailure;
  });
  const watcher = new RunWatcher({
    spec,
    report: (progress) => {
      // an event came through: Kafka answers
      kafka.recovered();
      options.report(progress);
    },
  });
  // a fresh group each time: the whole history of the run's events, from the beginning
  const watch = bindFunction(watcher.fn, {
    bus,
    store,
    run,
    topicPrefix,
    logger: silentLogger(),
    groupId: `${topicPrefix}.cli-${randomBytes(4).toString("hex")}`,
  });
  try {
    await store.ensureBucket();
    // the training spec, not where it runs: a rerun may reach the same Kafka and S3 by other addresses
    await claimRun(store, keys, resource.spec);
    await bus.ensureTopics(runTopics(topicPrefix, spec.kafka));
    await watch.start();

    const start = (entry: Supervised) => {
      const log = createWriteStream(join(logDir, `${entry.fn}.log`), { flags: "a" });
      const child = spawn(
        process.execPath,
        [options.questaBin, "function", entry.fn, "--config", configPath],
        { env: envOf(entry.fn), stdio: ["ignore", "pipe", "pipe"] },
      );
      child.stdout?.pipe(log, { end: false });
      child.stderr?.pipe(log, { end: false });
      entry.child = child;
      entry.startedAt = Date.now();
      options.notice(`started ${entry.fn} (pid ${child.pid})`);
      // "close": after the process exited and its output reached the log
      child.once("close", (code, signal) => {
        log.end();
        // Ctrl-C reaches the functions too: they drain and exit while this process stops
        if (stopping || options.signal.aborted) return;
        const how = signal === null ? `code ${code}` : `signal ${signal}`;
        if (Date.now() - entry.startedAt >= HEALTHY_RUN_MS) entry.restarts = 0;
        if (entry.restarts >= (options.maxRestarts ?? 5)) {
          options.notice(
            `${entry.fn} (pid ${child.pid}) exited (${how}); giving up after ${entry.restarts} restarts`,
          );
          gaveUp?.(
            new FunctionProcessFailed(
              `the ${entry.fn} function keeps exiting (${how}); see ${join(logDir, `${entry.fn}.log`)}`,
            ),
          );
          return;
        }
        // a pause that grows as a crash-looping pod's does (1 s, 2 s, 4 s ... 30 s)
        const delayMs = Math.min(30_000, 1000 * 2 ** entry.restarts);
        entry.restarts++;
        options.notice(`${entry.fn} (pid ${child.pid}) exited (${how}); restarting`);
        setTimeout(() => {
          if (!stopping) start(entry);
        }, delayMs);
      });
    };
    const functionsStarted = Date.now();
    const processes: ProcessName[] = localVllm ? [...FUNCTIONS, VLLM_SYNC] : [...FUNCTIONS];
    for (const fn of processes) {
      const entry: Supervised = { fn, child: undefined, restarts: 0, startedAt: Date.now() };
      children.push(entry);
      start(entry);
    }
    // the server starts once the learn process wrote the initial policy; undefined when stopped first
    vllmStarting =
      localVllm &&
      (async (): Promise<RunningLocalVllm | undefined> => {
        while (!(await initialCheckpointRef(store, keys).catch(() => undefined))) {
          if (vllmStop.signal.aborted) return undefined;
          await new Promise((resolveWait) => setTimeout(resolveWait, 1000));
        }
        localServer = await startLocalVllm({
          machine: localVllm.machine,
          store,
          initialCheckpoint: keys.checkpoint(0),
          dir: localVllm.dir,
          servedModelName: run,
          vllm: spec.rollout.vllm,
          // rollout samples every partition's question at once
          sequencesInFlight: spec.kafka.partitions * spec.rollout.groupSize,
          env: options.env,
          say: options.notice,
          signal: vllmStop.signal,
          port: localVllm.port,
        });
        return localServer;
      })();
    // the local server did not start, or keeps dying: the run fails (a stop is no failure)
    const vllmFailure = vllmStarting?.then(
      (server) => server?.server.failed ?? new Promise<never>(() => {}),
      (error: unknown) => (vllmStop.signal.aborted ? new Promise<never>(() => {}) : error),
    );

    const failure = Promise.race([
      watch.done.then(
        () => undefined,
        (error: unknown) => error,
      ),
      supervisorFailure,
      ...(vllmFailure ? [vllmFailure] : []),
    ]);
    await watcher.untilComplete(options.signal, failure);
    let vllm: VllmRunSummary | undefined;
    if (localServer) {
      // the weight sync takes the final policy to the server a moment after the learner published it
      if (watcher.complete) await servedStepReaches(localServer.url, watcher.step, 60_000);
      vllm = {
        local: {
          url: localServer.url,
          device: localServer.device,
          ...localServer.server.stats,
          logFile: localServer.server.logFile,
        },
        servedStep: await servedStepOf(localServer.url),
      };
    }
    if (watcher.complete) options.onComplete?.();
    return {
      run,
      objects: `s3://${options.s3.bucket}/${names.storePrefix}${run}/`,
      logDir,
      finished: watcher.complete,
      interrupted: options.signal.aborted && !watcher.complete,
      step: watcher.step,
      evaluations: watcher.evaluations,
      deadLetters: watcher.deadLetters,
      deadLetterReasons: watcher.deadLetterReasons,
      deadLetterTopic: `${topicPrefix}.dead-letter`,
      ...(vllm ? { vllm } : {}),
      throughput: {
        wallSeconds: (Date.now() - functionsStarted) / 1000,
        sampledTokens: watcher.sampledTokens,
        samplingTokensPerSecond: watcher.engineSamplingTokensPerSecond,
        trainTokensPerSecond: watcher.trainTokensPerSecond,
        logProbGap: watcher.logProbGap,
      },
    };
  } finally {
    stopping = true;
    await Promise.all(children.map((entry) => stopChild(entry)));
    // after rollout and the sync: the local server goes last (or stops loading)
    vllmStop.abort();
    await vllmStarting?.catch(() => undefined);
    await localServer?.server.stop();
    await boundedClose("the event watcher", watch.stop(), 15_000, options.notice);
    await boundedClose("the Kafka client", bus.close(), 15_000, options.notice);
    store.close();
  }
}

/** the learner step the server at `url` serves; -1 when it does not answer */
async function servedStepOf(url: string): Promise<number> {
  return servedStep(await new VllmHttpServer(url).weightVersion().catch(() => "unknown"));
}

/** waits (at most `ms`) until the server serves `step` */
async function servedStepReaches(url: string, step: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && (await servedStepOf(url)) < step) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 500));
  }
}

/** SIGTERM (the function drains and commits), SIGKILL if it is still there after the grace period. */
async function stopChild(entry: Supervised, graceMs = 30_000): Promise<void> {
  const child = entry.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}
