import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { cpus, totalmem } from "node:os";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import { startKafka } from "../test/infra/kafka-server.ts";
import { startS3 } from "../test/infra/s3-server.ts";

/**
 * Bus benchmark: events/s through raw kafkajs and through KafkaBus in the same run against the
 * same local broker (the peer is kafkajs itself, with the same delivery settings: idempotent
 * producer, acks=all), and S3ObjectStore put/get MB/s of a 64 MiB object on local MinIO.
 * Prints one JSON document; numbers are medians over `repeats`.
 */

const events = Number(process.env.QUESTA_BENCH_EVENTS ?? 50_000);
const repeats = Number(process.env.QUESTA_BENCH_REPEATS ?? 5);
const publishBatch = 500;
const payloadBytes = 256;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function round(value: number, digits = 0): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

// a rollout event as the runtime sends it: CloudEvents binary-mode headers and a claim check
function eventAt(i: number) {
  return {
    key: `problem-${i % 64}`,
    headers: {
      ce_specversion: "1.0",
      ce_type: "dev.questa.rollout.v1",
      ce_source: "/questa/bench",
      ce_id: `bench-${i}`,
      "content-type": "application/json",
    },
    value: Buffer.from(JSON.stringify({ i, pad: "x".repeat(payloadBytes) }).slice(0, payloadBytes)),
  };
}

const messages = Array.from({ length: events }, (_, i) => eventAt(i));
// the same events as the bus takes them, built once so no run pays for (or collects) the copies
const outgoing = messages.map((m) => ({ key: m.key, headers: m.headers, value: new Uint8Array(m.value) }));

async function timed(run: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
}

