import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { testTempDir } from "../../test/temp-dir.ts";
import { describeBusContract } from "./bus.contract.ts";
import type { BusMessage, OutgoingMessage } from "./bus.ts";
import { toBinaryMessage } from "./cloudevents.ts";
import { eventLogPath, listEventLogTopics, MemoryBus, readEventLogFile } from "./memory-bus.ts";

const text = (m: BusMessage) => new TextDecoder().decode(m.value);
const msg = (key: string | undefined, value: string): OutgoingMessage =>
  key === undefined
    ? { headers: {}, value: new TextEncoder().encode(value) }
    : { key, headers: { h: value }, value: new TextEncoder().encode(value) };

function event(id: string, key: string, data: unknown): OutgoingMessage {
  return toBinaryMessage({
    specversion: "1.0",
    id,
    source: "/questa/test/producer",
    type: "dev.questa.test.v1",
    subject: "test",
    time: "2026-01-01T00:00:00.000Z",
    datacontenttype: "application/json",
    partitionkey: key,
    data,
  });
}

/** resolves when `predicate` holds; the deadline only guards against hangs (fsync can be slow on a busy disk) */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describeBusContract("MemoryBus", async () => new MemoryBus());
// the local bus of `questa run`: journaled to a directory, CloudEvents only
describeBusContract("MemoryBus journaled", async () => MemoryBus.open({ dir: testTempDir("questa-bus-") }), {
  cloudEventsOnly: true,
});

// what only the in-process bus does, or checks through its own windows (messages, committedOffsets)
describe("MemoryBus", () => {
  it("spreads keyless messages round-robin", async () => {
    const bus = new MemoryBus({ defaultPartitions: 3 });
    await bus.publish("t", [msg(undefined, "a"), msg(undefined, "b"), msg(undefined, "c")]);
    expect(bus.messages("t").map((m) => m.partition)).toEqual([0, 1, 2]);
  });

  it("delivers one message at a time per partition and commits after the handler resolves", async () => {
    const bus = new MemoryBus({ defaultPartitions: 2 });
    await bus.publish("t", [msg("a", "1"), msg("a", "2"), msg("a", "3")]);
    let inFlight = 0;
    let maxInFlight = 0;
    const releases: (() => void)[] = [];
    const consumer = bus.consumer({ groupId: "g", topics: ["t"] });
    await consumer.run(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((resolve) => releases.push(resolve));
      inFlight--;
    });
    await until(() => releases.length === 1, "first delivery");
    expect(await consumer.lag()).toBe(3);
    releases[0]!();
    await until(() => releases.length === 2, "second delivery");
    expect(await consumer.lag()).toBe(2);
    releases[1]!();
    await until(() => releases.length === 3, "third delivery");
    releases[2]!();
    await until(() => bus.committedOffsets("g", "t").reduce((a, b) => a + b, 0) === 3, "commits");
    expect(maxInFlight).toBe(1);
    await bus.close();
  });

  it("gives each group its own offsets and shares partitions within a group", async () => {
    const bus = new MemoryBus();
    await bus.ensureTopics([{ name: "t", partitions: 4 }]);
    const keys = Array.from({ length: 32 }, (_, i) => `key-${i}`);
    await bus.publish(
      "t",
      keys.map((k) => msg(k, k)),
    );
    const a: BusMessage[] = [];
    const b: BusMessage[] = [];
    const other: BusMessage[] = [];
    const ca = bus.consumer({ groupId: "g", topics: ["t"] });
    const cb = bus.consumer({ groupId: "g", topics: ["t"] });
    const co = bus.consumer({ groupId: "other", topics: ["t"] });
    await Promise.all([
      ca.run(async (m) => void a.push(m)),
      cb.run(async (m) => void b.push(m)),
      co.run(async (m) => void other.push(m)),
    ]);
    await until(() => a.length + b.length === 32 && other.length === 32, "both groups to finish");
    expect(new Set([...a, ...b].map(text))).toEqual(new Set(keys));
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    const partitionsA = new Set(a.map((m) => m.partition));
    for (const m of b) expect(partitionsA.has(m.partition)).toBe(false);
    await bus.close();
  });

  it("hands a crashed member's partitions to the survivors, abandoning its in-flight commit", async () => {
    const bus = new MemoryBus();
    await bus.publish("t", [msg("k", "1"), msg("k", "2")]);
    let releaseZombie!: () => void;
    const c1 = bus.consumer({ groupId: "g", topics: ["t"] });
    await c1.run(() => new Promise<void>((resolve) => (releaseZombie = resolve)));
    await until(() => releaseZombie !== undefined, "first delivery");
    bus.crashConsumers("g", new Error("killed"));
    await expect(c1.done).rejects.toThrow("killed");
    releaseZombie();
    await new Promise((resolve) => setImmediate(resolve));
    expect(bus.committedOffsets("g", "t")).toEqual([0]);
    const seen: string[] = [];
    const c2 = bus.consumer({ groupId: "g", topics: ["t"] });
    await c2.run(async (m) => void seen.push(text(m)));
    await until(() => seen.length === 2, "redelivery");
    expect(seen).toEqual(["1", "2"]);
    await bus.close();
  });

  it("starts a new group at the end when fromBeginning is false", async () => {
    const bus = new MemoryBus();
    await bus.publish("t", [msg("k", "old")]);
    const seen: string[] = [];
    const c = bus.consumer({ groupId: "g", topics: ["t"], fromBeginning: false });
    await c.run(async (m) => void seen.push(text(m)));
    await bus.publish("t", [msg("k", "new")]);
    await until(() => seen.length === 1, "new message");
    expect(seen).toEqual(["new"]);
    await bus.close();
  });

  it("rejects bad topic names and unknown topics without auto-create", async () => {
    const bus = new MemoryBus({ autoCreateTopics: false });
    await expect(bus.publish("../etc", [msg("k", "x")])).rejects.toThrow(/topic name/);
    await expect(bus.publish("missing", [msg("k", "x")])).rejects.toThrow(/does not exist/);
  });
});

