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
import type { EvaluationResultData } from "../functions/contracts/events.ts";
import type { QuestATraining, QuestATrainingSpec } from "../functions/contracts/questatraining.ts";
import { RunKeys } from "../functions/learn/run-keys.ts";
import { type RunProgress, RunWatcher } from "../functions/pipeline/run-watcher.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { bindFunction } from "../functions/runtime/runner.ts";
import { S3ObjectStore, s3StoreConfigFromEnv } from "../functions/runtime/s3-object-store.ts";
import { renderTrainingConfig } from "../operator/resources/config-map.ts";
import { FUNCTIONS, type FunctionName, type RunRef } from "../operator/resources/names.ts";
import { runTopics, topicPrefixOf } from "../operator/resources/topics.ts";
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
}

export interface ProcessRunSummary {
  run: string;
  objects: string;
  logDir: string;
  finished: boolean;
  interrupted: boolean;
  step: number;
  evaluations: EvaluationResultData[];
  deadLetters: number;
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
  fn: FunctionName,
  configPath: string,
  inherited: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) if (value !== undefined) env[name] = value;
  for (const entry of functionEnv(runRef, spec, fn)) {
    const { name, value } = entry as { name: string; value?: unknown };
    // HOME=/tmp suits a read-only container, not a workstation; secrets are references there
    if (name === "HOME" || typeof value !== "string") continue;
    env[name] = value;
  }
  env.QUESTA_CONFIG = configPath;
  // several functions on one machine: each health server takes a free port on loopback
  env.QUESTA_METRICS_PORT = "0";
  env.QUESTA_METRICS_HOST = "127.0.0.1";
  return env;
}

/** A function process exited more often than the supervisor restarts it. */
export class FunctionProcessFailed extends Error {
  override readonly name = "FunctionProcessFailed";
}

interface Supervised {
  fn: FunctionName;
  child: ChildProcess | undefined;
  restarts: number;
}

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
  const topicPrefix = topicPrefixOf(runRef, spec.kafka);
  const logDir = join(options.runDir, "logs");
  await mkdir(logDir, { recursive: true });
  const configPath = join(options.runDir, "training.yaml");
  await writeFile(configPath, renderTrainingConfig(runRef, spec));

  const envOf = (fn: FunctionName) => functionProcessEnv(runRef, spec, fn, configPath, options.env);
  const store = new S3ObjectStore(s3StoreConfigFromEnv(envOf("learn")));
  const bus = new KafkaBus(
    { brokers: options.brokers, clientId: `questa-${run}-cli` },
    { logLevel: "error" },
  );
  const keys = new RunKeys(run);
  const children: Supervised[] = [];
  let stopping = false;
  let gaveUp: ((error: Error) => void) | undefined;
  const supervisorFailure = new Promise<unknown>((resolveFailure) => {
    gaveUp = resolveFailure;
  });
  const watcher = new RunWatcher({ spec, report: options.report });
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
    await bus.ensureTopics(runTopics(runRef, spec.kafka));
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
      options.notice(`started ${entry.fn} (pid ${child.pid})`);
      // "close": after the process exited and its output reached the log
      child.once("close", (code, signal) => {
        log.end();
        // Ctrl-C reaches the functions too: they drain and exit while this process stops
        if (stopping || options.signal.aborted) return;
        const how = signal === null ? `code ${code}` : `signal ${signal}`;
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
        entry.restarts++;
        options.notice(`${entry.fn} (pid ${child.pid}) exited (${how}); restarting`);
        // a short pause, as a crash-looping pod gets: a function failing at once does not spin
        setTimeout(() => {
          if (!stopping) start(entry);
        }, 1000);
      });
    };
    for (const fn of FUNCTIONS) {
      const entry: Supervised = { fn, child: undefined, restarts: 0 };
      children.push(entry);
      start(entry);
    }

    const failure = Promise.race([
      watch.done.then(
        () => undefined,
        (error: unknown) => error,
      ),
      supervisorFailure,
    ]);
    await watcher.untilComplete(options.signal, failure);
    return {
      run,
      objects: `s3://${options.s3.bucket}/${options.s3.prefix}${run}/`,
      logDir,
      finished: watcher.complete,
      interrupted: options.signal.aborted,
      step: watcher.step,
      evaluations: watcher.evaluations,
      deadLetters: watcher.deadLetters,
    };
  } finally {
    stopping = true;
    await Promise.all(children.map((entry) => stopChild(entry)));
    await watch.stop();
    await bus.close();
    store.close();
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
