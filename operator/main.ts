import { hostname } from "node:os";
import { z } from "zod";
import type { KafkaSpec } from "../functions/contracts/questatraining.ts";
import { systemClock } from "../functions/runtime/clock.ts";
import { InputError, schemaInputError } from "../functions/runtime/errors.ts";
import {
  KafkaBus,
  type KafkaConnectionConfig,
  kafkaConnectionConfigFromEnv,
} from "../functions/runtime/kafka-bus.ts";
import { createLogger } from "../functions/runtime/logger.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import type { ArtifactAccess, ArtifactLocation } from "./artifacts.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "./kube-client.ts";
import { OperatorMetrics } from "./metrics.ts";
import { Operator, startHttpServer } from "./operator.ts";
import type { KafkaRefusal, RunKafka } from "./questatraining-controller.ts";

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
  QUESTA_ALLOWED_IMAGES: z
    .string()
    .optional()
    .describe("comma-separated image prefixes a run's spec.image must start with; empty = any image"),
  QUESTA_ARTIFACT_STORES: z
    .string()
    .optional()
    .describe(
      "comma-separated bucket@endpoint (or bucket, for AWS) where the operator may delete a run's objects; empty = nowhere",
    ),
  QUESTA_EXTERNAL_CALL_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
  QUESTA_CLEANUP_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(15 * 60_000),
  QUESTA_NETWORK_POLICY: z.enum(["true", "false"]).default("false"),
  QUESTA_NETWORK_POLICY_METRICS_FROM: z
    .string()
    .default("[]")
    .describe("JSON array of NetworkPolicyPeers allowed to scrape the functions' metrics port"),
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
  throw schemaInputError("invalid_operator_config", parsed.error, {
    hint: (issue) =>
      `set the environment variable ${issue.path.join(".")} (or --${String(issue.path[0])
        .replace(/^QUESTA_/, "")
        .toLowerCase()
        .replaceAll("_", "-")}=...)`,
  });
}

const sortedKey = (brokers: readonly string[]) => [...brokers].sort().join(",");

/**
 * Kafka connections per broker list. A run whose brokers are the operator's own (or that names
 * none) goes through the operator's connection (QUESTA_KAFKA_*: its TLS and SASL). Other brokers
 * are dialled with the spec's TLS (the operator's CA, else the system's), with short timeouts, and
 * never when the spec asks for SASL or a client certificate: those credentials are in the run's
 * Secrets, which the operator does not read, and dialling without them would weaken the spec.
 */
export function kafkaConnections(
  defaults: KafkaConnectionConfig | undefined,
  options: { logLevel?: "nothing" | "error" | "warn" } = {},
) {
  const buses = new Map<string, KafkaBus>();
  const busFor = (key: string, make: () => KafkaBus) => {
    let bus = buses.get(key);
    if (!bus) {
      bus = make();
      buses.set(key, bus);
    }
    return bus;
  };
  const runKafka = (bus: KafkaBus): RunKafka => {
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
  };
  const logLevel = options.logLevel ?? "warn";
  return {
    kafkaFor(kafka: KafkaSpec): RunKafka | KafkaRefusal {
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
      const key = sortedKey(brokers);
      if (defaults && sortedKey(defaults.brokers) === key) {
        return runKafka(busFor(`own:${key}`, () => new KafkaBus(defaults, { logLevel })));
      }
      const needs = [
        ...(kafka.sasl ? [`SASL ${kafka.sasl.mechanism}`] : []),
        ...(kafka.tls?.clientCertificate ? ["a client certificate"] : []),
      ];
      if (needs.length > 0) {
        return {
          refused: `the operator does not connect to ${brokers.join(",")}: they need ${needs.join(" and ")} from the run's Secrets, which the operator never reads`,
        };
      }
      const ownCa = typeof defaults?.tls === "object" ? defaults.tls.ca : undefined;
      const tls = kafka.tls ? (ownCa === undefined ? true : { ca: ownCa }) : undefined;
      return runKafka(
        busFor(
          `${tls ? "tls" : "plain"}:${key}`,
          () =>
            new KafkaBus(
              {
                brokers,
                clientId: "questa-operator",
                ...(tls === undefined ? {} : { tls }),
                connectionTimeoutMs: 5_000,
                requestTimeoutMs: 15_000,
              },
              { logLevel, requestRetries: 2 },
            ),
        ),
      );
    },
    defaultBrokers: defaults?.brokers ?? [],
    close: async () => {
      await Promise.all([...buses.values()].map((bus) => bus.close()));
    },
  };
}

