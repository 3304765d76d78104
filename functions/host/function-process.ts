/**
 * What every function process (`questa function X`, one pod) shares: its settings from the
 * environment the operator sets (operator/resources/workloads.ts), the run's spec from the mounted
 * config file, and the Kafka bus and S3 store built from them.
 */
import { Registry } from "prom-client";
import { z } from "zod";
import type { OpenDataset } from "../augment/dataset-source.ts";
import type { QuestATraining, QuestATrainingSpec } from "../contracts/questatraining.ts";
import { KNOWN_EVENT_TYPES } from "../contracts/registry.ts";
import { readResourceFile } from "../contracts/resource-file.ts";
import { RunKeys } from "../contracts/run-keys.ts";
import { errorMessage, InputError, isUnavailable, schemaInputError } from "../runtime/errors.ts";
import { startHealthServer } from "../runtime/health-server.ts";
import { KafkaBus, kafkaConnectionConfigFromEnv } from "../runtime/kafka-bus.ts";
import { createLogger, type Logger } from "../runtime/logger.ts";
import { S3ObjectStore, type S3StoreConfig, s3StoreConfigFromEnv } from "../runtime/s3-object-store.ts";
import { datasetOpener } from "./dataset-opener.ts";

export const FunctionEnvSchema = z.object({
  QUESTA_RUN: z.string().min(1),
  QUESTA_CONFIG: z.string().min(1).describe("path of the run's training.yaml (the validated spec)"),
  QUESTA_TOPIC_PREFIX: z.string().min(1),
  QUESTA_CONSUMER_GROUP: z.string().min(1).optional(),
  QUESTA_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  QUESTA_METRICS_HOST: z.string().min(1).default("0.0.0.0"),
  QUESTA_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "silent"]).default("info"),
  /** how soon Kafka gives a dead process's partitions to its replacement; default 20 s (kafka-bus.ts DEFAULT_SESSION_TIMEOUT_MS) */
  QUESTA_KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).optional(),
  /** "object-store" (what the operator sets on pods): datasets and models only from s3:// URIs */
  QUESTA_DATA_SOURCES: z.enum(["object-store", "any"]).default("any"),
  /** where the learner caches warm-started policies across runs; unset = no cache */
  QUESTA_CACHE_DIR: z.string().min(1).optional(),
});
export type FunctionEnv = z.infer<typeof FunctionEnvSchema>;

/** Reads the environment, every problem at once with the variable it concerns. */
export function parseFunctionEnv(env: Record<string, string | undefined>): FunctionEnv {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = FunctionEnvSchema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw schemaInputError("invalid_environment", parsed.error, {
    hint: "the operator sets it on function pods; set it by hand to run a function elsewhere",
  });
}

/** The QuestATraining of the config file (one document, validated). */
export async function readTrainingConfig(path: string): Promise<QuestATraining> {
  // bounded (size, aliases, depth): the same limits as `questa validate`
  const documents = await readResourceFile(path, `QUESTA_CONFIG (${path})`);
  const first = documents[0]?.result;
  if (documents.length !== 1 || first === undefined) {
    throw new InputError("invalid_training_config", [
      {
        path: "QUESTA_CONFIG",
        message: `${path} holds ${documents.length} documents; expected one QuestATraining`,
      },
    ]);
  }
  if (!first.ok) throw new InputError("invalid_training_config", first.issues);
  return first.value;
}

export interface FunctionProcess {
  settings: FunctionEnv;
  resource: QuestATraining;
  run: string;
  topicPrefix: string;
  /** the run's keys in the store: under `<run>/` (the store's own prefix is `storage.prefix`) */
  keys: RunKeys;
  storeConfig: S3StoreConfig;
  store: S3ObjectStore;
  bus: KafkaBus;
  logger: Logger;
  /** datasets and model checkpoints: `s3://` URIs or local files */
  open: OpenDataset;
  /** what `bindFunction` takes besides the function and its services */
  bindOptions: {
    bus: KafkaBus;
    store: S3ObjectStore;
    run: string;
    topicPrefix: string;
    logger: Logger;
    seed: string;
    groupId?: string;
    knownTypes: ReadonlySet<string>;
    deadLetterKeyPrefix: string;
  };
  close(): Promise<void>;
}

