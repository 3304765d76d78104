import { hostname } from "node:os";
import { z } from "zod";
import type { KafkaSpec, StorageSpec } from "../functions/contracts/questatraining.ts";
import { systemClock } from "../functions/runtime/clock.ts";
import { InputError } from "../functions/runtime/errors.ts";
import {
  KafkaBus,
  type KafkaConnectionConfig,
  kafkaConnectionConfigFromEnv,
} from "../functions/runtime/kafka-bus.ts";
import { createLogger } from "../functions/runtime/logger.ts";
import type { ObjectStore } from "../functions/runtime/object-store.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "./kube-client.ts";
import { OperatorMetrics } from "./metrics.ts";
import { Operator, startHttpServer } from "./operator.ts";
import type { RunKafka } from "./questatraining-controller.ts";

/** The operator's settings, from the environment (the chart sets them) or `--flag=value` arguments. */
export const OperatorConfigSchema = z.object({
  QUESTA_OPERATOR_IMAGE: z.string().min(1).describe("function image when a run names none"),
  QUESTA_WATCH_NAMESPACE: z.string().optional().describe("watch one namespace; empty = all namespaces"),
  QUESTA_LEADER_ELECT: z.enum(["true", "false"]).default("true"),
  QUESTA_LEADER_ELECTION_NAMESPACE: z.string().min(1).default("default"),
  QUESTA_LEADER_ELECTION_LEASE: z.string().min(1).default("questa-operator"),
  QUESTA_METRICS_PORT: z.coerce.number().int().min(1).max(65535).default(8080),
  QUESTA_AUTOSCALE_INTERVAL_MS: z.coerce.number().int().min(1000).default(15_000),
  QUESTA_LAG_PER_REPLICA: z.coerce.number().int().min(1).default(64),
  QUESTA_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
  POD_NAME: z.string().min(1).optional().describe("this replica's identity (downward API)"),
  KUBECONFIG: z.string().optional(),
  KUBERNETES_SERVICE_HOST: z.string().optional(),
});
export type OperatorConfig = z.infer<typeof OperatorConfigSchema>;

export function parseOperatorConfig(
  env: Record<string, string | undefined>,
  argv: readonly string[],
): OperatorConfig {
  const merged: Record<string, string | undefined> = { ...env };
  for (const arg of argv) {
    const match = /^--([a-z-]+)=(.*)$/.exec(arg);
    if (!match) continue;
    merged[`QUESTA_${match[1]!.toUpperCase().replaceAll("-", "_")}`] = match[2];
  }
  const cleaned = Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = OperatorConfigSchema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new InputError(
    "invalid_operator_config",
    parsed.error.issues.map((issue) => ({
      path: issue.path.join("."),
      message: issue.message,
      hint: `set the environment variable ${issue.path.join(".")} (or --${String(issue.path[0])
        .replace(/^QUESTA_/, "")
        .toLowerCase()
        .replaceAll("_", "-")}=...)`,
    })),
  );
}

/** Kafka connections per broker list: the operator's own (QUESTA_KAFKA_* env) for runs that name no brokers. */
function kafkaConnections(defaults: KafkaConnectionConfig | undefined) {
  const buses = new Map<string, KafkaBus>();
  return {
    kafkaFor(kafka: KafkaSpec): RunKafka {
      const brokers = kafka.brokers.length > 0 ? [...kafka.brokers] : (defaults?.brokers ?? []);
      if (brokers.length === 0) {
        throw new InputError("no_kafka_brokers", [
          {
            path: "spec.kafka.brokers",
            message: "no brokers",
            hint: "list brokers or install the operator with kafka.brokers",
          },
        ]);
      }
      const key = [...brokers].sort().join(",");
      let bus = buses.get(key);
      if (!bus) {
        const sameCluster = defaults && [...defaults.brokers].sort().join(",") === key;
        bus = new KafkaBus(sameCluster ? defaults : { brokers, clientId: "questa-operator" });
        buses.set(key, bus);
      }
      const admin = bus.admin;
      return {
        bus,
        topics: {
          ensureTopics: async (topics) => {
            await admin.ensureTopics(topics);
          },
          deleteTopics: async (names) => await admin.deleteTopics(names),
        },
        lag: {
          lag: async (groupId, topics) =>
            (await admin.groupLag(groupId, topics)).reduce((sum, p) => sum + p.lag, 0),
        },
      };
    },
    defaultBrokers: defaults?.brokers ?? [],
    close: async () => {
      await Promise.all([...buses.values()].map((bus) => bus.close()));
    },
  };
}

/**
 * Object stores for deleting a run's artifacts when it asks for that; credentials come from the
 * operator's own environment (the SDK chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the chart).
 */
function artifactStores(defaultEndpoint: string | undefined) {
  const stores = new Map<string, ObjectStore>();
  return (storage: StorageSpec): ObjectStore | undefined => {
    if (storage.bucket === undefined) return undefined;
    const endpoint = storage.endpoint ?? defaultEndpoint;
    const key = `${storage.bucket}@${endpoint ?? "aws"}`;
    let store = stores.get(key);
    if (!store) {
      store = new S3ObjectStore({
        bucket: storage.bucket,
        region: storage.region,
        ...(endpoint === undefined ? {} : { endpoint }),
        ...(storage.forcePathStyle ? { forcePathStyle: true } : {}),
      });
      stores.set(key, store);
    }
    return store;
  };
}

export async function main(env = process.env, argv = process.argv.slice(2)): Promise<void> {
  const config = parseOperatorConfig(env, argv);
  const log = createLogger({ level: config.QUESTA_LOG_LEVEL, name: "questa-operator" });
  const kubeConfig = loadKubeConfig({
    kubeconfigPath: config.KUBECONFIG,
    inCluster: config.KUBECONFIG === undefined && config.KUBERNETES_SERVICE_HOST !== undefined,
  });
  const api = new ClientNodeKubeApi(kubeConfig);
  const kafkaDefaults = env.QUESTA_KAFKA_BROKERS ? kafkaConnectionConfigFromEnv(env) : undefined;
  const kafka = kafkaConnections(kafkaDefaults);
  const metrics = new OperatorMetrics();
  const identity = config.POD_NAME ?? `${hostname()}-${process.pid}`;
  const operator = new Operator(
    {
      api,
      kafkaFor: kafka.kafkaFor,
      artifactsFor: artifactStores(env.QUESTA_S3_ENDPOINT || undefined),
      clock: systemClock,
      metrics,
      log,
    },
    {
      defaultImage: config.QUESTA_OPERATOR_IMAGE,
      defaultKafkaBrokers: kafka.defaultBrokers,
      namespace: config.QUESTA_WATCH_NAMESPACE,
      instance: identity,
      autoscaleIntervalMs: config.QUESTA_AUTOSCALE_INTERVAL_MS,
      lagPerReplica: config.QUESTA_LAG_PER_REPLICA,
      leaderElection: {
        enabled: config.QUESTA_LEADER_ELECT === "true",
        namespace: config.QUESTA_LEADER_ELECTION_NAMESPACE,
        leaseName: config.QUESTA_LEADER_ELECTION_LEASE,
      },
    },
  );
  const server = await startHttpServer(metrics, config.QUESTA_METRICS_PORT);
  await operator.start();
  log.info({ identity, port: config.QUESTA_METRICS_PORT }, "questa operator started");
  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down: releasing the lease");
    await operator.stop({ release: true });
    await kafka.close();
    server.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((error: unknown) => {
    process.stderr.write(`questa-operator: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
