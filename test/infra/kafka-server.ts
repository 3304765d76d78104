import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import {
  freePort,
  portAccepts,
  questaCacheDir,
  requireTool,
  runLogged,
  type ServerProcess,
  startServer,
  waitUntil,
} from "./kafka-s3-process.ts";

/**
 * A single-node Apache Kafka (KRaft, broker + controller in one JVM) built from the project's own
 * jars on Maven Central, on random loopback ports, with a throwaway data directory.
 *
 * Listeners: PLAINTEXT for most tests, SASL_PLAINTEXT with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
 * for the authentication tests (one user known to all three mechanisms).
 */

/** kafkajs 2.2.4 talks to this line (checked: produce, consume, groups, admin) */
export const defaultKafkaVersion = "4.4.0";

export interface SaslUser {
  username: string;
  password: string;
}

export interface RunningKafka {
  version: string;
  /** PLAINTEXT listener, `127.0.0.1:port` */
  brokers: string[];
  /** SASL_PLAINTEXT listener accepting PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for `saslUser` */
  saslBrokers: string[];
  saslUser: SaslUser;
  stop(): Promise<void>;
}

/** the broker's classpath: every jar of `kafka_2.13` at `version`, fetched once by Maven */
export async function ensureKafkaJars(version: string = defaultKafkaVersion): Promise<string> {
  const home = join(questaCacheDir(), "kafka", version);
  const libs = join(home, "libs");
  const marker = join(home, ".complete");
  if (existsSync(marker)) return libs;
  requireTool(
    "java",
    ["-version"],
    "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
  );
  requireTool("mvn", ["-v"], "install Maven (Debian: apt-get install maven)");
  mkdirSync(home, { recursive: true });
  rmSync(libs, { recursive: true, force: true });
  writeFileSync(join(home, "pom.xml"), kafkaPom(version));
  process.stderr.write(`questa test infra: fetching Kafka ${version} jars with Maven into ${libs}...\n`);
  await runLogged(
    "mvn",
    ["-B", "-q", "dependency:copy-dependencies", "-DoutputDirectory=libs", "-DincludeScope=runtime"],
    {
      cwd: home,
      logFile: join(home, "mvn.log"),
      timeoutMs: 15 * 60_000,
      what: `Maven fetch of Kafka ${version}`,
    },
  );
  if (!readdirSync(libs).some((f) => f.startsWith("kafka_2.13-"))) {
    throw new Error(`Maven finished but ${libs} has no kafka_2.13 jar; see ${join(home, "mvn.log")}`);
  }
  writeFileSync(marker, `${new Date().toISOString()}\n`);
  return libs;
}

