import { readFileSync } from "node:fs";
import {
  type Admin,
  type EachBatchPayload,
  type IHeaders,
  Kafka,
  type KafkaConfig,
  type Consumer as KafkaJsConsumer,
  type Producer as KafkaJsProducer,
  type KafkaMessage,
  logLevel as kafkaLogLevel,
  type LogEntry,
  Partitioners,
  type SASLOptions,
} from "kafkajs";
import { z } from "zod";
import type {
  Bus,
  BusMessage,
  Consumer,
  ConsumerOptions,
  Headers,
  MessageHandler,
  OutgoingMessage,
  TopicSpec,
} from "./bus.ts";
import {
  DeadLetterError,
  InputError,
  type InputIssue,
  isUnavailable,
  schemaInputError,
  UnavailableError,
} from "./errors.ts";

/**
 * The Kafka implementation of `Bus` (the only module that imports kafkajs, so swapping to
 * `@confluentinc/kafka-javascript`'s KafkaJS-compatible API touches this file alone).
 *
 * Delivery: idempotent producer with `acks=all`; consumers commit a message's offset only after
 * the handler resolved (its output is durable), partition by partition, so delivery is
 * at-least-once and per-key ordered. A handler rejection stops the consumer without committing
 * that message; `stop()` finishes the in-flight message and commits what finished.
 */

// ---------------------------------------------------------------------------------------------
// connection config

const filePath = z.string().min(1, "must be a file path");

export const KafkaSaslMechanism = {
  plain: "plain",
  scramSha256: "scram-sha-256",
  scramSha512: "scram-sha-512",
} as const;
export type KafkaSaslMechanism = (typeof KafkaSaslMechanism)[keyof typeof KafkaSaslMechanism];

export const KafkaConnectionConfigSchema = z
  .object({
    brokers: z
      .array(z.string().regex(/^[^\s:/]+:\d{1,5}$/, "must be host:port"))
      .min(1, "needs at least one broker"),
    clientId: z.string().min(1).default("questa"),
    /** `true` = TLS with the system's CAs; an object names PEM files (a mounted secret) */
    tls: z
      .union([
        z.boolean(),
        z.object({
          ca: filePath.optional().describe("PEM file of the CA that signed the brokers' certificates"),
          cert: filePath.optional().describe("PEM client certificate (mutual TLS)"),
          key: filePath.optional().describe("PEM private key of the client certificate"),
          rejectUnauthorized: z.boolean().default(true),
        }),
      ])
      .optional(),
    sasl: z
      .object({
        mechanism: z.enum([
          KafkaSaslMechanism.plain,
          KafkaSaslMechanism.scramSha256,
          KafkaSaslMechanism.scramSha512,
        ]),
        username: z.string().min(1),
        password: z.string().min(1).optional(),
        /** a mounted secret file holding the password (trailing newline ignored) */
        passwordFile: filePath.optional(),
      })
      .refine((sasl) => (sasl.password === undefined) !== (sasl.passwordFile === undefined), {
        message: "set exactly one of password and passwordFile",
        path: ["password"],
      })
      .optional(),
    connectionTimeoutMs: z.number().int().positive().default(10_000),
    requestTimeoutMs: z.number().int().positive().default(30_000),
  })
  .refine(
    (config) =>
      typeof config.tls !== "object" || (config.tls.cert === undefined) === (config.tls.key === undefined),
    { message: "a client certificate needs both cert and key", path: ["tls", "cert"] },
  );
export type KafkaConnectionConfig = z.infer<typeof KafkaConnectionConfigSchema>;
export type KafkaConnectionConfigInput = z.input<typeof KafkaConnectionConfigSchema>;

/** validates a connection config, reporting every problem with its path */
export function parseKafkaConnectionConfig(input: unknown): KafkaConnectionConfig {
  const parsed = KafkaConnectionConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw schemaInputError("invalid_kafka_config", parsed.error);
}

/**
 * Reads the connection config from `QUESTA_KAFKA_*` variables (what the operator sets on pods):
 * BROKERS (comma-separated), CLIENT_ID, TLS ("true"), TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
 * SASL_MECHANISM, SASL_USERNAME, SASL_PASSWORD or SASL_PASSWORD_FILE.
 */