describe("MemoryBus journaled to a directory", () => {
  let dir: string;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("resumes topics, events and committed offsets after a restart", async () => {
    dir = await mkdtemp(join(tmpdir(), "questa-bus-"));
    const bus1 = await MemoryBus.open({ dir, defaultPartitions: 2 });
    await bus1.publish(
      "run.numbers",
      Array.from({ length: 6 }, (_, i) => event(`e${i}`, `k${i % 3}`, { n: i })),
    );
    const first: string[] = [];
    const c1 = bus1.consumer({ groupId: "g", topics: ["run.numbers"] });
    await c1.run(async (m) => {
      first.push(m.headers.ce_id!);
      if (first.length === 3) bus1.crashConsumers("g");
    });
    await expect(c1.done).rejects.toThrow(/crashed/);
    await bus1.flush();
    // a new process: nothing in memory, everything from the directory
    const bus2 = await MemoryBus.open({ dir });
    expect(bus2.topics().get("run.numbers")).toBe(2);
    expect(bus2.messages("run.numbers").map((m) => m.headers.ce_id)).toEqual(
      bus1.messages("run.numbers").map((m) => m.headers.ce_id),
    );
    const second: string[] = [];
    const c2 = bus2.consumer({ groupId: "g", topics: ["run.numbers"] });
    await c2.run(async (m) => void second.push(m.headers.ce_id!));
    await until(() => new Set([...first.slice(0, 2), ...second]).size === 6, "the rest");
    // the crashed third message is redelivered; the two committed ones are not
    expect(second).toContain(first[2]);
    for (const id of first.slice(0, 2)) expect(second).not.toContain(id);
    await bus2.close();
    const offsets = JSON.parse(await readFile(join(dir, "offsets.json"), "utf8"));
    expect(offsets.groups.g["run.numbers"].reduce((a: number, b: number) => a + b, 0)).toBe(6);
  });

  it("writes one structured CloudEvent per line and repairs a torn last line", async () => {
    dir = await mkdtemp(join(tmpdir(), "questa-bus-"));
    const bus = await MemoryBus.open({ dir });
    await bus.publish("run.questions", [event("a", "k", { x: 1 }), event("b", "k", { x: 2 })]);
    await bus.close();
    const path = eventLogPath(dir, "run.questions");
    const lines = (await readFile(path, "utf8")).trimEnd().split("\n");
    expect(lines.map((l) => JSON.parse(l))).toMatchObject([
      { specversion: "1.0", id: "a", type: "dev.questa.test.v1", partitionkey: "k", data: { x: 1 } },
      { id: "b", data: { x: 2 } },
    ]);
    expect(await listEventLogTopics(dir)).toEqual(["run.questions"]);
    await writeFile(path, `${lines.join("\n")}\n{"specversion":"1.0","id":"c`);
    const reopened = await MemoryBus.open({ dir });
    expect(reopened.messages("run.questions")).toHaveLength(2);
    expect((await readEventLogFile(path)).map((e) => e.id)).toEqual(["a", "b"]);
    await reopened.close();
  });

  it("names every concurrently created topic in topics.json and refuses logs it does not name", async () => {
    dir = await mkdtemp(join(tmpdir(), "questa-bus-"));
    const bus = await MemoryBus.open({ dir });
    await Promise.all([
      bus.ensureTopics([{ name: "a", partitions: 2 }]),
      bus.ensureTopics([{ name: "b", partitions: 3 }]),
      bus.publish("c", [event("x", "k", {})]),
    ]);
    await bus.close();
    expect(JSON.parse(await readFile(join(dir, "topics.json"), "utf8")).topics).toEqual({
      a: { partitions: 2 },
      b: { partitions: 3 },
      c: { partitions: 1 },
    });
    await writeFile(eventLogPath(dir, "stray"), "");
    await expect(MemoryBus.open({ dir })).rejects.toThrow(/stray.jsonl not named in topics.json/);
  });

  it("refuses messages that are not CloudEvents", async () => {
    dir = await mkdtemp(join(tmpdir(), "questa-bus-"));
    const bus = await MemoryBus.open({ dir });
    await expect(bus.publish("t", [msg("k", "not json")])).rejects.toThrow(
      /CloudEvents only.*ce_specversion/,
    );
    await bus.close();
  });
});
