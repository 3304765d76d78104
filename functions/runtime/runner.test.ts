import { describe, expect, it } from "vitest";
import { z } from "zod";
import type { OutgoingMessage } from "./bus.ts";
import { ManualClock } from "./clock.ts";
import { parseBinaryMessage, toBinaryMessage } from "./cloudevents.ts";
import { DeadLetter, type DeadLetterRecord, DeadLetterRecordSchema } from "./dead-letter.ts";
import { defineFunction, emit, type FunctionDeps, isEvent } from "./define-function.ts";
import { DeadLetterError, RetryableError, UnavailableError } from "./errors.ts";
import { type CloudEvent, defineEvent } from "./event-definition.ts";
import { startHealthServer } from "./health-server.ts";
import { capturingLogger, silentLogger } from "./logger.ts";
import { MemoryBus } from "./memory-bus.ts";
import { MemoryObjectStore } from "./memory-object-store.ts";
import { partitionForKey } from "./partitioner.ts";
import { bindFunction, deterministicEventId, type RunnerOptions } from "./runner.ts";
import { sha256Hex } from "./sha256.ts";

const NumberSubmitted = defineEvent({
  type: "dev.questa.test.number.v1",
  topic: "numbers",
  data: z.object({ n: z.int() }),
  description: "a number to square",
});
const NumberIgnored = defineEvent({
  type: "dev.questa.test.other.v1",
  topic: "numbers",
  data: z.object({ text: z.string() }),
  description: "another event on the same topic",
});
const NumberSquared = defineEvent({
  type: "dev.questa.test.squared.v1",
  topic: "squares",
  data: z.object({ n: z.int(), square: z.int().nonnegative() }),
  description: "a squared number",
});

const prefix = "questa.t";

function input(id: string, data: unknown, type = NumberSubmitted.type, key = `k-${id}`): OutgoingMessage {
  return toBinaryMessage({
    specversion: "1.0",
    id,
    source: "/questa/t/test",
    type,
    subject: "t",
    time: "2026-01-01T00:00:00.000Z",
    datacontenttype: "application/json",
    partitionkey: key,
    data,
  });
}

function events(bus: MemoryBus, topic: string): CloudEvent<unknown>[] {
  return bus.messages(topic).map((m) => {
    const parsed = parseBinaryMessage(m);
    if (!parsed.ok) throw parsed.error;
    return parsed.value;
  });
}

