// Installs the real servers the integration tests run against, into caches outside the repo:
// Apache Kafka's jars (Maven, ~/.m2 and ~/.cache/questa/kafka) and MinIO (go install, ~/.cache/questa/bin).
// The vitest global setup does the same on demand; this script lets CI warm the caches up front:
//   npx tsx scripts/install-test-servers.ts
import { defaultKafkaVersion, ensureKafkaJars } from "../test/infra/kafka-server.ts";
import { defaultMinioModuleVersion, ensureMinio } from "../test/infra/s3-server.ts";

const [kafkaLibs, minio] = await Promise.all([
  ensureKafkaJars(process.env.QUESTA_KAFKA_VERSION ?? defaultKafkaVersion),
  ensureMinio(process.env.QUESTA_MINIO_VERSION ?? defaultMinioModuleVersion),
]);
process.stdout.write(`kafka jars: ${kafkaLibs}\nminio: ${minio}\n`);
