import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { z } from "zod";
import type { BusMessage } from "../functions/runtime/bus.ts";
import { parseBinaryMessage, toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import { DeadLetter, DeadLetterRecordSchema } from "../functions/runtime/dead-letter.ts";
import { defineFunction, emit } from "../functions/runtime/define-function.ts";
import { defineEvent } from "../functions/runtime/event-definition.ts";
import { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { bindFunction } from "../functions/runtime/runner.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import { sha256Hex } from "../functions/runtime/sha256.ts";

// The function runtime over the real adapters: a function bound to KafkaBus and S3ObjectStore
// writes a claim-check object to MinIO and emits an event carrying its URI and sha256; a message
// that is not a CloudEvent lands on the dead-letter topic with its reason. Everything commits.

const brokers = inject("kafkaBrokers");
const s3 = inject("s3");

const ShardRequested = defineEvent({
  type: "dev.questa.test.shardrequested.v1",
  topic: "requests",
  data: z.object({ shard: z.int().nonnegative(), rows: z.int().positive() }),
  description: "asks for a shard of rows",
});
const ShardWritten = defineEvent({
  type: "dev.questa.test.shardwritten.v1",
  topic: "shards",
  data: z.object({ shard: z.int(), uri: z.string(), sha256: z.string(), size: z.int() }),
  description: "a shard stored as a claim check",
});

const cleanup: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const step of cleanup.reverse()) await step();
});

describe("function runtime over Kafka and S3", () => {
  it("stores claim checks in S3, emits CloudEvents on Kafka and dead-letters garbage", async () => {
    const suffix = randomBytes(4).toString("hex");
    const prefix = `questa.e2e-${suffix}`;
    const bus = new KafkaBus({ brokers, clientId: "questa-e2e" }, { logLevel: "error", maxWaitTimeMs: 100 });
    cleanup.push(() => bus.close());
    const store = new S3ObjectStore({
      bucket: `questa-e2e-${suffix}`,
      prefix: "runs/e2e/",
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    cleanup.push(() => store.close());
    await store.ensureBucket();

    const shardWriter = defineFunction({
      name: "shard-writer",
      consumes: [ShardRequested],
      emits: [ShardWritten],
      handle: async (event, deps) => {
        const rows = Array.from({ length: event.data.rows }, (_, i) => ({ shard: event.data.shard, row: i }));
        const key = `shards/${String(event.data.shard).padStart(4, "0")}.jsonl`;
        const { info } = await deps.store.put(key, rows.map((r) => JSON.stringify(r)).join("\n"));
        return [
          emit(
            ShardWritten,
            { shard: event.data.shard, uri: deps.store.uri(key), sha256: info.sha256, size: info.size },
            `shard-${event.data.shard}`,
          ),
        ];
      },
    });
    const runner = bindFunction(shardWriter, {
      bus,
      store,
      run: "e2e",
      topicPrefix: prefix,
      partitions: 2,
      logger: silentLogger(),
    });
    cleanup.push(() => runner.stop());
    await runner.start();

    const request = (shard: number) =>
      toBinaryMessage({
        specversion: "1.0",
        id: `req-${shard}`,
        source: "/questa/e2e/test",
        type: ShardRequested.type,
        subject: "e2e",
        time: "2026-01-01T00:00:00.000Z",
        datacontenttype: "application/json",
        partitionkey: `shard-${shard}`,
        data: { shard, rows: 50 + shard },
      });
    await bus.publish(`${prefix}.requests`, [request(0), request(1), request(2)]);
    await bus.publish(`${prefix}.requests`, [
      { key: "junk", headers: { "x-not": "a cloudevent" }, value: new TextEncoder().encode("\u0000garbage") },
    ]);

    // read what the function produced with a consumer of our own
    const produced: BusMessage[] = [];
    const reader = bus.consumer({
      groupId: `${prefix}.reader`,
      topics: [`${prefix}.shards`, runner.deadLetterTopic],
    });
    await reader.run(async (message) => {
      produced.push(message);
    });
    const deadline = Date.now() + 60_000;
    while (produced.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await reader.stop();
    expect(produced).toHaveLength(4);

    const shards = produced
      .filter((m) => m.topic === `${prefix}.shards`)
      .map((m) => {
        const parsed = parseBinaryMessage(m);
        if (!parsed.ok) throw parsed.error;
        expect(m.headers.ce_type).toBe(ShardWritten.type);
        return ShardWritten.data.parse(parsed.value.data);
      })
      .sort((a, b) => a.shard - b.shard);
    expect(shards.map((s) => s.shard)).toEqual([0, 1, 2]);
    for (const shard of shards) {
      const key = `shards/${String(shard.shard).padStart(4, "0")}.jsonl`;
      expect(shard.uri).toBe(`s3://${store.config.bucket}/runs/e2e/${key}`);
      const bytes = await store.get(key);
      expect(bytes && sha256Hex(bytes)).toBe(shard.sha256);
      expect(new TextDecoder().decode(bytes).split("\n")).toHaveLength(50 + shard.shard);
    }

    const [dead] = produced.filter((m) => m.topic === runner.deadLetterTopic);
    const parsedDead = dead && parseBinaryMessage(dead);
    if (!parsedDead?.ok) throw new Error("the dead letter is not a CloudEvent");
    expect(parsedDead.value.type).toBe(DeadLetter.type);
    const record = DeadLetterRecordSchema.parse(parsedDead.value.data);
    expect(record).toMatchObject({ function: "shard-writer", reason: "invalid-cloudevent" });
    expect(record.message).toMatchObject({ topic: `${prefix}.requests`, key: "junk" });

    // every input is committed: 3 handled, 1 dead-lettered
    await runner.stop();
    const lag = await bus.admin.groupLag(runner.groupId, [`${prefix}.requests`]);
    expect(lag.reduce((sum, p) => sum + p.lag, 0)).toBe(0);
    expect(lag.reduce((sum, p) => sum + Number(p.high), 0)).toBe(4);
  });
});