function deadLetters(bus: MemoryBus): DeadLetterRecord[] {
  return events(bus, `${prefix}.dead-letter`).map((e) => {
    expect(e.type).toBe(DeadLetter.type);
    return DeadLetterRecordSchema.parse(e.data);
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

const committedTotal = (bus: MemoryBus, group: string, topic: string) =>
  bus.committedOffsets(group, topic).reduce((a, b) => a + b, 0);

function setup<Services>(
  handle: Parameters<typeof defineFunction<readonly [typeof NumberSubmitted], Services>>[0]["handle"],
  extra: Partial<RunnerOptions<Services>> = {},
) {
  const bus = new MemoryBus({ defaultPartitions: 2 });
  const store = new MemoryObjectStore();
  const clock = new ManualClock();
  const fn = defineFunction({
    name: "squarer",
    consumes: [NumberSubmitted],
    emits: [NumberSquared],
    handle,
  });
  const runner = bindFunction(fn, {
    bus,
    store,
    run: "t",
    topicPrefix: prefix,
    logger: silentLogger(),
    clock,
    sleep: clock.sleep,
    jitter: () => 0.5,
    retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 },
    ...extra,
  } as RunnerOptions<Services>);
  return { bus, store, clock, runner, group: runner.groupId };
}

const square = async (event: CloudEvent<{ n: number }>) => [
  emit(NumberSquared, { n: event.data.n, square: event.data.n ** 2 }, `sq-${event.data.n}`),
];

describe("FunctionRunner", () => {
  it("counts the wall time its handlers are busy once, however many run at the same time", async () => {
    const release = new Map<number, () => void>();
    const started: number[] = [];
    const { bus, clock, runner, group } = setup(async (event) => {
      started.push(event.data.n);
      await new Promise<void>((resolve) => release.set(event.data.n, resolve));
      return square(event);
    });
    // two keys on different partitions: their handlers run at the same time
    const keys = ["a", "b", "c", "d", "e", "f"].map((k) => `k-${k}`);
    const first = keys[0]!;
    const other = keys.find((k) => partitionForKey(k, 2) !== partitionForKey(first, 2))!;
    await runner.start();
    expect(runner.busyMilliseconds).toBe(0);
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 }, NumberSubmitted.type, first)]);
    await until(() => started.length === 1, "the first handler");
    clock.advance(100);
    await bus.publish(`${prefix}.numbers`, [input("b", { n: 2 }, NumberSubmitted.type, other)]);
    await until(() => started.length === 2, "the second handler");
    clock.advance(50);
    release.get(1)!();
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "the first commit");
    clock.advance(30);
    expect(runner.busyMilliseconds).toBe(180); // still busy with the second
    release.get(2)!();
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "the second commit");
    clock.advance(1000); // idle time is not busy time
    expect(runner.busyMilliseconds).toBe(180);
    expect(await runner.metrics.registry.metrics()).toMatch(
      /questa_function_busy_seconds_total\{function="squarer"\} 0\.18/,
    );
    await runner.stop();
  });

  it("lets every message in flight wait on its drain signal without Node warning of a listener leak", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => void warnings.push(warning.name);
    process.on("warning", onWarning);
    const bus = new MemoryBus({ defaultPartitions: 32 });
    const releases: (() => void)[] = [];
    const fn = defineFunction({
      name: "waiter",
      consumes: [NumberSubmitted],
      emits: [NumberSquared],
      handle: async (event, deps) => {
        // what a handler waiting on a server does: listens for the drain while it waits
        await new Promise<void>((resolve) => {
          deps.signal.addEventListener("abort", () => resolve(), { once: true });
          releases.push(resolve);
        });
        return square(event);
      },
    });
    const runner = bindFunction(fn, {
      bus,
      store: new MemoryObjectStore(),
      run: "t",
      topicPrefix: prefix,
      logger: silentLogger(),
    });
    try {
      await runner.start();
      const keys = Array.from({ length: 200 }, (_, i) => `k-${i}`);
      const spread = [...new Map(keys.map((k) => [partitionForKey(k, 32), k])).values()];
      await bus.publish(
        `${prefix}.numbers`,
        spread.map((k, i) => input(`w${i}`, { n: i }, NumberSubmitted.type, k)),
      );
      await until(() => releases.length === spread.length, "every partition's handler waiting");
      expect(spread.length).toBeGreaterThan(20);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      for (const release of releases) release();
      await runner.stop();
      process.off("warning", onWarning);
    }
  });

  it("retries a retryable failure with backoff, then succeeds and commits", async () => {
    let attempts = 0;
    const { bus, clock, runner, group } = setup(async (event) => {
      attempts++;
      if (attempts < 3) throw new RetryableError("busy", "peer not ready");
      return square(event);
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 3 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(attempts).toBe(3);
    // equal jitter at 0.5: 3/4 of 100 then of 200
    expect(clock.sleeps).toEqual([75, 150]);
    const out = events(bus, `${prefix}.squares`);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({
      id: deterministicEventId("a", NumberSquared.type, "sq-3"),
      source: "/questa/t/squarer",
      subject: "t",
      partitionkey: "sq-3",
      data: { n: 3, square: 9 },
    });
    const metrics = await runner.metrics.registry.metrics();
    expect(metrics).toMatch(
      /questa_function_retries_total\{function="squarer",type="dev.questa.test.number.v1"\} 2/,
    );
    expect(metrics).toMatch(/questa_function_events_processed_total\{[^}]*\} 1/);
    expect(metrics).toMatch(/questa_function_consumer_lag\{[^}]*\} 0/);
    await runner.stop();
  });

  it("honours retryAfterMs as a floor and dead-letters when retries run out", async () => {
    const { bus, clock, runner, group } = setup(async () => {
      throw new RetryableError("throttled", "slow down", { retryAfterMs: 500 });
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(clock.sleeps).toEqual([500, 500, 500]);
    const [record] = deadLetters(bus);
    expect(record).toMatchObject({
      function: "squarer",
      reason: "retries-exhausted",
      attempts: 4,
      error: { code: "throttled", message: "slow down", action: "retry" },
      message: { topic: `${prefix}.numbers`, partition: expect.any(Number), offset: "0", key: "k-a" },
    });
    expect(JSON.parse(record!.message.value.data)).toEqual({ n: 1 });
    await runner.stop();
  });

  it("dead-letters schema-invalid input with the field path, commits it and goes on", async () => {
    const handled: number[] = [];
    const { bus, runner, group } = setup(async (event) => {
      handled.push(event.data.n);
      return square(event);
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [
      input("bad", { n: "three" }, undefined, "k"),
      input("good", { n: 2 }, undefined, "k"),
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    expect(handled).toEqual([2]);
    const [record] = deadLetters(bus);
    expect(record?.reason).toBe("invalid-data");
    expect(record?.attempts).toBe(0);
    expect(record?.error.code).toBe("invalid_event_data");
    expect(record?.error.action).toBe("reject");
    expect(record?.error.issues).toEqual([
      {
        path: "data.n",
        message: expect.stringMatching(/number/),
        hint: `make ${NumberSubmitted.type} bad match the event's schema`,
      },
    ]);
    expect(record?.error.message).toMatch(/^data\.n: /);
    await runner.stop();
  });

  it("dead-letters a message that is not a CloudEvent with a precise reason", async () => {
    const { bus, runner, group } = setup(square);
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [
      { key: "x", headers: { "content-type": "application/json" }, value: new TextEncoder().encode("{}") },
      { key: "y", headers: { ...input("z", {}).headers }, value: new Uint8Array([0xff, 0xfe]) },
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    const records = deadLetters(bus);
    expect(records.map((r) => r.reason)).toEqual(["invalid-cloudevent", "invalid-cloudevent"]);
    expect(records.map((r) => r.error.message).sort()).toEqual([
      "header ce_specversion is missing (not a CloudEvent)",
      "value is not valid UTF-8 (expected JSON data)",
    ]);
    expect(records.find((r) => r.message.key === "y")?.message.value).toMatchObject({
      encoding: "base64",
      data: "//4=",
    });
    await runner.stop();
  });

  it("dead-letters at once on DeadLetterError and InputError", async () => {
    const { bus, runner, group } = setup(async (event) => {
      throw new DeadLetterError("poison", `cannot square ${event.data.n}`);
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 5 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(deadLetters(bus)).toMatchObject([
      {
        reason: "non-retryable",
        attempts: 1,
        error: { code: "poison", message: "cannot square 5", action: "dead-letter" },
      },
    ]);
    await runner.stop();
  });

  it("validates emitted events: invalid data or an undeclared type dead-letters and publishes nothing", async () => {
    const Undeclared = defineEvent({
      type: "dev.questa.test.undeclared.v1",
      topic: "other",
      data: z.object({}),
      description: "not in emits",
    });
    const { bus, runner, group } = setup(async (event) =>
      event.data.n === 1
        ? [emit(NumberSquared, { n: 1, square: -1 }, "k")]
        : [emit(NumberSquared, { n: 2, square: 4 }, "k"), emit(Undeclared, {}, "k")],
    );
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [
      input("one", { n: 1 }, undefined, "k"),
      input("two", { n: 2 }, undefined, "k"),
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    expect(events(bus, `${prefix}.squares`)).toEqual([]);
    const records = deadLetters(bus);
    expect(records.map((r) => r.reason)).toEqual(["invalid-emitted-event", "invalid-emitted-event"]);
    expect(records[0]?.error.message).toMatch(/\[0\] dev.questa.test.squared.v1 \(key k\): square: /);
    expect(records[1]?.error.message).toMatch(
      /\[1\] dev.questa.test.undeclared.v1 is not declared in squarer's emits/,
    );
    await runner.stop();
  });

  it("commits and counts events of types it does not consume without handling them", async () => {
    let calls = 0;
    const { bus, runner, group } = setup(async (event) => {
      calls++;
      return square(event);
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("o", { text: "hi" }, NumberIgnored.type)]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(calls).toBe(0);
    expect(deadLetters(bus)).toEqual([]);
    expect(await runner.metrics.registry.metrics()).toMatch(
      /questa_function_events_skipped_total\{function="squarer",type="dev.questa.test.other.v1"\} 1/,
    );
    await runner.stop();
  });

  it("gives repeated outputs distinct deterministic ids and the same ids on reprocessing", async () => {
    const twice = async (event: CloudEvent<{ n: number }>) => [
      emit(NumberSquared, { n: event.data.n, square: 0 }, "same"),
      emit(NumberSquared, { n: event.data.n, square: 1 }, "same"),
      emit(NumberSquared, { n: event.data.n, square: 2 }, "same", "explicit-id"),
    ];
    const first = setup(twice);
    await first.runner.start();
    await first.bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await until(() => committedTotal(first.bus, first.group, `${prefix}.numbers`) === 1, "commit");
    const second = setup(twice, { groupId: "other" });
    await second.runner.start();
    await second.bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await until(() => committedTotal(second.bus, "other", `${prefix}.numbers`) === 1, "commit");
    const ids = events(first.bus, `${prefix}.squares`).map((e) => e.id);
    expect(new Set(ids).size).toBe(3);
    expect(ids[2]).toBe("explicit-id");
    expect(events(second.bus, `${prefix}.squares`).map((e) => e.id)).toEqual(ids);
    await first.runner.stop();
    await second.runner.stop();
  });

  it("hands handlers typed services, a per-event seeded rng and a logger with event fields", async () => {
    const { logger, records } = capturingLogger();
    const draws: number[] = [];
    const { bus, runner, group } = setup(
      async (event, deps: FunctionDeps<{ multiplier: number }>) => {
        draws.push(deps.rng.next());
        deps.logger.info("handling");
        return [
          emit(NumberSquared, { n: event.data.n, square: event.data.n ** 2 * deps.services.multiplier }, "k"),
        ];
      },
      { services: { multiplier: 10 }, logger },
    );
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [
      input("a", { n: 2 }),
      input("b", { n: 2 }),
      input("a", { n: 2 }),
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 3, "commits");
    expect(events(bus, `${prefix}.squares`).map((e) => e.data)).toEqual([
      { n: 2, square: 40 },
      { n: 2, square: 40 },
      { n: 2, square: 40 },
    ]);
    // same event id, same draws; another id, other draws
    const byOrder = bus.messages(`${prefix}.numbers`).map((m) => m.headers.ce_id);
    const drawOf = (id: string) => draws[byOrder.indexOf(id)];
    expect(draws).toHaveLength(3);
    expect(new Set(draws).size).toBe(2);
    expect(drawOf("a")).toBeDefined();
    expect(records.find((r) => r.msg === "handling")).toMatchObject({
      run: "t",
      function: "squarer",
      eventId: "a",
    });
    await runner.stop();
  });

  it("drains on stop: the in-flight handler finishes, publishes and commits; nothing new starts", async () => {
    let release!: () => void;
    const started: string[] = [];
    const { bus, runner, group } = setup(async (event) => {
      started.push(event.id);
      await new Promise<void>((resolve) => (release = resolve));
      return square(event);
    });
    await runner.start();
    expect(runner.ready()).toBe(true);
    await bus.publish(`${prefix}.numbers`, [
      input("a", { n: 4 }, undefined, "k"),
      input("b", { n: 5 }, undefined, "k"),
    ]);
    await until(() => started.length === 1, "first delivery");
    const stopped = runner.stop();
    expect(runner.ready()).toBe(false);
    release();
    await stopped;
    await runner.done;
    expect(started).toEqual(["a"]);
    expect(events(bus, `${prefix}.squares`).map((e) => e.data)).toEqual([{ n: 4, square: 16 }]);
    expect(committedTotal(bus, group, `${prefix}.numbers`)).toBe(1);
  });

  it("a drain interrupts a retry wait and leaves that message uncommitted", async () => {
    let sleeping!: () => void;
    const { bus, runner, group } = setup(
      async () => {
        throw new RetryableError("busy", "try later");
      },
      {
        sleep: (_ms, signal) =>
          new Promise<void>((_resolve, reject) => {
            sleeping();
            signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
          }),
      },
    );
    const asleep = new Promise<void>((resolve) => (sleeping = resolve));
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await asleep;
    await runner.stop();
    await runner.done;
    expect(committedTotal(bus, group, `${prefix}.numbers`)).toBe(0);
    expect(deadLetters(bus)).toEqual([]);
  });

  it("stops with an error when outputs cannot be published, leaving the input uncommitted", async () => {
    const { bus, runner, group } = setup(square);
    await runner.start();
    const publish = bus.publish.bind(bus);
    bus.publish = async (topic, messages) => {
      if (topic.endsWith(".squares")) throw new Error("broker down");
      return publish(topic, messages);
    };
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await expect(runner.done).rejects.toThrow(
      /publishing 1 message\(s\) to questa.t.squares failed 4 times: broker down/,
    );
    expect(committedTotal(bus, group, `${prefix}.numbers`)).toBe(0);
  });

  it("waits out an unavailable dependency without counting attempts or dead-lettering, logging it once", async () => {
    let calls = 0;
    const logs = capturingLogger("debug");
    const { bus, clock, runner, group } = setup(
      async (event) => {
        calls++;
        // far more failures than maxAttempts (4): an outage is not the message's fault
        if (calls <= 12) throw new UnavailableError("s3_unavailable", "s3 put: connect ECONNREFUSED");
        return square(event);
      },
      { logger: logs.logger },
    );
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 4 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(calls).toBe(13);
    expect(deadLetters(bus)).toEqual([]);
    expect(events(bus, `${prefix}.squares`).map((e) => e.data)).toEqual([{ n: 4, square: 16 }]);
    // backoff grows to the cap (1000 ms here)
    expect(clock.sleeps.slice(0, 4)).toEqual([75, 150, 300, 600]);
    expect(Math.max(...clock.sleeps)).toBe(750);
    // pino level 40 = warn
    const warnings = logs.records.filter((e) => e.level === 40).map((e) => e.msg);
    expect(warnings).toEqual([
      "s3_unavailable: waiting for the dependency (messages are kept, not dead-lettered)",
      expect.stringMatching(/^s3_unavailable: recovered after \d+(\.\d)? s$/),
    ]);
    await runner.stop();
  });

  it("says an outage is over only when a message that waited for the dependency goes through", async () => {
    const logs = capturingLogger("info");
    let serverUp = false;
    const clock = new ManualClock();
    const { bus, runner, group } = setup(
      async (event) => {
        // message 2 does not need the server (a skipped question does not sample)
        if (event.data.n === 1 && !serverUp)
          throw new UnavailableError("vllm_unavailable", "connect ECONNREFUSED");
        return square(event);
      },
      {
        logger: logs.logger,
        clock,
        // the waiting message must not run out of budget (each wait adds up to 1 s to the clock)
        retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000, outageBudgetMs: 24 * 3_600_000 },
        // a real turn of the event loop per wait, so the other partition's message runs meanwhile
        sleep: async (ms) => {
          clock.advance(ms);
          await new Promise((resolve) => setTimeout(resolve, 1));
        },
      },
    );
    const first = "k-a";
    const other = ["k-b", "k-c", "k-d", "k-e"].find(
      (k) => partitionForKey(k, 2) !== partitionForKey(first, 2),
    )!;
    const warnings = () => logs.records.filter((e) => e.level === 40).map((e) => e.msg);
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 }, NumberSubmitted.type, first)]);
    await until(() => warnings().length === 1, "the outage");
    await bus.publish(`${prefix}.numbers`, [input("b", { n: 2 }, NumberSubmitted.type, other)]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "the other message");
    expect(warnings()).toEqual([
      "vllm_unavailable: waiting for the dependency (messages are kept, not dead-lettered)",
    ]);
    serverUp = true;
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "the waiting message");
    expect(warnings()).toEqual([
      "vllm_unavailable: waiting for the dependency (messages are kept, not dead-lettered)",
      expect.stringMatching(/^vllm_unavailable: recovered after \d+(\.\d)? s$/),
    ]);
    await runner.stop();
  });

  it("stops with the message uncommitted when a dependency stays away beyond the outage budget", async () => {
    const { bus, runner, group } = setup(
      async () => {
        throw new UnavailableError("kafka_unavailable", "no broker available");
      },
      { retry: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000, outageBudgetMs: 10_000 } },
    );
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
    await expect(runner.done).rejects.toThrow(/stayed unavailable for 1\d s .* \(budget 10 s\)/);
    expect(committedTotal(bus, group, `${prefix}.numbers`)).toBe(0);
    expect(deadLetters(bus)).toEqual([]);
  });

  it("dead-letters an input whose output the broker refuses for good, once, without retrying the publish", async () => {
    const { bus, runner, group } = setup(square);
    await runner.start();
    const publish = bus.publish.bind(bus);
    let refused = 0;
    bus.publish = async (topic, messages) => {
      if (topic.endsWith(".squares")) {
        refused++;
        throw new DeadLetterError("kafka_message_rejected", "kafka publish: MESSAGE_TOO_LARGE");
      }
      return publish(topic, messages);
    };
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 5 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 1, "commit");
    expect(refused).toBe(1);
    expect(deadLetters(bus).map((r) => [r.reason, r.error.code])).toEqual([
      ["output-rejected", "kafka_message_rejected"],
    ]);
    await runner.stop();
  });

  it("keeps dead-letter records bounded: a large value is excerpted, stored whole, and hashed", async () => {
    const { bus, store, runner, group } = setup(square, { deadLetterKeyPrefix: "runs/t/dead-letters" });
    await runner.start();
    const big = new Uint8Array(800 * 1024).map((_, i) => (i * 7919 + 13) % 256);
    const controls = new TextEncoder().encode("\u0001".repeat(200_000));
    await bus.publish(`${prefix}.numbers`, [
      { key: "big", headers: {}, value: big },
      { key: "ctl", headers: { "content-type": "text/plain" }, value: controls },
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    const records = deadLetters(bus);
    for (const [record, original] of [
      [records.find((r) => r.message.key === "big")!, big],
      [records.find((r) => r.message.key === "ctl")!, controls],
    ] as const) {
      expect(record.message.value).toMatchObject({
        size: original.byteLength,
        sha256: sha256Hex(original),
        truncated: true,
      });
      const stored = record.message.value.stored!;
      expect(stored.key).toMatch(/^runs\/t\/dead-letters\/squarer\/dl-[0-9a-f]{32}\.bin$/);
      expect(Buffer.from((await store.get(stored.key))!).equals(Buffer.from(original))).toBe(true);
    }
    // every record as published stays far under Kafka's 1 MB message limit
    for (const m of bus.messages(`${prefix}.dead-letter`))
      expect(m.value.byteLength).toBeLessThan(256 * 1024);
    await runner.stop();
  });

  it("publishes a minimal dead letter when the broker refuses the full one, and commits either way", async () => {
    const { bus, runner, group } = setup(async () => {
      throw new DeadLetterError("poison", "x".repeat(100));
    });
    await runner.start();
    const publish = bus.publish.bind(bus);
    let rejections = 0;
    bus.publish = async (topic, messages) => {
      // the broker takes only records without the original value
      const record = topic.endsWith(".dead-letter") ? parseBinaryMessage(messages[0]!) : undefined;
      if (record?.ok && (record.value.data as DeadLetterRecord).message.value.data !== "") {
        rejections++;
        throw new DeadLetterError("kafka_message_rejected", "kafka publish: RECORD_LIST_TOO_LARGE");
      }
      return publish(topic, messages);
    };
    await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 }), input("b", { n: 2 })]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    expect(rejections).toBe(2);
    const records = deadLetters(bus);
    expect(records).toHaveLength(2);
    expect(records.every((r) => r.message.value.truncated === true && r.message.value.size! > 0)).toBe(true);
    await runner.stop();
  });

  it("dead-letters events of types no component defines; known types it does not consume are skipped", async () => {
    const { bus, runner, group } = setup(square, {
      knownTypes: new Set([NumberSubmitted.type, NumberIgnored.type]),
    });
    await runner.start();
    await bus.publish(`${prefix}.numbers`, [
      input("x", { text: "hi" }, NumberIgnored.type),
      input("y", { n: 1 }, "dev.questa.bogus.v1"),
    ]);
    await until(() => committedTotal(bus, group, `${prefix}.numbers`) === 2, "commits");
    expect(deadLetters(bus).map((r) => [r.reason, r.error.code])).toEqual([
      ["unknown-type", "unknown_event_type"],
    ]);
    await runner.stop();
  });

  it("serves /metrics, /healthz and /readyz on 127.0.0.1", async () => {
    const { bus, runner } = setup(square);
    const server = await startHealthServer({
      registry: runner.metrics.registry,
      isReady: () => runner.ready(),
    });
    try {
      expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      await runner.start();
      await bus.publish(`${prefix}.numbers`, [input("a", { n: 1 })]);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).toContain("# TYPE questa_function_handler_duration_seconds histogram");
      expect(metrics).toContain("questa_function_consumer_lag");
      await runner.stop();
      expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

describe("defineFunction", () => {
  it("rejects bad names, empty consumes and duplicate types", () => {
    const handle = async () => [];
    expect(() =>
      defineFunction({ name: "Bad Name", consumes: [NumberSubmitted], emits: [], handle }),
    ).toThrow(/kebab-case/);
    expect(() => defineFunction({ name: "f", consumes: [], emits: [], handle })).toThrow(/at least one/);
    expect(() =>
      defineFunction({ name: "f", consumes: [NumberSubmitted, NumberSubmitted], emits: [], handle }),
    ).toThrow(/twice/);
  });

  it("narrows consumed events by definition", () => {
    const fn = defineFunction({
      name: "both",
      consumes: [NumberSubmitted, NumberIgnored],
      emits: [],
      handle: (event) => {
        if (isEvent(event, NumberIgnored)) return event.data.text === "" ? [] : [];
        return event.data.n > 0 ? [] : [];
      },
    });
    expect([...fn.consumesByType.keys()]).toEqual([NumberSubmitted.type, NumberIgnored.type]);
  });
});