/** `bucket@endpoint` (or `bucket` for AWS), comma-separated */
export function parseArtifactStores(text: string | undefined): { bucket: string; endpoint?: string }[] {
  return (text ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => {
      const at = entry.indexOf("@");
      if (at < 0) return { bucket: entry };
      return { bucket: entry.slice(0, at), endpoint: entry.slice(at + 1).replace(/\/+$/, "") };
    });
}

/**
 * Object stores where the operator may delete a run's objects (questa.dev/delete-artifacts), with
 * its own credentials (the SDK chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY from the chart): only
 * the buckets and endpoints of the admin's allow-list, each call bounded by timeouts and the
 * finalizer's abort signal, listing keys only (no object is read).
 */
export function artifactStores(
  allowed: readonly { bucket: string; endpoint?: string }[],
  client: {
    caFile?: string | undefined;
    credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
    connectionTimeoutMs?: number;
    requestTimeoutMs?: number;
  } = {},
) {
  const stores = new Map<string, S3ObjectStore>();
  const normalize = (endpoint: string | undefined) => endpoint?.replace(/\/+$/, "");
  return (location: ArtifactLocation): ArtifactAccess => {
    const endpoint = normalize(location.endpoint);
    const listed = allowed.some((a) => a.bucket === location.bucket && normalize(a.endpoint) === endpoint);
    if (!listed) {
      return {
        refused: `s3://${location.bucket}${endpoint ? ` at ${endpoint}` : ""} is not in the operator's artifact-store allow-list (chart value artifactCleanup.allowedStores)`,
      };
    }
    const key = `${location.bucket}@${endpoint ?? "aws"}`;
    let store = stores.get(key);
    if (!store) {
      store = new S3ObjectStore({
        bucket: location.bucket,
        region: location.region,
        ...(endpoint === undefined ? {} : { endpoint }),
        forcePathStyle: location.forcePathStyle,
        ...(client.credentials ? { credentials: client.credentials } : {}),
        ...(client.caFile ? { caFile: client.caFile } : {}),
        // the operator's budget: a store that does not answer fails fast, the finalizer retries
        connectionTimeoutMs: client.connectionTimeoutMs ?? 5_000,
        requestTimeoutMs: client.requestTimeoutMs ?? 15_000,
        maxAttempts: 2,
      });
      stores.set(key, store);
    }
    const bound = store;
    return { store: { deleteUnder: (root, signal) => bound.deleteUnder(root, { signal }) } };
  };
}

function parsePeers(text: string): Record<string, unknown>[] {
  const parsed = z.array(z.record(z.string(), z.unknown())).safeParse(JSON.parse(text));
  if (parsed.success) return parsed.data;
  throw new InputError("invalid_operator_config", [
    {
      path: "QUESTA_NETWORK_POLICY_METRICS_FROM",
      message: "not a JSON array of NetworkPolicyPeers",
      hint: 'e.g. [{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
    },
  ]);
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
      artifactsFor: artifactStores(parseArtifactStores(config.QUESTA_ARTIFACT_STORES), {
        caFile: env.QUESTA_S3_CA_FILE || undefined,
      }),
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
      allowedImages: (config.QUESTA_ALLOWED_IMAGES ?? "")
        .split(",")
        .map((p) => p.trim())
        .filter((p) => p !== ""),
      externalCallTimeoutMs: config.QUESTA_EXTERNAL_CALL_TIMEOUT_MS,
      cleanupTimeoutMs: config.QUESTA_CLEANUP_TIMEOUT_MS,
      networkPolicy:
        config.QUESTA_NETWORK_POLICY === "true"
          ? { metricsFrom: parsePeers(config.QUESTA_NETWORK_POLICY_METRICS_FROM) }
          : undefined,
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
