import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";

/**
 * A consumer process for the crash test: handles messages and prints `handled <offset>` for each;
 * at offset `hangAt` it prints `hanging <offset>` and never finishes, so the test can SIGKILL it
 * mid-batch (nothing after the last commit is committed, no graceful leave).
 * argv: brokers (comma-separated) topic groupId hangAt sessionTimeoutMs
 */
const [brokers, topic, groupId, hangAt, sessionTimeoutMs] = process.argv.slice(2);
if (!brokers || !topic || !groupId || !hangAt || !sessionTimeoutMs) {
  process.stderr.write("usage: kafka-crash-consumer.ts brokers topic groupId hangAt sessionTimeoutMs\n");
  process.exit(2);
}
const bus = new KafkaBus(
  { brokers: brokers.split(","), clientId: "questa-crash-test" },
  {
    logLevel: "error",
    sessionTimeoutMs: Number(sessionTimeoutMs),
    heartbeatIntervalMs: 1000,
    maxWaitTimeMs: 100,
    // commit only at batch ends, so the hanging batch's finished messages stay uncommitted
    commitIntervalMs: 3_600_000,
  },
);
const consumer = bus.consumer({ groupId, topics: [topic] });
await consumer.run(async (message) => {
  if (message.offset === hangAt) {
    process.stdout.write(`hanging ${message.offset}\n`);
    await new Promise(() => {});
  }
  process.stdout.write(`handled ${message.offset}\n`);
});
process.stdout.write("joined\n");
