import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
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
 * for the authentication tests (one user known to all three mechanisms), and SSL with client
 * certificates required (a throwaway CA made with openssl at start-up).
 */

/** kafkajs 2.2.4 talks to this line (checked: produce, consume, groups, admin) */
export const defaultKafkaVersion = "4.4.0";

export interface SaslUser {
  username: string;
  password: string;
}

/** PEM files of the SSL listener: the CA that signed the broker and a client certificate */
export interface KafkaTlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface RunningKafka {
  version: string;
  /** PLAINTEXT listener, `127.0.0.1:port` */
  brokers: string[];
  /** SASL_PLAINTEXT listener accepting PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for `saslUser` */
  saslBrokers: string[];
  saslUser: SaslUser;
  /** SSL listener requiring a client certificate signed by `tls.caFile` */
  tlsBrokers: string[];
  tls: KafkaTlsFiles;
  stop(): Promise<void>;
  /** stops the broker, keeps it down for `downMs`, starts it again on the same ports and data (only with `restartable`) */
  restart(options?: { downMs?: number }): Promise<void>;
}

function requireJava(): void {
  requireTool(
    "java",
    ["-version"],
    "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)",
  );
}

/** the broker's classpath: every jar of `kafka_2.13` at `version`, fetched once by Maven */
export async function ensureKafkaJars(version: string = defaultKafkaVersion): Promise<string> {
  const home = join(questaCacheDir(), "kafka", version);
  const libs = join(home, "libs");
  const marker = join(home, ".complete");
  if (existsSync(marker)) return libs;
  requireJava();
  requireTool("mvn", ["-v"], "install Maven (Debian: apt-get install maven)");
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, "pom.xml"), kafkaPom(version));
  // each run copies into its own folder and renames it into place, so concurrent first runs
  // (tests and a benchmark, say) never see a half-filled libs folder
  const staging = `libs-${process.pid}`;
  rmSync(join(home, staging), { recursive: true, force: true });
  process.stderr.write(`questa test infra: fetching Kafka ${version} jars with Maven into ${libs}...\n`);
  await runLogged(
    "mvn",
    ["-B", "-q", "dependency:copy-dependencies", `-DoutputDirectory=${staging}`, "-DincludeScope=runtime"],
    {
      cwd: home,
      logFile: join(home, `mvn-${process.pid}.log`),
      timeoutMs: 15 * 60_000,
      what: `Maven fetch of Kafka ${version}`,
    },
  );
  if (!readdirSync(join(home, staging)).some((f) => f.startsWith("kafka_2.13-"))) {
    throw new Error(`Maven finished but ${join(home, staging)} has no kafka_2.13 jar; see ${home}/mvn-*.log`);
  }
  if (existsSync(marker)) {
    rmSync(join(home, staging), { recursive: true, force: true });
  } else {
    rmSync(libs, { recursive: true, force: true });
    renameSync(join(home, staging), libs);
    writeFileSync(marker, `${new Date().toISOString()}\n`);
  }
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
/**
 * A cluster id as Kafka writes them (16 bytes, base64url). One in 64 begins with "-", which the
 * storage tool's argument parser reads as an option ("--cluster-id: expected one argument"): drawn again.
 */
function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

