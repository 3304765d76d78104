import { randomBytes } from "node:crypto";
import { describe, expect, it, onTestFinished } from "vitest";
import { z } from "zod";
import type { Bus, BusMessage, OutgoingMessage } from "./bus.ts";
import { parseBinaryMessage, toBinaryMessage } from "./cloudevents.ts";
import { DeadLetterRecordSchema } from "./dead-letter.ts";
import { defineFunction, emit } from "./define-function.ts";
import { DeadLetterError } from "./errors.ts";
import { cloudEvent, defineEvent } from "./event-definition.ts";
import { silentLogger } from "./logger.ts";
import { MemoryObjectStore } from "./memory-object-store.ts";
import { partitionForKey } from "./partitioner.ts";
import { bindFunction } from "./runner.ts";

/**
 * The behaviour every `Bus` promises, as one vitest suite: each implementation's tests call
 * `describeBusContract` with a factory, so a new backend passes by running the same suite. Topic
 * and group names are random, so one broker serves every case. Waits are on conditions; their
 * deadline only bounds a hang.
 */
export function describeBusContract(
  name: string,
  makeBus: () => Promise<Bus>,
  options: {
    /** a bus that carries CloudEvents with JSON data only (the journaled local bus): no raw bytes */
    cloudEventsOnly?: boolean;
  } = {},
): void {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const unique = (prefix: string) => `${prefix}-${randomBytes(4).toString("hex")}`;

  async function newBus(): Promise<Bus> {
    const bus = await makeBus();
    onTestFinished(() => bus.close());
    return bus;
  }

  /** CloudEvents carrying their number, so every bus can carry them */
  function numbered(count: number, from = 0, key = "k"): OutgoingMessage[] {
    return Array.from({ length: count }, (_, i) =>
      toBinaryMessage(
        cloudEvent({
          id: `m${from + i}`,
          run: "contract",
          source: "producer",
          type: "dev.questa.contract.numbered.v1",
          time: "2026-01-01T00:00:00.000Z",
          key,
          data: { n: from + i },
        }),
      ),
    );
  }
  const numberOf = (m: BusMessage) => String((JSON.parse(decoder.decode(m.value)) as { n: number }).n);

  /** consumes with a member of `groupId` until `count` messages arrived, then stops it gracefully */
  async function consume(bus: Bus, topics: string[], groupId: string, count: number): Promise<BusMessage[]> {
    const received: BusMessage[] = [];
    const consumer = bus.consumer({ groupId, topics });
    await consumer.run(async (message) => void received.push(message));
    await until(`${count} messages on ${topics.join(", ")}`, () => received.length >= count);
    await consumer.stop();
    return received;
  }

  describe(`Bus contract: ${name}`, () => {
    // a bus for CloudEvents only has no raw bytes to carry
    if (options.cloudEventsOnly !== true) {
      it("delivers key, headers and bytes as published", async () => {
        const bus = await newBus();
        const topic = unique("roundtrip");
        await bus.ensureTopics([{ name: topic, partitions: 3 }]);
        const large = randomBytes(512 * 1024);
        const sent: OutgoingMessage[] = [
          {
            key: "run-1",
            headers: { ce_type: "dev.questa.x.v1", "content-type": "application/json" },
            value: encoder.encode('{"a":1}'),
          },
          { headers: {}, value: encoder.encode("no key, no headers") },
          { key: "binary", headers: { kind: "bytes" }, value: Uint8Array.from({ length: 256 }, (_, i) => i) },
          { key: "empty", headers: { empty: "" }, value: new Uint8Array(0) },
          { key: "ünïcødé ✓", headers: { "x-ünïcødé": "värde ✓ 数学" }, value: encoder.encode("∑ x² = π") },
          { key: "large", headers: { size: String(large.byteLength) }, value: large },
        ];
        await bus.publish(topic, sent);
        const received = await consume(bus, [topic], unique("g"), sent.length);
        expect(received).toHaveLength(sent.length);
        for (const original of sent) {
          const match = received.find((m) => Buffer.from(m.value).equals(Buffer.from(original.value)));
          expect(match, `message with key ${original.key}`).toBeDefined();
          expect(match?.key).toBe(original.key);
          expect(match?.headers).toEqual(original.headers);
          expect(match?.topic).toBe(topic);
          expect(match?.offset).toMatch(/^\d+$/);
          expect(match?.timestamp).toBeGreaterThan(0);
        }
      });
    }

    it("keeps a key on one partition (Kafka's murmur2) and its messages in order", async () => {
      const bus = await newBus();
      const topic = unique("order");
      await bus.ensureTopics([{ name: topic, partitions: 4 }]);
      const keys = ["alpha", "beta", "gamma", "delta", "epsilon"];
      for (let round = 0; round < 3; round++) {
        await bus.publish(
          topic,
          keys.flatMap((key) => numbered(10, round * 10, key)),
        );
      }
      const received = await consume(bus, [topic], unique("g"), keys.length * 30);
      for (const key of keys) {
        const ofKey = received.filter((m) => m.key === key);
        expect(ofKey.map(numberOf)).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
        // the same partition a Kafka producer picks, so the in-process bus and Kafka agree
        for (const m of ofKey) expect(m.partition).toBe(partitionForKey(key, 4));
      }
      expect(new Set(received.map((m) => m.partition)).size).toBeGreaterThan(1);
    });

    it("redelivers what a dead consumer did not commit: the group resumes at the failed message", async () => {
      const bus = await newBus();
      const topic = unique("failure");
      const groupId = unique("g");
      await bus.ensureTopics([{ name: topic }]);
      await bus.publish(topic, numbered(10));
      const handled: string[] = [];
      const consumer = bus.consumer({ groupId, topics: [topic] });
      await consumer.run(async (message) => {
        if (message.offset === "6") throw new Error("handler failed on offset 6");
        handled.push(message.offset);
      });
      // a handler's rejection stops the consumer as a crash would
      await expect(consumer.done).rejects.toThrow("handler failed on offset 6");
      expect(handled).toEqual(["0", "1", "2", "3", "4", "5"]);
      expect(await consumer.lag()).toBe(4);
      const again = await consume(bus, [topic], groupId, 4);
      expect(again.map((m) => m.offset)).toEqual(["6", "7", "8", "9"]);
    });

    it("stop() finishes the in-flight message and commits it; the group resumes after it", async () => {
      const bus = await newBus();
      const topic = unique("graceful");
      const groupId = unique("g");
      await bus.ensureTopics([{ name: topic }]);
      await bus.publish(topic, numbered(20));
      const handled: string[] = [];
      let release: (() => void) | undefined;
      const consumer = bus.consumer({ groupId, topics: [topic] });
      await consumer.run(async (message) => {
        if (message.offset === "8") await new Promise<void>((resolve) => (release = resolve));
        handled.push(message.offset);
      });
      await until("offset 8 in flight", () => release !== undefined);
      const stopped = consumer.stop();
      release?.();
      await stopped;
      await consumer.done;
      expect(handled).toEqual(["0", "1", "2", "3", "4", "5", "6", "7", "8"]);
      expect(await consumer.lag()).toBe(11);
      const rest = await consume(bus, [topic], groupId, 11);
      expect(rest.map((m) => m.offset)).toEqual(Array.from({ length: 11 }, (_, i) => String(9 + i)));
    });

    it("keeps each group's offsets its own: a new group reads from the beginning", async () => {
      const bus = await newBus();
      const topic = unique("groups");
      await bus.ensureTopics([{ name: topic, partitions: 2 }]);
      await bus.publish(topic, [...numbered(4, 0, "a"), ...numbered(3, 4, "b")]);
      const first = unique("g");
      expect(await bus.consumer({ groupId: first, topics: [topic] }).lag()).toBe(7);
      await consume(bus, [topic], first, 7);
      expect(await bus.consumer({ groupId: first, topics: [topic] }).lag()).toBe(0);
      const second = await consume(bus, [topic], unique("g"), 7);
      expect(second.map(numberOf).sort()).toEqual(["0", "1", "2", "3", "4", "5", "6"]);
    });

    it("a group that never commits: each member reads every message once, and the next member reads them all again", async () => {
      const bus = await newBus();
      const topic = unique("uncommitted");
      await bus.ensureTopics([{ name: topic, partitions: 2 }]);
      await bus.publish(topic, [...numbered(3, 0, "a"), ...numbered(3, 3, "b")]);
      const groupId = unique("g");
      const readAll = async (count: number) => {
        const received: BusMessage[] = [];
        const consumer = bus.consumer({ groupId, topics: [topic], commitOffsets: false });
        await consumer.run(async (message) => void received.push(message));
        await until(`${count} messages`, () => received.length >= count);
        await consumer.stop();
        return received.map(numberOf).sort();
      };
      expect(await readAll(6)).toEqual(["0", "1", "2", "3", "4", "5"]);
      await bus.publish(topic, numbered(1, 6, "a"));
      // stopped gracefully, yet nothing was committed: the next member starts over
      expect(await readAll(7)).toEqual(["0", "1", "2", "3", "4", "5", "6"]);
      // a committing group of the same name would now resume after message 6
      const committing = await consume(bus, [topic], groupId, 7);
      expect(committing).toHaveLength(7);
    });

    it("pause() holds delivery until resume() while other groups go on", async () => {
      const bus = await newBus();
      const topic = unique("pause");
      await bus.ensureTopics([{ name: topic }]);
      const received: string[] = [];
      const consumer = bus.consumer({ groupId: unique("g"), topics: [topic] });
      onTestFinished(() => consumer.stop());
      await consumer.run(async (message) => {
        received.push(message.offset);
        if (message.offset === "2") consumer.pause();
      });
      await bus.publish(topic, numbered(6));
      await until("offset 2", () => received.includes("2"));
      // a witness: another group fetching all six proves they were there to be fetched
      await consume(bus, [topic], unique("witness"), 6);
      expect(received).toEqual(["0", "1", "2"]);
      consumer.resume();
      await until("all six after resume", () => received.length === 6);
      expect(received).toEqual(["0", "1", "2", "3", "4", "5"]);
    });

    it("carries a function's dead letters: invalid and poison inputs are parked, committed, and the rest go on", async () => {
      const bus = await newBus();
      const prefix = unique("questa.contract");
      const Job = defineEvent({
        type: "dev.questa.contract.job.v1",
        topic: "jobs",
        data: z.object({ n: z.int() }),
        description: "a job",
      });
      const Done = defineEvent({
        type: "dev.questa.contract.done.v1",
        topic: "done",
        data: z.object({ n: z.int() }),
        description: "a finished job",
      });
      const runner = bindFunction(
        defineFunction({
          name: "contract-worker",
          consumes: [Job],
          emits: [Done],
          handle: async (event) => {
            if (event.data.n < 0) throw new DeadLetterError("negative", `cannot do job ${event.data.n}`);
            return [emit(Done, { n: event.data.n }, "k")];
          },
        }),
        {
          bus,
          store: new MemoryObjectStore(),
          run: "contract",
          topicPrefix: prefix,
          partitions: 2,
          logger: silentLogger(),
        },
      );
      onTestFinished(() => runner.stop());
      await runner.start();
      const job = (id: string, n: unknown) =>
        toBinaryMessage(
          cloudEvent({
            id,
            run: "contract",
            source: "test",
            type: Job.type,
            time: "2026-01-01T00:00:00.000Z",
            key: "k",
            data: { n },
          }),
        );
      await bus.publish(`${prefix}.jobs`, [job("unreadable", "three"), job("poison", -1), job("good", 2)]);
      const produced = await consume(bus, [`${prefix}.done`, runner.deadLetterTopic], unique("reader"), 3);
      const records = produced
        .filter((m) => m.topic === runner.deadLetterTopic)
        .map((m) => {
          const parsed = parseBinaryMessage(m);
          if (!parsed.ok) throw parsed.error;
          return DeadLetterRecordSchema.parse(parsed.value.data);
        });
      expect(records.map((r) => r.reason).sort()).toEqual(["invalid-data", "non-retryable"]);
      expect(records.find((r) => r.reason === "non-retryable")?.error).toMatchObject({
        code: "negative",
        message: "cannot do job -1",
      });
      const done = produced.filter((m) => m.topic === `${prefix}.done`);
      expect(done.map((m) => JSON.parse(decoder.decode(m.value)))).toEqual([{ n: 2 }]);
      // parked inputs are committed like handled ones: nothing is left for the group
      const group = bus.consumer({ groupId: runner.groupId, topics: [`${prefix}.jobs`] });
      await until("the worker's commits", async () => (await group.lag()) === 0);
    });
  });
}

/** resolves when `check` holds; the deadline only bounds a hang (a broker's group join takes seconds) */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