function kafkaPom(version: string): string {
  // log4j-slf4j-impl routes the broker's slf4j logging (1.7 API) to log4j2 so its log is readable
  return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.questa.test</groupId>
  <artifactId>kafka-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.5</version></dependency>
  </dependencies>
</project>
`;
}

/** Kafka's own 22-character base64url cluster id */
function randomClusterId(): string {
  return randomBytes(16).toString("base64url");
}

function serverProperties(options: {
  brokerPort: number;
  saslPort: number;
  controllerPort: number;
  dataDir: string;
  user: SaslUser;
}): string {
  const { brokerPort, saslPort, controllerPort, dataDir, user } = options;
  const plainJaas = `org.apache.kafka.common.security.plain.PlainLoginModule required user_${user.username}="${user.password}";`;
  const scramJaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
  return [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${brokerPort},SASL_PLAINTEXT://127.0.0.1:${saslPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort},SASL_PLAINTEXT://127.0.0.1:${saslPort}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
    "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    `listener.name.sasl_plaintext.plain.sasl.jaas.config=${plainJaas}`,
    `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${scramJaas}`,
    `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${scramJaas}`,
    `log.dirs=${dataDir}`,
    "num.partitions=1",
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=4",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "group.initial.rebalance.delay.ms=0",
    // tests create and drop many small topics; keep segments small and deletes quick
    "log.segment.bytes=16777216",
    "log.retention.check.interval.ms=60000",
    "auto.create.topics.enable=false",
    "",
  ].join("\n");
}

function log4jConfig(logFile: string): string {
  return [
    "appender.file.type=File",
    "appender.file.name=file",
    `appender.file.fileName=${logFile}`,
    "appender.file.layout.type=PatternLayout",
    "appender.file.layout.pattern=[%d] %p %m (%c)%n",
    "rootLogger.level=info",
    "rootLogger.appenderRef.file.ref=file",
    "",
  ].join("\n");
}

export async function startKafka(options: { version?: string } = {}): Promise<RunningKafka> {
  const version = options.version ?? defaultKafkaVersion;
  const libs = await ensureKafkaJars(version);
  const classpath = join(libs, "*");
  const workDir = mkdtempSync(join(tmpdir(), "questa-kafka-"));
  const dataDir = join(workDir, "data");
  const [brokerPort, saslPort, controllerPort] = [await freePort(), await freePort(), await freePort()];
  const user: SaslUser = { username: "questa", password: randomBytes(12).toString("hex") };
  const propertiesFile = join(workDir, "server.properties");
  writeFileSync(propertiesFile, serverProperties({ brokerPort, saslPort, controllerPort, dataDir, user }));
  const log4jFile = join(workDir, "log4j2.properties");
  writeFileSync(log4jFile, log4jConfig(join(workDir, "server.log")));
  const jvm = [
    "-Xms192m",
    "-Xmx768m",
    "-XX:+UseSerialGC",
    // a test broker lives a minute: a cheap JIT starts faster on 2 shared cores
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${log4jFile}`,
  ];
  const scram = (mechanism: string) =>
    `${mechanism}=[name=${user.username},password=${user.password},iterations=4096]`;
  await runLogged(
    "java",
    [
      ...jvm,
      "-cp",
      classpath,
      "kafka.tools.StorageTool",
      "format",
      "-t",
      randomClusterId(),
      "-c",
      propertiesFile,
      "--add-scram",
      scram("SCRAM-SHA-256"),
      "--add-scram",
      scram("SCRAM-SHA-512"),
    ],
    { cwd: workDir, logFile: join(workDir, "format.log"), timeoutMs: 120_000, what: "Kafka storage format" },
  );
  const server: ServerProcess = startServer({
    name: `Kafka ${version}`,
    command: "java",
    args: [...jvm, "-cp", classpath, "kafka.Kafka", propertiesFile],
    env: process.env,
    cwd: workDir,
    cleanupDir: workDir,
    logFile: join(workDir, "stdout.log"),
  });
  const stop = async () => {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    const brokers = [`127.0.0.1:${brokerPort}`];
    await waitUntil(`Kafka ${version} on port ${brokerPort}`, () => portAccepts(brokerPort), {
      timeoutMs: 120_000,
      server,
    });
    await waitUntil(`Kafka ${version} coordinators`, () => warmUp(brokers), { timeoutMs: 120_000, server });
    return { version, brokers, saslBrokers: [`127.0.0.1:${saslPort}`], saslUser: user, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Makes the first test's requests fast and quiet: a fresh broker answers "coordinator loading"
 * for a while, so this waits until an idempotent produce and a group commit both succeed.
 */
async function warmUp(brokers: string[]): Promise<boolean> {
  const kafka = new Kafka({ brokers, clientId: "questa-warm-up", logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const topic = "__questa_warm_up";
  try {
    await admin.connect();
    const existing = await admin.listTopics();
    if (!existing.includes(topic)) {
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    }
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ value: "warm" }] });
    await admin.setOffsets({
      groupId: "__questa_warm_up",
      topic,
      partitions: [{ partition: 0, offset: "0" }],
    });
    return true;
  } finally {
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}
