import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, inject, it } from "vitest";
import { describeBusContract } from "../functions/runtime/bus.contract.ts";
import type { BusMessage, OutgoingMessage } from "../functions/runtime/bus.ts";
import { InputError, RetryableError } from "../functions/runtime/errors.ts";
import { KafkaAdmin, KafkaBus, type KafkaBusOptions } from "../functions/runtime/kafka-bus.ts";

// Integration tests of KafkaBus against the real broker started by test/infra/kafka-s3-setup.ts:
// the Bus contract every bus passes, then what only Kafka does. Every test uses its own topics and groups.

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

// the contract closes each bus it makes
describeBusContract("KafkaBus", async () => new KafkaBus({ brokers, clientId: "questa-test" }, fast));

describe("KafkaBus against a real broker", () => {
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