/** resolves with the seconds from the first delivered message to the last */
function deliveryClock(total: number) {
  let first = 0;
  let count = 0;
  let finish: (seconds: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  return {
    done,
    tick() {
      if (count === 0) first = performance.now();
      count++;
      if (count === total) finish((performance.now() - first) / 1000);
    },
  };
}

async function rawKafkaJs(brokers: string[], run: number) {
  const kafka = new Kafka({ brokers, clientId: "bench-raw", logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `bench-raw-${run}-${randomBytes(3).toString("hex")}`;
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }], waitForLeaders: true });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const produceSeconds = await timed(async () => {
    for (let i = 0; i < events; i += publishBatch) {
      await producer.send({ topic, acks: -1, messages: messages.slice(i, i + publishBatch) });
    }
  });
  const consumer = kafka.consumer({ groupId: `${topic}-g`, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const clock = deliveryClock(events);
  // kafkajs' usual shape: eachMessage, offsets auto-committed after the handler resolves
  await consumer.run({
    eachMessage: async () => {
      clock.tick();
    },
  });
  const consumeSeconds = await clock.done;
  await consumer.disconnect();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  return { produceSeconds, consumeSeconds };
}

async function throughKafkaBus(brokers: string[], run: number) {
  const bus = new KafkaBus({ brokers, clientId: "bench-bus" }, { logLevel: "error" });
  const topic = `bench-bus-${run}-${randomBytes(3).toString("hex")}`;
  await bus.ensureTopics([{ name: topic, partitions: 4 }]);
  // like the raw side, connect before the clock starts
  await bus.connect();
  const produceSeconds = await timed(async () => {
    for (let i = 0; i < events; i += publishBatch)
      await bus.publish(topic, outgoing.slice(i, i + publishBatch));
  });
  const clock = deliveryClock(events);
  const consumer = bus.consumer({ groupId: `${topic}-g`, topics: [topic] });
  await consumer.run(async () => {
    clock.tick();
  });
  const consumeSeconds = await clock.done;
  await consumer.stop();
  const lagAfterStop = await consumer.lag();
  if (lagAfterStop !== 0) throw new Error(`KafkaBus left ${lagAfterStop} messages uncommitted after stop()`);
  await bus.admin.deleteTopics([topic]);
  await bus.close();
  return { produceSeconds, consumeSeconds };
}

async function s3Throughput(s3: {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}) {
  const store = new S3ObjectStore({
    bucket: `bench-${randomBytes(4).toString("hex")}`,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await store.ensureBucket();
  const body = randomBytes(64 * 1024 * 1024);
  const mb = body.byteLength / (1024 * 1024);
  const put: number[] = [];
  const get: number[] = [];
  for (let run = 0; run < repeats; run++) {
    put.push(mb / (await timed(() => store.put(`bench/${run}`, body).then(() => {}))));
    get.push(mb / (await timed(() => store.get(`bench/${run}`).then(() => {}))));
    await store.delete(`bench/${run}`);
  }
  store.close();
  return {
    objectMiB: mb,
    putMBps: round(median(put), 1),
    getMBps: round(median(get), 1),
    putRuns: put.map((v) => round(v, 1)),
    getRuns: get.map((v) => round(v, 1)),
  };
}

async function main() {
  // the AWS SDK's notice that its 2027 releases need Node 22 would interleave with the JSON
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const require = createRequire(import.meta.url);
  const [kafka, s3] = await Promise.all([startKafka(), startS3()]);
  try {
    const raw: { produceSeconds: number; consumeSeconds: number }[] = [];
    const bus: { produceSeconds: number; consumeSeconds: number }[] = [];
    // warm-up round (JIT, broker page cache), not counted
    await rawKafkaJs(kafka.brokers, -1);
    await throughKafkaBus(kafka.brokers, -1);
    for (let run = 0; run < repeats; run++) {
      // alternate the order so neither side always runs on a warmer broker
      if (run % 2 === 0) {
        raw.push(await rawKafkaJs(kafka.brokers, run));
        bus.push(await throughKafkaBus(kafka.brokers, run));
      } else {
        bus.push(await throughKafkaBus(kafka.brokers, run));
        raw.push(await rawKafkaJs(kafka.brokers, run));
      }
    }
    const rate = (runs: typeof raw, pick: (r: (typeof raw)[number]) => number) =>
      median(runs.map((r) => events / pick(r)));
    const rawProduce = rate(raw, (r) => r.produceSeconds);
    const rawConsume = rate(raw, (r) => r.consumeSeconds);
    const rawPipeline = rate(raw, (r) => r.produceSeconds + r.consumeSeconds);
    const busProduce = rate(bus, (r) => r.produceSeconds);
    const busConsume = rate(bus, (r) => r.consumeSeconds);
    const busPipeline = rate(bus, (r) => r.produceSeconds + r.consumeSeconds);
    const storage = await s3Throughput(s3);
    const report = {
      benchmark: "bus",
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: cpus().length,
        memoryGiB: round(totalmem() / 2 ** 30, 1),
        node: process.version,
      },
      software: {
        kafka: kafka.version,
        kafkajs: (require("kafkajs/package.json") as { version: string }).version,
        s3Server: "MinIO (go install, loopback)",
      },
      settings: {
        events,
        payloadBytes,
        publishBatch,
        partitions: 4,
        repeats,
        producer: "idempotent, acks=all",
      },
      kafka: {
        rawKafkaJs: {
          produceEventsPerSec: round(rawProduce),
          consumeEventsPerSec: round(rawConsume),
          pipelineEventsPerSec: round(rawPipeline),
          pipelineRuns: raw.map((r) => round(events / (r.produceSeconds + r.consumeSeconds))),
        },
        kafkaBus: {
          produceEventsPerSec: round(busProduce),
          consumeEventsPerSec: round(busConsume),
          pipelineEventsPerSec: round(busPipeline),
          pipelineRuns: bus.map((r) => round(events / (r.produceSeconds + r.consumeSeconds))),
        },
        ratio: {
          produce: round(busProduce / rawProduce, 3),
          consume: round(busConsume / rawConsume, 3),
          pipeline: round(busPipeline / rawPipeline, 3),
          target: 0.85,
        },
      },
      s3: storage,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await Promise.all([kafka.stop(), s3.stop()]);
  }
}

await main();
