import type { TestProject } from "vitest/node";
import { type KafkaTlsFiles, type RunningKafka, type SaslUser, startKafka } from "./kafka-server.ts";
import { type RunningS3, type S3Endpoint, startS3 } from "./s3-server.ts";

/**
 * vitest global setup: starts one Kafka broker and one MinIO for the integration project and hands
 * their addresses to the tests (`inject("kafkaBrokers")`, `inject("s3")`). A server that cannot be
 * installed or started fails the run with the reason; nothing is skipped.
 */

declare module "vitest" {
  export interface ProvidedContext {
    /** PLAINTEXT listener of the test broker, `127.0.0.1:port` */
    kafkaBrokers: string[];
    /** SASL_PLAINTEXT listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and its user */
    kafkaSasl: { brokers: string[]; user: SaslUser };
    /** SSL listener requiring a client certificate; PEM files of the CA and of a client */
    kafkaTls: { brokers: string[]; files: KafkaTlsFiles };
    kafkaVersion: string;
    s3: S3Endpoint;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // both start in parallel: the JVM and MinIO each want a core for a few seconds
  const kafkaVersion = process.env.QUESTA_KAFKA_VERSION;
  const minioVersion = process.env.QUESTA_MINIO_VERSION;
  const [kafka, s3] = await Promise.allSettled([
    startTwice(() => startKafka(kafkaVersion ? { version: kafkaVersion } : {})),
    startTwice(() => startS3(minioVersion ? { moduleVersion: minioVersion } : {})),
  ]);
  const started = [kafka, s3].flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const teardown = async () => {
    await Promise.all(started.map((server) => server.stop()));
  };
  if (kafka.status === "rejected" || s3.status === "rejected") {
    await teardown();
    const reasons = [kafka, s3].flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
    throw new Error(`integration test servers did not start:\n${reasons.join("\n\n")}`);
  }
  provideServers(project, kafka.value, s3.value);
  return teardown;
}

/**
 * A free port can be taken by another process between the probe and the server's bind; one more
 * try with fresh ports covers that race (a real problem fails twice, and reports the second).
 */
async function startTwice<T>(start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (first) {
    process.stderr.write(`questa test infra: retrying after: ${String(first).split("\n")[0]}\n`);
    return await start();
  }
}

function provideServers(project: TestProject, kafka: RunningKafka, s3: RunningS3): void {
  project.provide("kafkaBrokers", kafka.brokers);
  project.provide("kafkaSasl", { brokers: kafka.saslBrokers, user: kafka.saslUser });
  project.provide("kafkaTls", { brokers: kafka.tlsBrokers, files: kafka.tls });
  project.provide("kafkaVersion", kafka.version);
  project.provide("s3", {
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    region: s3.region,
  });
}
