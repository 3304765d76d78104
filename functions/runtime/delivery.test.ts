import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { Bus } from "./bus.ts";
import { parseBinaryMessage, toBinaryMessage } from "./cloudevents.ts";
import { defineFunction, emit } from "./define-function.ts";
import { type CloudEvent, defineEvent } from "./event-definition.ts";
import { FsObjectStore } from "./fs-object-store.ts";
import { silentLogger } from "./logger.ts";
import { MemoryBus } from "./memory-bus.ts";
import { MemoryObjectStore } from "./memory-object-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { bindFunction, deterministicEventId } from "./runner.ts";

// The acceptance test: a consumer dies mid-stream after writing its object but before its
// offset is committed; after a restart no input is lost and nothing is duplicated in the store or
// (counted by event id) on the output topic.

const Job = defineEvent({
  type: "dev.questa.test.job.v1",
  topic: "jobs",
  data: z.object({ n: z.int() }),
  description: "a job",
});
const JobDone = defineEvent({
  type: "dev.questa.test.job.done.v1",
  topic: "done",
  data: z.object({ n: z.int(), result: z.string(), sha256: z.string() }),
  description: "a finished job and its object",
});

const prefix = "questa.acc";
const group = `${prefix}.worker`;

/** the worker: writes its result object (deterministic key, if absent), then emits; `hook` runs in between */
function worker(hook: (event: CloudEvent<{ n: number }>) => Promise<void>) {
  return defineFunction({
    name: "worker",
    consumes: [Job],
    emits: [JobDone],
    handle: async (event, deps) => {
      const key = `results/${event.id}.json`;
      const put = await deps.store.put(key, JSON.stringify({ n: event.data.n, square: event.data.n ** 2 }), {
        ifAbsent: true,
      });
      await hook(event);
      return [
        emit(JobDone, { n: event.data.n, result: key, sha256: put.info.sha256 }, `job-${event.data.n % 5}`),
      ];
    },
  });
}

function jobs(count: number) {
  return Array.from({ length: count }, (_, n) =>
    toBinaryMessage({
      specversion: "1.0",
      id: `job-${n}`,
      source: "/questa/acc/producer",
      type: Job.type,
      subject: "acc",
      time: "2026-01-01T00:00:00.000Z",
      datacontenttype: "application/json",
      partitionkey: `key-${n % 7}`,
      data: { n },
    }),
  );
}