function serverProperties(options: {
  brokerPort: number;
  saslPort: number;
  sslPort: number;
  controllerPort: number;
  dataDir: string;
  user: SaslUser;
  serverKeystore: string;
  caFile: string;
}): string {
  const { brokerPort, saslPort, sslPort, controllerPort, dataDir, user } = options;
  const plainJaas = `org.apache.kafka.common.security.plain.PlainLoginModule required user_${user.username}="${user.password}";`;
  const scramJaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
  return [
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${brokerPort},SASL_PLAINTEXT://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort},SASL_PLAINTEXT://127.0.0.1:${saslPort},SSL://127.0.0.1:${sslPort}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT",
    "listener.name.ssl.ssl.keystore.type=PEM",
    `listener.name.ssl.ssl.keystore.location=${options.serverKeystore}`,
    "listener.name.ssl.ssl.truststore.type=PEM",
    `listener.name.ssl.ssl.truststore.location=${options.caFile}`,
    "listener.name.ssl.ssl.client.auth=required",
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

/**
 * A throwaway CA, a broker certificate for 127.0.0.1 and a client certificate, as PEM files.
 * Returns the broker's keystore (key + chain in one PEM file, as Kafka's PEM keystore wants).
 */
async function makeTlsFiles(dir: string): Promise<KafkaTlsFiles & { serverKeystore: string }> {
  requireTool("openssl", ["version"], "install OpenSSL (Debian: apt-get install openssl)");
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const openssl = (args: string[], what: string) =>
    runLogged("openssl", args, { cwd: dir, logFile: at("openssl.log"), timeoutMs: 60_000, what });
  await openssl(
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=questa-test-ca"].concat([
      "-keyout",
      at("ca.key"),
      "-out",
      at("ca.pem"),
    ]),
    "openssl: test CA",
  );
  writeFileSync(at("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const [name, subject, extensions] of [
    ["server", "/CN=127.0.0.1", ["-extfile", at("server.ext")]],
    ["client", "/CN=questa-test-client", []],
  ] as const) {
    await openssl(
      [
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        at(`${name}.key`),
        "-out",
        at(`${name}.csr`),
      ],
      `openssl: ${name} key`,
    );
    await openssl(
      [
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        at(`${name}.csr`),
        "-CA",
        at("ca.pem"),
        "-CAkey",
        at("ca.key"),
      ].concat(["-CAcreateserial", "-out", at(`${name}.pem`), ...extensions]),
      `openssl: ${name} certificate`,
    );
  }
  const serverKeystore = at("server-keystore.pem");
  writeFileSync(
    serverKeystore,
    readFileSync(at("server.key"), "utf8") + readFileSync(at("server.pem"), "utf8"),
  );
  return { caFile: at("ca.pem"), certFile: at("client.pem"), keyFile: at("client.key"), serverKeystore };
}

export async function startKafka(
  options: {
    version?: string;
    /** keep the data directory across `restart()`; it is then deleted by `stop()` only, not by the watchdog */
    restartable?: boolean;
  } = {},
): Promise<RunningKafka> {
  const version = options.version ?? defaultKafkaVersion;
  const libs = await ensureKafkaJars(version);
  requireJava();
  const classpath = join(libs, "*");
  const workDir = mkdtempSync(join(tmpdir(), "questa-kafka-"));
  const dataDir = join(workDir, "data");
  const [brokerPort, saslPort, sslPort, controllerPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const user: SaslUser = { username: "questa", password: randomBytes(12).toString("hex") };
  const { serverKeystore, ...tls } = await makeTlsFiles(join(workDir, "tls"));
  const propertiesFile = join(workDir, "server.properties");
  writeFileSync(
    propertiesFile,
    serverProperties({
      brokerPort,
      saslPort,
      sslPort,
      controllerPort,
      dataDir,
      user,
      serverKeystore,
      caFile: tls.caFile,
    }),
  );
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
  const launch = (): ServerProcess =>
    startServer({
      name: `Kafka ${version}`,
      command: "java",
      args: [...jvm, "-cp", classpath, "kafka.Kafka", propertiesFile],
      env: process.env,
      cwd: workDir,
      ...(options.restartable ? {} : { cleanupDir: workDir }),
      logFile: join(workDir, "stdout.log"),
    });
  let server: ServerProcess = launch();
  const stop = async () => {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  const brokers = [`127.0.0.1:${brokerPort}`];
  const ready = async () => {
    await waitUntil(`Kafka ${version} on port ${brokerPort}`, () => portAccepts(brokerPort), {
      timeoutMs: 120_000,
      server,
    });
    await waitUntil(`Kafka ${version} coordinators`, () => warmUp(brokers), { timeoutMs: 120_000, server });
  };
  const restart = async (how: { downMs?: number } = {}) => {
    if (!options.restartable) throw new Error("startKafka({ restartable: true }) to restart the broker");
    await server.stop();
    await new Promise((resolveDown) => setTimeout(resolveDown, how.downMs ?? 0));
    server = launch();
    await ready();
  };
  try {
    await ready();
    return {
      version,
      brokers,
      saslBrokers: [`127.0.0.1:${saslPort}`],
      saslUser: user,
      tlsBrokers: [`127.0.0.1:${sslPort}`],
      tls,
      stop,
      restart,
    };
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