export function kafkaConnectionConfigFromEnv(env: Record<string, string | undefined>): KafkaConnectionConfig {
  const get = (name: string) => {
    const value = env[`QUESTA_KAFKA_${name}`]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const tlsFiles = { ca: get("TLS_CA_FILE"), cert: get("TLS_CERT_FILE"), key: get("TLS_KEY_FILE") };
  const anyTlsFile = Object.values(tlsFiles).some((v) => v !== undefined);
  const mechanism = get("SASL_MECHANISM");
  return parseKafkaConnectionConfig({
    brokers: (get("BROKERS") ?? "").split(",").flatMap((b) => (b.trim() === "" ? [] : [b.trim()])),
    clientId: get("CLIENT_ID"),
    tls: anyTlsFile ? dropUndefined(tlsFiles) : get("TLS") === "true" ? true : undefined,
    sasl:
      mechanism === undefined
        ? undefined
        : dropUndefined({
            mechanism: mechanism.toLowerCase(),
            username: get("SASL_USERNAME"),
            password: get("SASL_PASSWORD"),
            passwordFile: get("SASL_PASSWORD_FILE"),
          }),
  });
}

function dropUndefined(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

/** turns the validated config into kafkajs options, reading the TLS and password files */
export function kafkaClientConfig(
  config: KafkaConnectionConfig,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): KafkaConfig {
  const issues: InputIssue[] = [];
  const read = (path: string, field: string): string | undefined => {
    try {
      return readFile(path);
    } catch (error) {
      issues.push({
        path: field,
        message: `cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
        hint: "mount the secret at that path or fix the path",
      });
      return undefined;
    }
  };
  let ssl: KafkaConfig["ssl"];
  if (config.tls === true) ssl = true;
  else if (typeof config.tls === "object") {
    const tls = config.tls;
    ssl = dropUndefined({
      rejectUnauthorized: tls.rejectUnauthorized,
      ca: tls.ca === undefined ? undefined : read(tls.ca, "tls.ca"),
      cert: tls.cert === undefined ? undefined : read(tls.cert, "tls.cert"),
      key: tls.key === undefined ? undefined : read(tls.key, "tls.key"),
    });
  }
  let sasl: SASLOptions | undefined;
  if (config.sasl) {
    const { mechanism, username } = config.sasl;
    const password =
      config.sasl.password ??
      (config.sasl.passwordFile === undefined
        ? undefined
        : read(config.sasl.passwordFile, "sasl.passwordFile")?.replace(/\r?\n$/, ""));
    if (password !== undefined) sasl = { mechanism, username, password };
  }
  if (issues.length > 0) throw new InputError("invalid_kafka_config", issues);
  return {
    brokers: config.brokers,
    clientId: config.clientId,
    connectionTimeout: config.connectionTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    ...(ssl === undefined ? {} : { ssl }),
    ...(sasl === undefined ? {} : { sasl }),
  };
}

// ---------------------------------------------------------------------------------------------
// errors

// the broker refused this message itself: retrying the same bytes cannot succeed
const messageRejections = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
  "INVALID_TIMESTAMP",
  "INVALID_REQUIRED_ACKS",
]);

// kafkajs gives up after its own retries with these; the cluster may well recover later
const transientNames = new Set([
  "KafkaJSNumberOfRetriesExceeded",
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSMetadataNotLoaded",
  "KafkaJSTopicMetadataNotLoaded",
  "KafkaJSStaleTopicMetadataAssignment",
  "KafkaJSGroupCoordinatorNotFound",
  "KafkaJSLockTimeout",
  "KafkaJSTimeout",
]);

const tlsFailure = /SSL routines|certificate|self[- ]signed|unable to verify|wrong version number/i;

function rootCause(error: Error): Error {
  let current = error;
  for (let depth = 0; depth < 10 && current.cause instanceof Error; depth++) current = current.cause;
  return current;
}

/**
 * Says what the caller should do with a kafkajs error: transient ones become `UnavailableError`,
 * a message the broker refuses becomes `DeadLetterError`, anything else (authorization, bad
 * config, bugs) is returned unchanged.
 */
export function classifyKafkaError(error: unknown, operation: string): unknown {
  if (!(error instanceof Error) || !error.name.startsWith("KafkaJS")) return error;
  const { type, retriable } = error as Error & { type?: unknown; retriable?: unknown };
  const message = `kafka ${operation}: ${error.message}`;
  if (typeof type === "string" && messageRejections.has(type)) {
    return new DeadLetterError("kafka_message_rejected", message, { cause: error });
  }
  // a failed TLS handshake is a configuration problem, however kafkajs wraps it
  if (tlsFailure.test(rootCause(error).message)) return error;
  if (retriable === true || transientNames.has(error.name) || connectionFailure(error)) {
    return new UnavailableError("kafka_unavailable", message, { cause: error });
  }
  return error;
}

const connectionCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** somewhere in the cause chain, the broker could not be reached (kafkajs wraps it as non-retriable once its own retries end) */
function connectionFailure(error: Error): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 10 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (transientNames.has(current.name) || (typeof code === "string" && connectionCodes.has(code)))
      return true;
    current = current.cause;
  }
  return false;
}

/** Kafka's UNKNOWN_TOPIC_OR_PARTITION (code 3), as kafkajs reports it */
function unknownTopic(error: unknown): boolean {
  return error instanceof Error && (error as { type?: unknown }).type === "UNKNOWN_TOPIC_OR_PARTITION";
}

async function kafkaCall<T>(operation: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw classifyKafkaError(error, operation);
  }
}

// ---------------------------------------------------------------------------------------------
// messages

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** kafkajs hands headers as Buffers (arrays when a key repeats: the first value wins) */
export function headersToStrings(headers: IHeaders | undefined): Headers {
  const out: Headers = {};
  if (!headers) return out;
  for (const name in headers) {
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined) continue;
    out[name] = typeof value === "string" ? value : value.toString("utf8");
  }
  return out;
}

export function toBusMessage(topic: string, partition: number, message: KafkaMessage): BusMessage {
  const value = message.value ?? Buffer.alloc(0);
  return {
    topic,
    partition,
    offset: message.offset,
    key: message.key === null ? undefined : message.key.toString("utf8"),
    headers: headersToStrings(message.headers),
    value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
    timestamp: Number(message.timestamp),
  };
}

// ---------------------------------------------------------------------------------------------
// logging

export interface KafkaLogger {
  error(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

export type KafkaLogLevel = "nothing" | "error" | "warn" | "info" | "debug";

const logLevels: Record<KafkaLogLevel, kafkaLogLevel> = {
  nothing: kafkaLogLevel.NOTHING,
  error: kafkaLogLevel.ERROR,
  warn: kafkaLogLevel.WARN,
  info: kafkaLogLevel.INFO,
  debug: kafkaLogLevel.DEBUG,
};

const stderrLogger: KafkaLogger = {
  error: (fields, message) => writeLog("error", fields, message),
  warn: (fields, message) => writeLog("warn", fields, message),
  info: (fields, message) => writeLog("info", fields, message),
  debug: (fields, message) => writeLog("debug", fields, message),
};

function writeLog(level: string, fields: Record<string, unknown>, message: string): void {
  process.stderr.write(`${JSON.stringify({ level, ...fields, msg: message })}\n`);
}

// bounded producer retries are a deliberate choice (see createProducer); kafkajs warns about it
const silencedLogs = [/^Limiting retries for the idempotent producer/];

function logCreatorFor(logger: KafkaLogger) {
  return () =>
    ({ level, log }: LogEntry) => {
      const { message, timestamp: _timestamp, logger: _name, ...fields } = log;
      if (silencedLogs.some((pattern) => pattern.test(message))) return;
      const entry = { component: "kafkajs", ...fields };
      if (level === kafkaLogLevel.ERROR) logger.error(entry, message);
      else if (level === kafkaLogLevel.WARN) logger.warn(entry, message);
      else if (level === kafkaLogLevel.INFO) logger.info(entry, message);
      else logger.debug(entry, message);
    };
}

// ---------------------------------------------------------------------------------------------
// admin

const topicName = /^[a-zA-Z0-9._-]{1,249}$/;

export interface TopicDescription {
  name: string;
  partitions: number;
  replicationFactor: number;
  /** `retention.ms`; -1 = forever */
  retentionMs: number;
  /** every topic config the broker reports (defaults included) */
  configs: Record<string, string>;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** next offset to be written */
  high: string;
  /** the group's committed offset, or -1 when it has none */
  committed: string;
  lag: number;
}

/** Topic and consumer-group administration (used by the bus and by the operator). */
export class KafkaAdmin {
  readonly #admin: Admin;
  #connected: Promise<void> | undefined;

  /** from a connection config (what the operator uses), or sharing a bus's kafkajs client */
  constructor(
    config: KafkaConnectionConfigInput | KafkaConnectionConfig | Kafka,
    options: KafkaClientOptions = {},
  ) {
    const kafka = config instanceof Kafka ? config : createKafkaClient(config, options);
    this.#admin = kafka.admin();
  }

  #connect(): Promise<void> {
    this.#connected ??= this.#admin.connect().catch((error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    return this.#connected;
  }

  /** creates the topics that do not exist yet; existing ones are left as they are */
  async ensureTopics(topics: readonly TopicSpec[]): Promise<string[]> {
    const issues: InputIssue[] = [];
    topics.forEach((spec, index) => {
      if (!topicName.test(spec.name)) {
        issues.push({
          path: `topics.${index}.name`,
          message: `${JSON.stringify(spec.name)} is not a Kafka topic name`,
          hint: "use 1-249 characters from a-z, A-Z, 0-9, '.', '_' and '-'",
        });
      }
      for (const field of ["partitions", "replicationFactor"] as const) {
        const value = spec[field];
        if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
          issues.push({ path: `topics.${index}.${field}`, message: `${value} is not a positive integer` });
        }
      }
      if (spec.retentionMs !== undefined && !(Number.isInteger(spec.retentionMs) && spec.retentionMs >= -1)) {
        issues.push({
          path: `topics.${index}.retentionMs`,
          message: "must be an integer >= -1 (-1 = forever)",
        });
      }
    });
    if (issues.length > 0) throw new InputError("invalid_topic_spec", issues);
    return await kafkaCall("ensureTopics", async () => {
      await this.#connect();
      const existing = new Set(await this.#admin.listTopics());
      const missing = topics.filter((spec) => !existing.has(spec.name));
      if (missing.length === 0) return [];
      // returns false when another creator won a race: those topics exist, which is all we need
      try {
        await this.#admin.createTopics({
          waitForLeaders: true,
          topics: missing.map((spec) => ({
            topic: spec.name,
            numPartitions: spec.partitions ?? -1,
            replicationFactor: spec.replicationFactor ?? -1,
            configEntries:
              spec.retentionMs === undefined
                ? []
                : [{ name: "retention.ms", value: String(spec.retentionMs) }],
          })),
        });
      } catch (error) {
        // while kafkajs waits for the new topics' leaders, a broker that has not caught up with the
        // creation answers UNKNOWN_TOPIC_OR_PARTITION, which kafkajs does not retry: wait for the
        // topics' metadata ourselves, a few seconds at most, and fail as before if it never comes
        if (!unknownTopic(error) || !(await this.#awaitLeaders(missing.map((spec) => spec.name))))
          throw error;
      }
      return missing.map((spec) => spec.name);
    });
  }

  /** true once every partition of the topics has a leader; false after ~5 s of asking */
  async #awaitLeaders(names: string[]): Promise<boolean> {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        const { topics } = await this.#admin.fetchTopicMetadata({ topics: names });
        if (topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)))
          return true;
      } catch (error) {
        if (!unknownTopic(error)) throw error;
      }
      await new Promise((resolveDelay) => setTimeout(resolveDelay, 250));
    }
    return false;
  }

  /** partitions, replication and configs of existing topics; unknown names are left out */
  async describeTopics(names: readonly string[]): Promise<TopicDescription[]> {
    return await kafkaCall("describeTopics", async () => {
      await this.#connect();
      const existing = new Set(await this.#admin.listTopics());
      const present = names.filter((name) => existing.has(name));
      if (present.length === 0) return [];
      const metadata = await this.#admin.fetchTopicMetadata({ topics: present });
      const configs = await this.#admin.describeConfigs({
        includeSynonyms: false,
        resources: present.map((name) => ({ type: 2 /* TOPIC */, name })),
      });
      return metadata.topics.map((topic) => {
        const entries = configs.resources.find((r) => r.resourceName === topic.name)?.configEntries ?? [];
        const config = Object.fromEntries(entries.map((e) => [e.configName, e.configValue]));
        return {
          name: topic.name,
          partitions: topic.partitions.length,
          replicationFactor: topic.partitions[0]?.replicas.length ?? 0,
          retentionMs: Number(config["retention.ms"] ?? "-1"),
          configs: config,
        };
      });
    });
  }

  /** deletes topics; ones that do not exist count as deleted */
  async deleteTopics(names: readonly string[]): Promise<void> {
    await kafkaCall("deleteTopics", async () => {
      await this.#connect();
      const existing = new Set(await this.#admin.listTopics());
      const present = names.filter((name) => existing.has(name));
      if (present.length > 0) await this.#admin.deleteTopics({ topics: present });
    });
  }

  async listTopics(): Promise<string[]> {
    return await kafkaCall("listTopics", async () => {
      await this.#connect();
      return (await this.#admin.listTopics()).filter((name) => !name.startsWith("__"));
    });
  }

  /**
   * Per-partition lag of a consumer group. A partition the group never committed counts from its
   * first retained message when `fromBeginning`, else from its end (where the group would start).
   */
  async groupLag(groupId: string, topics: readonly string[], fromBeginning = true): Promise<PartitionLag[]> {
    return await kafkaCall("groupLag", async () => {
      await this.#connect();
      const committed = await this.#admin.fetchOffsets({ groupId, topics: [...topics] });
      const result: PartitionLag[] = [];
      for (const topic of topics) {
        const ends = await this.#admin.fetchTopicOffsets(topic);
        const group = committed.find((c) => c.topic === topic)?.partitions ?? [];
        for (const end of ends) {
          const done = group.find((p) => p.partition === end.partition)?.offset ?? "-1";
          const from = BigInt(done) >= 0n ? BigInt(done) : fromBeginning ? BigInt(end.low) : BigInt(end.high);
          const lag = BigInt(end.high) - from;
          result.push({
            topic,
            partition: end.partition,
            high: end.high,
            committed: done,
            lag: Number(lag > 0n ? lag : 0n),
          });
        }
      }
      return result.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
    });
  }

  async close(): Promise<void> {
    if (this.#connected === undefined) return;
    this.#connected = undefined;
    await this.#admin.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// bus

export interface KafkaClientOptions {
  logger?: KafkaLogger;
  /** kafkajs log level; default "warn" */
  logLevel?: KafkaLogLevel;
  /** retries of connections and admin requests before they fail; default 5 (~10 s) */
  requestRetries?: number;
}

function createKafkaClient(
  config: KafkaConnectionConfigInput | KafkaConnectionConfig,
  options: KafkaClientOptions,
): Kafka {
  return new Kafka({
    ...kafkaClientConfig(parseKafkaConnectionConfig(config)),
    logLevel: logLevels[options.logLevel ?? "warn"],
    retry: { retries: options.requestRetries ?? 5, initialRetryTime: 300, maxRetryTime: 10_000 },
    logCreator: logCreatorFor(options.logger ?? stderrLogger),
  });
}

export interface KafkaBusOptions extends KafkaClientOptions {
  /** producer retries before `publish` fails with a RetryableError; default 10 (~1 minute) */
  publishRetries?: number;
  /** partitions a consumer processes at once (each in order); default 1 */
  partitionsConsumedConcurrently?: number;
  /** longest a consumer goes between commits inside a long batch; default 1000 ms */
  commitIntervalMs?: number;
  /** longest the broker holds an empty fetch; lower = less latency when idle; default 500 ms */
  maxWaitTimeMs?: number;
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * how long a consumer whose connection kafkajs gave up on keeps rejoining before it fails;
   * default 15 minutes (a broker restart or outage is waited for, not a reason to stop)
   */
  rejoinBudgetMs?: number;
  clock?: () => number;
}

export class KafkaBus implements Bus {
  readonly admin: KafkaAdmin;
  readonly #kafka: Kafka;
  readonly #options: KafkaBusOptions;
  readonly #consumers = new Set<KafkaConsumer>();
  #producer: KafkaJsProducer | undefined;
  #producerConnected: Promise<KafkaJsProducer> | undefined;
  #closed = false;

  constructor(config: KafkaConnectionConfigInput | KafkaConnectionConfig, options: KafkaBusOptions = {}) {
    this.#kafka = createKafkaClient(config, options);
    this.#options = options;
    this.admin = new KafkaAdmin(this.#kafka);
  }

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    await this.admin.ensureTopics(topics);
  }

  /** connects the producer now (publish otherwise connects on first use): fail fast at startup */
  async connect(): Promise<void> {
    await kafkaCall("connect", () => this.#producerReady());
  }

  #producerReady(): Promise<KafkaJsProducer> {
    if (this.#producerConnected) return this.#producerConnected;
    const producer = this.#kafka.producer({
      idempotent: true,
      // kafkajs keeps idempotent sequences exact only with one request in flight
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      // kafkajs' idempotent default retries forever; a bounded count lets publish fail as
      // RetryableError so the runtime backs off (duplicates are fine: delivery is at-least-once)
      retry: { retries: this.#options.publishRetries ?? 10, initialRetryTime: 200, maxRetryTime: 10_000 },
    });
    this.#producer = producer;
    this.#producerConnected = producer.connect().then(
      () => producer,
      (error: unknown) => {
        this.#producerConnected = undefined;
        throw error;
      },
    );
    return this.#producerConnected;
  }

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.#closed) throw new Error("KafkaBus.publish after close()");
    if (messages.length === 0) return;
    const producer = await kafkaCall("producer connect", () => this.#producerReady());
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.map((m) => ({
          key: m.key ?? null,
          value: toBuffer(m.value),
          headers: { ...m.headers },
        })),
      });
    } catch (error) {
      // after a failed send the idempotent producer's sequence numbers may be out of step with
      // the broker's; a fresh producer (new producer id) is the safe way back
      this.#dropProducer(producer);
      throw classifyKafkaError(error, `publish to ${topic}`);
    }
  }

  #dropProducer(producer: KafkaJsProducer): void {
    if (this.#producer !== producer) return;
    this.#producer = undefined;
    this.#producerConnected = undefined;
    void producer.disconnect().catch(() => {});
  }

  consumer(options: ConsumerOptions): Consumer {
    if (this.#closed) throw new Error("KafkaBus.consumer after close()");
    const consumer = new KafkaConsumer(this.#kafka, this.admin, options, this.#options, () =>
      this.#consumers.delete(consumer),
    );
    this.#consumers.add(consumer);
    return consumer;
  }

  /** stops every consumer gracefully (committing what finished), then disconnects */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#consumers].map((c) => c.stop()));
    if (this.#producerConnected) {
      await this.#producerConnected.catch(() => undefined);
      await this.#producer?.disconnect();
    }
    await this.admin.close();
  }
}

/**
 * How long the group waits for a consumer that stopped heartbeating (a killed process) before its
 * partitions move to another member: the recovery time after a function dies. Heartbeats go out
 * while a handler runs too, so a long handler (a slow rollout) never looks dead.
 */
export const DEFAULT_SESSION_TIMEOUT_MS = 20_000;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 2_000;

type ConsumerState = "idle" | "starting" | "running" | "stopping" | "stopped";

class KafkaConsumer implements Consumer {
  readonly done: Promise<void>;
  readonly #kafka: Kafka;
  /** the kafkajs consumer; replaced by a fresh one when the broker was away for longer than kafkajs retries */
  #consumer: KafkaJsConsumer;
  #handler: MessageHandler | undefined;
  /** when the current loss of the broker began (rejoins are retried until rejoinBudgetMs) */
  #lostSince: number | undefined;
  #rejoins = 0;
  readonly #admin: KafkaAdmin;
  readonly #options: ConsumerOptions;
  readonly #busOptions: KafkaBusOptions;
  readonly #onStopped: () => void;
  readonly #clock: () => number;
  #state: ConsumerState = "idle";
  #paused = false;
  #started = false;
  #stopping: Promise<void> | undefined;
  #settle!: { resolve: () => void; reject: (error: unknown) => void };

  constructor(
    kafka: Kafka,
    admin: KafkaAdmin,
    options: ConsumerOptions,
    busOptions: KafkaBusOptions,
    onStopped: () => void,
  ) {
    this.#admin = admin;
    this.#options = options;
    this.#busOptions = busOptions;
    this.#onStopped = onStopped;
    this.#clock = busOptions.clock ?? Date.now;
    this.#kafka = kafka;
    this.#consumer = this.#create();
    this.done = new Promise<void>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    // a rejection nobody awaits must not crash the process; awaiting `done` still sees it
    this.done.catch(() => {});
  }

  #create(): KafkaJsConsumer {
    const consumer = this.#kafka.consumer({
      groupId: this.#options.groupId,
      maxWaitTimeInMs: this.#busOptions.maxWaitTimeMs ?? 500,
      sessionTimeout: this.#busOptions.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
      heartbeatInterval: this.#busOptions.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      allowAutoTopicCreation: false,
    });
    consumer.on(consumer.events.CRASH, (event) => {
      // kafkajs restarts itself after transient failures; what it gives up on is ours to judge
      if (consumer !== this.#consumer || event.payload.restart) return;
      const error = classifyKafkaError(event.payload.error, "consume");
      if (isUnavailable(error) && this.#state === "running") void this.#rejoin(error);
      else this.#fail(error);
    });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      if (consumer !== this.#consumer || this.#lostSince === undefined) return;
      const seconds = Math.round((this.#clock() - this.#lostSince) / 1000);
      (this.#busOptions.logger ?? stderrLogger).warn(
        { groupId: this.#options.groupId, seconds },
        `consumer rejoined its group after the broker was away for ${seconds} s`,
      );
      this.#lostSince = undefined;
      this.#rejoins = 0;
    });
    return consumer;
  }

  /** connects, subscribes and runs the current kafkajs consumer */
  async #start(): Promise<void> {
    const handler = this.#handler!;
    await kafkaCall("consumer start", async () => {
      await this.#consumer.connect();
      await this.#consumer.subscribe({
        topics: [...this.#options.topics],
        fromBeginning: this.#options.fromBeginning ?? true,
      });
      // kafkajs may hand over the first batch before its run() resolves
      if (this.#state === "starting") this.#state = "running";
      await this.#consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.#busOptions.partitionsConsumedConcurrently ?? 1,
        eachBatch: (payload) => this.#eachBatch(payload, handler),
      });
    });
    this.#started = true;
    if (this.#paused && this.#state === "running") this.#applyPause();
  }

  /**
   * The broker was away for longer than kafkajs retries: a fresh kafkajs consumer joins the group
   * again once the broker answers (backing off, up to rejoinBudgetMs), rather than the function
   * stopping. Uncommitted messages are redelivered, as after any rebalance.
   */
  async #rejoin(error: unknown): Promise<void> {
    const now = this.#clock();
    this.#lostSince ??= now;
    if (now - this.#lostSince >= (this.#busOptions.rejoinBudgetMs ?? 15 * 60_000)) {
      this.#fail(error);
      return;
    }
    if (this.#rejoins === 0) {
      (this.#busOptions.logger ?? stderrLogger).warn(
        { groupId: this.#options.groupId, reason: error instanceof Error ? error.message : String(error) },
        "the broker is unreachable; the consumer rejoins its group when it answers",
      );
    }
    const delay = Math.min(30_000, 500 * 2 ** Math.min(this.#rejoins, 6));
    this.#rejoins++;
    const old = this.#consumer;
    this.#started = false;
    await old.disconnect().catch(() => {});
    await new Promise((resolveDelay) => setTimeout(resolveDelay, delay));
    if (this.#state !== "running") return;
    this.#consumer = this.#create();
    try {
      await this.#start();
    } catch (again) {
      if (isUnavailable(again) && this.#state === "running") void this.#rejoin(again);
      else this.#fail(again);
    }
  }

  async run(handler: MessageHandler): Promise<void> {
    if (this.#state !== "idle") throw new Error(`consumer ${this.#options.groupId}: run() called twice`);
    this.#state = "starting";
    this.#handler = handler;
    const joined = new Promise<void>((resolve) => {
      const remove = this.#consumer.on(this.#consumer.events.GROUP_JOIN, () => {
        remove();
        resolve();
      });
    });
    try {
      await this.#start();
    } catch (error) {
      this.#fail(error);
      throw error;
    }
    await Promise.race([joined, this.done]);
  }

  async #eachBatch(payload: EachBatchPayload, handler: MessageHandler): Promise<void> {
    const { batch, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = payload;
    const { topic, partition } = batch;
    // offsets stay strings on the hot path; BigInt only when committing
    let finished: string | undefined;
    let committed: string | undefined;
    let lastCommitAt = this.#clock();
    let lastHeartbeatAt = lastCommitAt;
    const commitInterval = this.#busOptions.commitIntervalMs ?? 1_000;
    // commits through the batch's own handle: kafkajs' consumer.commitOffsets refuses once
    // stop() began, but a graceful stop is exactly when finished work must be committed
    const commits = this.#options.commitOffsets ?? true;
    const commit = async () => {
      if (!commits || finished === undefined || finished === committed) return;
      const offset = (BigInt(finished) + 1n).toString();
      await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset }] }] });
      committed = finished;
      lastCommitAt = this.#clock();
    };
    const heartbeatEvery = this.#busOptions.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    for (const message of batch.messages) {
      if (this.#state !== "running" || this.#paused || !isRunning() || isStale()) break;
      // a handler may take longer than the session timeout (a long rollout, a wait for a store):
      // keep heartbeating meanwhile; a failed heartbeat (rebalance) shows up at the commit
      const beating = setInterval(() => {
        heartbeat().catch(() => {});
      }, heartbeatEvery);
      try {
        await handler(toBusMessage(topic, partition, message));
      } catch (error) {
        // the failed message stays uncommitted; what finished before it is durable
        await commit().catch(() => {});
        this.#fail(error);
        return;
      } finally {
        clearInterval(beating);
      }
      resolveOffset(message.offset);
      finished = message.offset;
      const now = this.#clock();
      // kafkajs throttles heartbeats itself; checking the clock first skips its async call chain
      if (now - lastHeartbeatAt < 250 && now - lastCommitAt < commitInterval) continue;
      lastHeartbeatAt = now;
      try {
        if (now - lastCommitAt >= commitInterval) await commit();
        await heartbeat();
      } catch (error) {
        // a rebalance: hand over what finished before the partition moves
        await commit().catch(() => {});
        throw error;
      }
    }
    await commit();
  }

  #applyPause(): void {
    this.#consumer.pause(this.#options.topics.map((topic) => ({ topic })));
  }

  // kafkajs refuses pause/resume before its run() began; #started tracks that
  pause(): void {
    this.#paused = true;
    if (this.#started && this.#state === "running") this.#applyPause();
  }

  resume(): void {
    this.#paused = false;
    if (this.#started && this.#state === "running") {
      this.#consumer.resume(this.#options.topics.map((topic) => ({ topic })));
    }
  }

  async lag(): Promise<number> {
    const partitions = await this.#admin.groupLag(
      this.#options.groupId,
      this.#options.topics,
      this.#options.fromBeginning ?? true,
    );
    return partitions.reduce((sum, p) => sum + p.lag, 0);
  }

  async stop(): Promise<void> {
    await this.#shutdown(undefined);
    await this.done.catch(() => {});
  }

  #fail(error: unknown): void {
    void this.#shutdown(error);
  }

  #shutdown(error: unknown): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const wasIdle = this.#state === "idle";
    this.#state = "stopping";
    this.#stopping = (async () => {
      // disconnect waits for the in-flight batch, which commits what finished, then leaves the group
      if (!wasIdle) await this.#consumer.disconnect().catch(() => {});
      this.#state = "stopped";
      this.#onStopped();
      if (error === undefined) this.#settle.resolve();
      else this.#settle.reject(error);
    })();
    return this.#stopping;
  }
}