function bind(fn: ReturnType<typeof worker>, bus: Bus, store: ObjectStore) {
  return bindFunction(fn, {
    bus,
    store,
    run: "acc",
    topicPrefix: prefix,
    partitions: 3,
    logger: silentLogger(),
    sleep: async () => {},
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

/** no loss, no duplicates: every job has exactly one object and exactly one output event id */
async function expectExactlyOnceEffects(bus: MemoryBus, store: ObjectStore, count: number) {
  const objects = await store.list("results/");
  expect(objects.map((o) => o.key).sort()).toEqual(
    Array.from({ length: count }, (_, n) => `results/job-${n}.json`).sort(),
  );
  const outputs = bus.messages(`${prefix}.done`).map((m) => {
    const parsed = parseBinaryMessage(m);
    if (!parsed.ok) throw parsed.error;
    return parsed.value as CloudEvent<{ n: number; result: string; sha256: string }>;
  });
  const byId = new Map<string, CloudEvent<{ n: number; result: string; sha256: string }>>();
  for (const event of outputs) {
    const earlier = byId.get(event.id);
    // at-least-once: a redelivered input may re-publish, but always the same event under the same id
    if (earlier) expect(event.data).toEqual(earlier.data);
    byId.set(event.id, event);
  }
  expect(byId.size).toBe(count);
  for (let n = 0; n < count; n++) {
    const id = deterministicEventId(`job-${n}`, JobDone.type, `job-${n % 5}`);
    const event = byId.get(id);
    expect(event?.data.n).toBe(n);
    expect(event?.data.sha256).toBe(objects.find((o) => o.key === event?.data.result)?.sha256);
  }
  expect(bus.messages(`${prefix}.dead-letter`)).toEqual([]);
  return outputs;
}

/** an ObjectStore as one process sees it: once the process dies, its writes in flight land and no more start */
class ProcessStore implements ObjectStore {
  readonly #store: ObjectStore;
  readonly #inFlight = new Set<Promise<unknown>>();
  #dead = false;

  constructor(store: ObjectStore) {
    this.#store = store;
  }

  async die(): Promise<void> {
    this.#dead = true;
    await Promise.allSettled([...this.#inFlight]);
  }

  #track<T>(operation: () => Promise<T>): Promise<T> {
    if (this.#dead) return new Promise<T>(() => {}); // a dead process never sees an answer
    const promise = operation();
    this.#inFlight.add(promise);
    promise.finally(() => this.#inFlight.delete(promise)).catch(() => {});
    return promise;
  }

  put(...args: Parameters<ObjectStore["put"]>) {
    return this.#track(() => this.#store.put(...args));
  }
  get(key: string) {
    return this.#track(() => this.#store.get(key));
  }
  head(key: string) {
    return this.#track(() => this.#store.head(key));
  }
  list(prefix: string) {
    return this.#track(() => this.#store.list(prefix));
  }
  delete(key: string) {
    return this.#track(() => this.#store.delete(key));
  }
  uri(key: string) {
    return this.#store.uri(key);
  }
}

describe("delivery across a consumer crash (acceptance)", () => {
  it("in-process bus: a killed consumer's uncommitted work is redone once, zombies change nothing", async () => {
    const bus = new MemoryBus();
    const store = new MemoryObjectStore();
    const handled: string[] = [];
    let releaseZombie!: () => void;
    const zombieGate = new Promise<void>((resolve) => (releaseZombie = resolve));
    let crashed = false;
    const fn = worker(async (event) => {
      handled.push(event.id);
      if (event.id === "job-17" && !crashed) {
        crashed = true;
        // the process is killed here: object written, event not published, offset not committed
        bus.crashConsumers(group, new Error("SIGKILL"));
        await zombieGate;
      }
    });
    const first = bind(fn, bus, store);
    await first.start();
    await bus.publish(`${prefix}.jobs`, jobs(40));
    await expect(first.done).rejects.toThrow("SIGKILL");
    const committedBeforeRestart = bus.committedOffsets(group, `${prefix}.jobs`).reduce((a, b) => a + b, 0);
    expect(committedBeforeRestart).toBeLessThan(40);

    const second = bind(fn, bus, store);
    await second.start();
    await until(
      () => bus.committedOffsets(group, `${prefix}.jobs`).reduce((a, b) => a + b, 0) === 40,
      "all commits",
    );
    // the killed process wakes up and finishes its handler: its publish lands, its commit does not
    releaseZombie();
    await until(() => handled.filter((id) => id === "job-17").length === 2, "redelivery of job-17");
    await new Promise((resolve) => setImmediate(resolve));
    await second.stop();

    expect(handled.filter((id) => id === "job-17")).toHaveLength(2);
    await expectExactlyOnceEffects(bus, store, 40);
  });

  it("journaled bus and filesystem store: a new process resumes from the directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "questa-acceptance-"));
    try {
      const bus1 = await MemoryBus.open({ dir: join(dir, "bus") });
      const store1 = new ProcessStore(new FsObjectStore(join(dir, "objects")));
      let count = 0;
      let crashed: Promise<void> | undefined;
      const fn1 = worker(async () => {
        count++;
        if (count === 12) {
          // the process dies between this object write and its commit; it writes nothing afterwards
          crashed = Promise.all([bus1.crash(new Error("power loss")), store1.die()]).then(() => {});
          await new Promise<never>(() => {});
        }
      });
      const first = bind(fn1, bus1, store1);
      await first.start();
      await bus1.publish(`${prefix}.jobs`, jobs(30));
      await expect(first.done).rejects.toThrow("power loss");
      await crashed;
      const objectsAtCrash = (await new FsObjectStore(join(dir, "objects")).list("results/")).length;
      expect(objectsAtCrash).toBeGreaterThanOrEqual(12);
      expect(objectsAtCrash).toBeLessThan(30);

      // a fresh process: bus and store rebuilt from disk only
      const bus2 = await MemoryBus.open({ dir: join(dir, "bus") });
      const store2 = new FsObjectStore(join(dir, "objects"));
      expect(bus2.messages(`${prefix}.jobs`)).toHaveLength(30);
      const second = bind(
        worker(async () => {}),
        bus2,
        store2,
      );
      await second.start();
      await until(
        () => bus2.committedOffsets(group, `${prefix}.jobs`).reduce((a, b) => a + b, 0) === 30,
        "commits",
      );
      await second.stop();
      await bus2.close();

      // and what a third process (or `questa events DIR`) reads back from the journal
      const bus3 = await MemoryBus.open({ dir: join(dir, "bus") });
      expect(bus3.committedOffsets(group, `${prefix}.jobs`).reduce((a, b) => a + b, 0)).toBe(30);
      await expectExactlyOnceEffects(bus3, store2, 30);
      await bus3.close();
    } finally {
      await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  });
});