/** Builds a function process's clients from its environment; `close` releases them. */
export async function openFunctionProcess(
  name: string,
  env: Record<string, string | undefined>,
  options: {
    /** partitions the consumer handles at once (each in order); default 1 */
    partitionsConsumedConcurrently?: (spec: QuestATrainingSpec) => number;
  } = {},
): Promise<FunctionProcess> {
  const settings = parseFunctionEnv(env);
  const resource = await readTrainingConfig(settings.QUESTA_CONFIG);
  const logger = createLogger({ name, level: settings.QUESTA_LOG_LEVEL });
  const storeConfig = s3StoreConfigFromEnv(env);
  const kafkaConfig = kafkaConnectionConfigFromEnv(env);
  const store = new S3ObjectStore(storeConfig);
  const bus = new KafkaBus(kafkaConfig, {
    logLevel: "error",
    partitionsConsumedConcurrently: options.partitionsConsumedConcurrently?.(resource.spec) ?? 1,
    ...(settings.QUESTA_KAFKA_SESSION_TIMEOUT_MS === undefined
      ? {}
      : {
          sessionTimeoutMs: settings.QUESTA_KAFKA_SESSION_TIMEOUT_MS,
          heartbeatIntervalMs: Math.max(100, Math.floor(settings.QUESTA_KAFKA_SESSION_TIMEOUT_MS / 10)),
        }),
  });
  const run = settings.QUESTA_RUN;
  return {
    settings,
    resource,
    run,
    topicPrefix: settings.QUESTA_TOPIC_PREFIX,
    keys: new RunKeys(run),
    storeConfig,
    store,
    bus,
    logger,
    open: datasetOpener(storeConfig, { localFiles: settings.QUESTA_DATA_SOURCES !== "object-store" }),
    bindOptions: {
      bus,
      store,
      run,
      topicPrefix: settings.QUESTA_TOPIC_PREFIX,
      logger,
      seed: `${run}:${resource.spec.seed}`,
      knownTypes: KNOWN_EVENT_TYPES,
      deadLetterKeyPrefix: new RunKeys(run).key("dead-letters"),
      ...(settings.QUESTA_CONSUMER_GROUP === undefined ? {} : { groupId: settings.QUESTA_CONSUMER_GROUP }),
    },
    close: async () => {
      await bus.close();
      store.close();
    },
  };
}

/** How a function's `main` is run: by the CLI (`questa function X`) or a test. */
export interface FunctionMainOptions {
  /** resolves when the process should drain and exit; default SIGTERM or SIGINT */
  shutdown?: Promise<unknown>;
  /** told the health server's URL once it listens */
  onListening?: (url: string) => void;
}

/** resolves on SIGTERM or SIGINT (what Kubernetes and Ctrl-C send) */
export function processShutdown(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
}

/** how long start-up waits for an unavailable object store or broker before the process gives up */
export const STARTUP_OUTAGE_BUDGET_MS = 15 * 60_000;

/**
 * Runs a long start-up step (a warm start, waiting for the initial policy) behind a health server
 * that is alive but not ready, so the kubelet's liveness probe does not restart the pod meanwhile;
 * the server is closed before the function's own one takes the port. An unavailable dependency
 * (object store or broker down) is waited for, as the runtime does for messages: `work` is tried
 * again with backoff up to STARTUP_OUTAGE_BUDGET_MS, logged once when it starts and once when it
 * ends, instead of the process exiting into a crash loop.
 */
export async function whileStarting<T>(
  settings: FunctionEnv,
  work: () => Promise<T>,
  options: { logger?: Logger; sleep?: (ms: number) => Promise<void>; now?: () => number } = {},
): Promise<T> {
  const server = await startHealthServer({
    registry: new Registry(),
    isReady: () => false,
    host: settings.QUESTA_METRICS_HOST,
    port: settings.QUESTA_METRICS_PORT,
  });
  const now = options.now ?? Date.now;
  const sleep =
    options.sleep ?? ((ms: number) => new Promise<void>((resolveSleep) => setTimeout(resolveSleep, ms)));
  let outageSince: number | undefined;
  try {
    for (let waits = 0; ; waits++) {
      try {
        const result = await work();
        if (outageSince !== undefined) {
          options.logger?.warn(
            { seconds: Math.round((now() - outageSince) / 1000) },
            "start-up: dependency back; starting",
          );
        }
        return result;
      } catch (error) {
        if (!isUnavailable(error)) throw error;
        outageSince ??= now();
        if (now() - outageSince >= STARTUP_OUTAGE_BUDGET_MS) throw error;
        if (waits === 0) {
          options.logger?.warn(
            { reason: errorMessage(error) },
            "start-up: a dependency is unavailable; waiting for it",
          );
        }
        await sleep(Math.min(30_000, 500 * 2 ** Math.min(waits, 6)));
      }
    }
  } finally {
    await server.close();
  }
}
