import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { BusMessage, OutgoingMessage } from "../functions/runtime/bus.ts";
import { InputError, RetryableError } from "../functions/runtime/errors.ts";
import { KafkaAdmin, KafkaBus, type KafkaBusOptions } from "../functions/runtime/kafka-bus.ts";

// Integration tests of KafkaBus against the real broker started by test/infra/kafka-s3-setup.ts.
// Every test uses its own topics and groups.

const brokers = inject("kafkaBrokers");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const fast: KafkaBusOptions = { logLevel: "error", maxWaitTimeMs: 100, heartbeatIntervalMs: 1000 };
const buses: KafkaBus[] = [];

function newBus(options: KafkaBusOptions = {}): KafkaBus {
  const bus = new KafkaBus({ brokers, clientId: "questa-test" }, { ...fast, ...options });
  buses.push(bus);
  return bus;
}

afterAll(async () => {
  await Promise.all(buses.map((bus) => bus.close()));
});

function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function text(value: string): Uint8Array {
  return encoder.encode(value);
}

function numbered(count: number, from = 0): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    key: "k",
    headers: { n: String(from + i) },
    value: text(`m${from + i}`),
  }));
}

/** consumes until `count` messages arrived, then stops the consumer gracefully */
async function consumeAll(
  bus: KafkaBus,
  topic: string,
  groupId: string,
  count: number,
): Promise<BusMessage[]> {
  const received: BusMessage[] = [];
  const consumer = bus.consumer({ groupId, topics: [topic] });
  await consumer.run(async (message) => {
    received.push(message);
  });
  await until(`${count} messages on ${topic}`, () => received.length >= count);
  await consumer.stop();
  return received;
}

describe("KafkaBus against a real broker", () => {
  it("round-trips every kind of message with key, headers and bytes intact", async () => {
    const bus = newBus();
    const topic = unique("roundtrip");
    await bus.ensureTopics([{ name: topic, partitions: 3 }]);
    const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const large = randomBytes(512 * 1024);
    const sent: OutgoingMessage[] = [
      {
        key: "run-1",
        headers: {
          ce_specversion: "1.0",
          ce_type: "dev.questa.rollout.v1",
          ce_id: "3f1c-..",
          ce_source: "/questa/rollout",
          "content-type": "application/json",
        },
        value: text(JSON.stringify({ uri: "s3://bucket/a", sha256: "ab".repeat(32) })),
      },
      { headers: {}, value: text("no key, no headers") },
      { key: "binary", headers: { ce_type: "bytes" }, value: allBytes },
      { key: "empty", headers: { empty: "" }, value: new Uint8Array(0) },
      { key: "ünïcødé ✓", headers: { "x-ünïcødé": "värde ✓ 数学" }, value: text("∑ x² = π") },
      { key: "large", headers: { size: String(large.byteLength) }, value: large },
    ];
    await bus.publish(topic, sent);
    const received = await consumeAll(bus, topic, unique("g"), sent.length);
    expect(received).toHaveLength(sent.length);
    for (const original of sent) {
      const match = received.find((m) => Buffer.from(m.value).equals(Buffer.from(original.value)));
      expect(match, `message with key ${original.key}`).toBeDefined();
      expect(match?.key).toBe(original.key);
      expect(match?.headers).toEqual(original.headers);
      expect(match?.topic).toBe(topic);
      expect(match?.offset).toMatch(/^\d+$/);
      expect(Math.abs((match?.timestamp ?? 0) - Date.now())).toBeLessThan(10 * 60_000);
    }
  });

  it("keeps per-key order across partitions", async () => {
    const bus = newBus();
    const topic = unique("order");
    await bus.ensureTopics([{ name: topic, partitions: 4 }]);
    const keys = ["alpha", "beta", "gamma", "delta", "epsilon"];
    for (let round = 0; round < 4; round++) {
      await bus.publish(
        topic,
        keys.flatMap((key) =>
          Array.from({ length: 10 }, (_, i) => ({ key, headers: {}, value: text(String(round * 10 + i)) })),
        ),
      );
    }
    const received = await consumeAll(bus, topic, unique("g"), keys.length * 40);
    for (const key of keys) {
      const ofKey = received.filter((m) => m.key === key);
      expect(ofKey.map((m) => Number(decoder.decode(m.value)))).toEqual(
        Array.from({ length: 40 }, (_, i) => i),
      );
      expect(new Set(ofKey.map((m) => m.partition)).size).toBe(1);
    }
    expect(new Set(received.map((m) => m.partition)).size).toBeGreaterThan(1);
  });

  it("stops on a handler error without committing that message; the group resumes at it", async () => {
    const bus = newBus();
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
    await expect(consumer.done).rejects.toThrow("handler failed on offset 6");
    expect(handled).toEqual(["0", "1", "2", "3", "4", "5"]);
    expect(await consumer.lag()).toBe(4);

    const again = await consumeAll(bus, topic, groupId, 4);
    expect(again.map((m) => m.offset)).toEqual(["6", "7", "8", "9"]);
  });

  it("stop() finishes the in-flight message and commits what finished", async () => {
    const bus = newBus();
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
    const rest = await consumeAll(bus, topic, groupId, 11);
    expect(rest[0]?.offset).toBe("9");
    expect(rest).toHaveLength(11);
  });

  it("redelivers what a crashed consumer handled but never committed", async () => {
    const bus = newBus({ sessionTimeoutMs: 6000 });
    const topic = unique("crash");
    const groupId = unique("g");
    await bus.ensureTopics([{ name: topic }]);
    await bus.publish(topic, numbered(10));
    const script = fileURLToPath(new URL("./infra/kafka-crash-consumer.ts", import.meta.url));
    // one process (no tsx wrapper) so SIGKILL really kills the consumer
    const child = spawn(
      process.execPath,
      ["--import", "tsx", script, brokers.join(","), topic, groupId, "15", "6000"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      // the first batch (0-9) ends and is committed; then 10-14 are handled and 15 hangs
      await until("the child to handle the first batch", () => output.includes("handled 9\n"), 60_000);
      await bus.publish(topic, numbered(10, 10));
      await until("the child to hang at 15", () => output.includes("hanging 15\n"), 60_000);
    } finally {
      child.kill("SIGKILL");
    }
    expect(output).toContain("handled 14\n");
    const after = await consumeAll(bus, topic, groupId, 10);
    expect(after.map((m) => m.offset)).toEqual(["10", "11", "12", "13", "14", "15", "16", "17", "18", "19"]);
  });

  it("pause() stops delivery until resume()", async () => {
    const bus = newBus();
    const topic = unique("pause");
    await bus.ensureTopics([{ name: topic }]);
    const received: string[] = [];
    const consumer = bus.consumer({ groupId: unique("g"), topics: [topic] });
    await consumer.run(async (message) => {
      received.push(message.offset);
      if (message.offset === "2") consumer.pause();
    });
    await bus.publish(topic, numbered(6));
    await until("offset 2", () => received.includes("2"));
    // several fetch cycles (maxWait 100 ms) pass while paused
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(received).toEqual(["0", "1", "2"]);
    consumer.resume();
    await until("all 6 after resume", () => received.length === 6);
    expect(received).toEqual(["0", "1", "2", "3", "4", "5"]);
    await consumer.stop();
  });

  it("reports consumer lag", async () => {
    const bus = newBus();
    const topic = unique("lag");
    const groupId = unique("g");
    await bus.ensureTopics([{ name: topic, partitions: 2 }]);
    await bus.publish(topic, [
      ...numbered(4).map((m) => ({ ...m, key: "a" })),
      ...numbered(3).map((m) => ({ ...m, key: "b" })),
    ]);
    const idle = bus.consumer({ groupId, topics: [topic] });
    expect(await idle.lag()).toBe(7);
    await consumeAll(bus, topic, groupId, 7);
    expect(await idle.lag()).toBe(0);
    const perPartition = await bus.admin.groupLag(groupId, [topic]);
    expect(perPartition.map((p) => p.partition)).toEqual([0, 1]);
    expect(perPartition.reduce((sum, p) => sum + Number(p.high), 0)).toBe(7);
  });

  it("administers topics: create with partitions and retention, describe, delete", async () => {
    const bus = newBus();
    const name = unique("admin");
    await bus.ensureTopics([{ name, partitions: 3, replicationFactor: 1, retentionMs: 3_600_000 }]);
    // existing topics are left as they are
    expect(await bus.admin.ensureTopics([{ name, partitions: 5 }])).toEqual([]);
    // the operator's way in: an admin client of its own, from the same connection config
    const admin = new KafkaAdmin({ brokers }, { logLevel: "error" });
    try {
      expect(await admin.listTopics()).toContain(name);
    } finally {
      await admin.close();
    }
    const [described] = await bus.admin.describeTopics([name, unique("absent")]);
    expect(described).toMatchObject({ name, partitions: 3, replicationFactor: 1, retentionMs: 3_600_000 });
    expect(described?.configs["cleanup.policy"]).toBe("delete");
    expect(await bus.admin.listTopics()).toContain(name);
    await bus.admin.deleteTopics([name]);
    await until("the topic to disappear", async () => !(await bus.admin.listTopics()).includes(name));
    await bus.admin.deleteTopics([name]);
    const bad = bus.ensureTopics([{ name: "no spaces allowed" }, { name: "ok", partitions: 0 }]);
    await expect(bad).rejects.toBeInstanceOf(InputError);
    await expect(bad).rejects.toThrow(/topics\.0\.name[\s\S]*topics\.1\.partitions/);
  });

  it("fails fast with a RetryableError when no broker answers", async () => {
    const bus = new KafkaBus(
      { brokers: ["127.0.0.1:1"], clientId: "questa-test", connectionTimeoutMs: 500 },
      { logLevel: "nothing", publishRetries: 1, requestRetries: 1 },
    );
    buses.push(bus);
    await expect(bus.connect()).rejects.toBeInstanceOf(RetryableError);
    await expect(bus.publish("nowhere", numbered(1))).rejects.toBeInstanceOf(RetryableError);
  });
});

describe("KafkaBus with SASL", () => {
  const sasl = inject("kafkaSasl");
  for (const mechanism of ["plain", "scram-sha-256", "scram-sha-512"] as const) {
    it(`authenticates with ${mechanism} and round-trips a message`, async () => {
      const bus = new KafkaBus(
        { brokers: sasl.brokers, sasl: { mechanism, ...sasl.user } },
        { ...fast, logLevel: "error" },
      );
      buses.push(bus);
      const topic = unique(`sasl-${mechanism}`);
      await bus.ensureTopics([{ name: topic }]);
      await bus.publish(topic, [{ key: "k", headers: { mechanism }, value: text(mechanism) }]);
      const [message] = await consumeAll(bus, topic, unique("g"), 1);
      expect(message?.headers).toEqual({ mechanism });
    });
  }

  it("refuses a wrong password", async () => {
    const bus = new KafkaBus(
      {
        brokers: sasl.brokers,
        sasl: { mechanism: "scram-sha-512", username: sasl.user.username, password: "wrong" },
      },
      { logLevel: "nothing" },
    );
    buses.push(bus);
    await expect(bus.ensureTopics([{ name: unique("denied") }])).rejects.toThrow(/SASL|authentication/i);
  });
});

describe("KafkaBus with TLS", () => {
  const tls = inject("kafkaTls");

  it("connects with a CA and a client certificate read from files", async () => {
    const bus = new KafkaBus(
      {
        brokers: tls.brokers,
        tls: { ca: tls.files.caFile, cert: tls.files.certFile, key: tls.files.keyFile },
      },
      fast,
    );
    buses.push(bus);
    const topic = unique("tls");
    await bus.ensureTopics([{ name: topic }]);
    await bus.publish(topic, [{ key: "k", headers: { over: "tls" }, value: text("encrypted") }]);
    const [message] = await consumeAll(bus, topic, unique("g"), 1);
    expect(decoder.decode(message?.value)).toBe("encrypted");
    expect(message?.headers).toEqual({ over: "tls" });
  });

  it("is refused without the client certificate the listener requires", async () => {
    const bus = new KafkaBus(
      { brokers: tls.brokers, tls: { ca: tls.files.caFile }, connectionTimeoutMs: 2000 },
      { logLevel: "nothing", requestRetries: 1 },
    );
    buses.push(bus);
    const error = await bus.ensureTopics([{ name: unique("no-cert") }]).then(
      () => undefined,
      (e: unknown) => e,
    );
    // a handshake failure is configuration, not a transient outage
    expect(error).not.toBeInstanceOf(RetryableError);
    expect(String((error as Error).cause ?? error)).toMatch(/bad certificate|certificate required/);
  });
});
