import { setMaxListeners } from "node:events";
import type { Registry } from "prom-client";
import type { Bus, BusMessage, Consumer, OutgoingMessage } from "./bus.ts";
import { type Clock, realSleep, type Sleep, systemClock } from "./clock.ts";
import { parseBinaryMessage, toBinaryMessage } from "./cloudevents.ts";
import {
  DEAD_LETTER_MAX_BYTES,
  DEAD_LETTER_VALUE_BYTES,
  DeadLetter,
  DeadLetterReason,
  type DeadLetterRecord,
  deadLetterRecord,
  minimalDeadLetterRecord,
} from "./dead-letter.ts";
import type { FunctionDefinition, FunctionDeps, NoServices } from "./define-function.ts";
import {
  actionFor,
  DeadLetterError,
  ErrorAction,
  errorMessage,
  isUnavailable,
  RetryableError,
  schemaInputError,
} from "./errors.ts";
import { type CloudEvent, cloudEvent, type EmittedEvent, type EventDefinition } from "./event-definition.ts";
import { createLogger, type Logger } from "./logger.ts";
import { createRunnerMetrics, type RunnerMetrics } from "./metrics.ts";
import type { ObjectStore } from "./object-store.ts";
import { type Random, seededRandom } from "./random.ts";
import { backoffDelay, type RetryPolicy, RetryPolicySchema } from "./retry.ts";
import { sha256Hex } from "./sha256.ts";

interface BaseRunnerOptions {
  bus: Bus;
  store: ObjectStore;
  /** the run name: event subject, log field, default seed */
  run: string;
  /** bus topic of an event = `<topicPrefix>.<definition.topic>`; dead letters go to `<topicPrefix>.dead-letter` */
  topicPrefix: string;
  /** default `<topicPrefix>.<function name>` */
  groupId?: string;
  /** partitions of topics the runner creates (existing topics are left alone); default: the bus's */
  partitions?: number;
  /** where a new consumer group starts; default true (from the beginning) */
  fromBeginning?: boolean;
  retry?: Partial<RetryPolicy>;
  logger?: Logger;
  clock?: Clock;
  /** waits between retries; tests pass one that returns at once */
  sleep?: Sleep;
  /** jitter source for backoff, uniform in [0, 1) */
  jitter?: () => number;
  /** seed of the per-event randomness; default the run name */
  seed?: string;
  /** Prometheus registry for the runner's metrics; default a new one */
  registry?: Registry;
  /**
   * every event type some component may publish: an event whose type is not consumed here is
   * skipped when it is known, dead-lettered (`unknown-type`) when not; default: all skipped
   */
  knownTypes?: ReadonlySet<string>;
  /** object-store prefix under which the whole value of a dead letter too large for its record is kept; default `dead-letters` */
  deadLetterKeyPrefix?: string;
}

export type RunnerOptions<Services> = BaseRunnerOptions &
  (NoServices extends Services ? { services?: Services } : { services: Services });

/** Thrown inside the runner when a drain interrupts a retry wait; the message stays uncommitted. */
class DrainInterrupted extends Error {
  constructor() {
    super("draining: the message is left uncommitted for the next start");
    this.name = "DrainInterrupted";
  }
}

/** Thrown when publishing outputs or a dead letter keeps failing: the consumer stops, nothing is committed. */
export class PublishFailedError extends RetryableError {}

/**
 * Thrown when a dependency stayed unavailable for longer than `retry.outageBudgetMs`: the consumer
 * stops with the message uncommitted, so the process exits and a restarted one tries again.
 */
export class OutageTooLongError extends RetryableError {}

/**
 * A function bound to a bus and an object store. Delivery contract:
 * - at-least-once: an input offset is committed only after the handler resolved, every emitted
 *   event was published (durable) and the handler's own object writes resolved (durable);
 * - idempotent outputs: emitted event ids are deterministic (given by the handler or a hash of the
 *   input id, type, key and occurrence), so a redelivered input re-emits the same ids;
 * - an unavailable dependency (UnavailableError) is waited for, up to `retry.outageBudgetMs` per
 *   message, without counting attempts; past the budget the consumer stops, the input uncommitted;
 * - other retryable errors (RetryableError, unknown errors) back off exponentially with jitter up
 *   to `retry.maxAttempts`, then the input is dead-lettered; DeadLetterError, InputError,
 *   unreadable CloudEvents, schema-invalid data, unknown types, invalid emitted events and outputs
 *   the broker refuses are dead-lettered at once; a dead letter (bounded in size) is committed;
 * - events of types the function does not consume are committed and counted as skipped;
 * - one message in flight per partition; `stop()` lets in-flight handlers finish, interrupts
 *   retry waits (leaving those messages uncommitted) and leaves the group.
 */
export class FunctionRunner<Services = NoServices> {
  readonly fn: FunctionDefinition<readonly EventDefinition<unknown>[], Services>;
  readonly groupId: string;
  readonly metrics: RunnerMetrics;
  readonly #options: BaseRunnerOptions;
  readonly #services: Services;
  readonly #retry: RetryPolicy;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #sleep: Sleep;
  readonly #jitter: () => number;
  readonly #seed: string;
  readonly #drain = new AbortController();
  /** the dependency outage in progress: logged once when it starts and once when it ends */
  #outage: { since: number; code: string; waits: number } | undefined;
  /** handlers of this function running now; since when at least one has; busy time before that */
  #handlersRunning = 0;
  #busySince = 0;
  #busyMs = 0;
  #consumer: Consumer | undefined;
  #state: "new" | "starting" | "running" | "draining" | "stopped" = "new";
  #done: Promise<void> | undefined;

  constructor(
    fn: FunctionDefinition<readonly EventDefinition<unknown>[], Services>,
    options: RunnerOptions<Services>,
  ) {
    this.fn = fn;
    this.#options = options;
    this.#services = (options.services ?? {}) as Services;
    this.groupId = options.groupId ?? `${options.topicPrefix}.${fn.name}`;
    this.#retry = RetryPolicySchema.parse(options.retry ?? {});
    this.#logger = (options.logger ?? createLogger()).child({ run: options.run, function: fn.name });
    this.#clock = options.clock ?? systemClock;
    this.#sleep = options.sleep ?? realSleep;
    // every message in flight (up to one per partition: 32 in an embedded rollout) waits on this
    // signal in its handler or a retry's back-off; Node's default of 10 listeners warned of a leak
    setMaxListeners(256, this.#drain.signal);
    this.#jitter = options.jitter ?? Math.random;
    this.#seed = options.seed ?? options.run;
    this.metrics = createRunnerMetrics({
      ...(options.registry ? { registry: options.registry } : {}),
      functionName: fn.name,
      group: this.groupId,
      lag: async () => (this.#consumer ? this.#consumer.lag() : 0),
    });
  }

  /** the bus topic of an event definition under this runner's prefix */
  topicOf(definition: { topic: string }): string {
    return `${this.#options.topicPrefix}.${definition.topic}`;
  }

  get deadLetterTopic(): string {
    return this.topicOf(DeadLetter);
  }

  /** consumer joined and not draining */
  ready(): boolean {
    return this.#state === "running";
  }

  /** resolves when the runner has stopped (after `stop()`), rejects if its consumer died */
  get done(): Promise<void> {
    if (!this.#done) throw new Error(`runner of ${this.fn.name} was not started`);
    return this.#done;
  }

  /** creates the topics, joins the consumer group and starts delivering */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new Error(`runner of ${this.fn.name} was already started`);
    this.#state = "starting";
    const consumed = [...new Set([...this.fn.consumesByType.values()].map((d) => this.topicOf(d)))];
    const produced = [...this.fn.emitsByType.values()].map((d) => this.topicOf(d));
    const partitions = this.#options.partitions;
    const topics = [...new Set([...consumed, ...produced, this.deadLetterTopic])].map((name) =>
      partitions === undefined ? { name } : { name, partitions },
    );
    // a broker that is down at start is waited for like one that goes down later
    let outageStarted: number | undefined;
    for (;;) {
      try {
        await this.#options.bus.ensureTopics(topics);
        this.#recovered(outageStarted);
        break;
      } catch (error) {
        if (!isUnavailable(error)) throw error;
        outageStarted ??= this.#clock.now();
        await this.#waitOutDependency(error, outageStarted, "creating topics");
      }
    }
    const consumer = this.#options.bus.consumer({
      groupId: this.groupId,
      topics: consumed,
      fromBeginning: this.#options.fromBeginning ?? true,
    });
    this.#consumer = consumer;
    this.#done = consumer.done.then(
      () => {
        this.#state = "stopped";
      },
      (error: unknown) => {
        this.#state = "stopped";
        if (isDrainInterrupted(error)) return;
        this.#logger.error({ err: error }, "consumer stopped with an error");
        throw error;
      },
    );
    this.#done.catch(() => {});
    await consumer.run((message) => this.#handleMessage(message));
    if (this.#state === "starting") this.#state = "running";
    this.#logger.info({ group: this.groupId, topics: consumed }, "function started");
  }

  /** drains: in-flight handlers finish and commit, retry waits are cut short, the consumer leaves */
  async stop(): Promise<void> {
    if (this.#state === "new") {
      this.#state = "stopped";
      return;
    }
    if (this.#state !== "stopped") this.#state = "draining";
    this.#drain.abort(new DrainInterrupted());
    await this.#consumer?.stop();
    await this.#done?.catch(() => {});
    this.#logger.info("function stopped");
  }

  async #handleMessage(message: BusMessage): Promise<void> {
    const started = this.#clock.now();
    const parsed = parseBinaryMessage(message);
    if (!parsed.ok) {
      await this.#deadLetter(message, DeadLetterReason.invalidCloudEvent, parsed.error, 0);
      return;
    }
    const input = parsed.value;
    const definition = this.fn.consumesByType.get(input.type);
    if (!definition && this.#options.knownTypes && !this.#options.knownTypes.has(input.type)) {
      const error = new DeadLetterError(
        "unknown_event_type",
        `${input.type} (event ${input.id}) is no event type of this system; a foreign or mistyped producer wrote it`,
      );
      await this.#deadLetter(message, DeadLetterReason.unknownType, error, 0);
      return;
    }
    if (!definition) {
      this.metrics.skipped.inc({ function: this.fn.name, type: input.type });
      this.#logger.debug(
        { eventId: input.id, eventType: input.type },
        "skipped an event type this function does not consume",
      );
      return;
    }
    const data = definition.data.safeParse(input.data);
    if (!data.success) {
      // an InputError keeps every problem with its path in the dead-letter record
      const error = schemaInputError("invalid_event_data", data.error, {
        under: "data",
        hint: `make ${input.type} ${input.id} match the event's schema`,
      });
      await this.#deadLetter(message, DeadLetterReason.invalidData, error, 0);
      return;
    }
    const event: CloudEvent<unknown> = { ...input, data: data.data };
    this.#enterHandler();
    const outcome = await this.#runHandler(message, event).finally(() => this.#leaveHandler());
    if (outcome.kind === "dead-letter") {
      await this.#deadLetter(message, outcome.reason, outcome.error, outcome.attempts);
      return;
    }
    try {
      await this.#publishOutputs(outcome.outputs);
    } catch (error) {
      // the broker refused an output for good (too large, invalid): redoing the input cannot help
      if (actionFor(error) === ErrorAction.retry) throw error;
      await this.#deadLetter(message, DeadLetterReason.outputRejected, error, 1);
      return;
    }
    this.metrics.processed.inc({ function: this.fn.name, type: event.type });
    this.metrics.handlerSeconds.observe(
      { function: this.fn.name, type: event.type },
      Math.max(0, this.#clock.now() - started) / 1000,
    );
  }

  /**
   * Wall time in which at least one of this function's handlers was running (concurrent handlers,
   * e.g. one per partition, count once): the share of a run's time the function kept busy.
   */
  get busyMilliseconds(): number {
    return this.#busyMs + (this.#handlersRunning > 0 ? this.#clock.now() - this.#busySince : 0);
  }

  #enterHandler(): void {
    if (this.#handlersRunning++ === 0) this.#busySince = this.#clock.now();
  }

  #leaveHandler(): void {
    if (--this.#handlersRunning > 0) return;
    const elapsed = Math.max(0, this.#clock.now() - this.#busySince);
    this.#busyMs += elapsed;
    this.metrics.busySeconds.inc({ function: this.fn.name }, elapsed / 1000);
  }

  async #runHandler(
    message: BusMessage,
    event: CloudEvent<unknown>,
  ): Promise<
    | { kind: "ok"; outputs: CloudEvent<unknown>[] }
    | { kind: "dead-letter"; reason: DeadLetterReason; error: unknown; attempts: number }
  > {
    // the child logger and the rng cost a hash and an allocation: made on first use
    let eventLogger: Logger | undefined;
    const parentLogger = this.#logger;
    const loggerFor = () => {
      eventLogger ??= parentLogger.child({ eventId: event.id, eventType: event.type });
      return eventLogger;
    };
    // an unavailable dependency is waited for, not counted as an attempt
    let outageStarted: number | undefined;
    for (let attempt = 1; ; attempt++) {
      let rng: Random | undefined;
      const randomFor = () => {
        // a fresh stream per attempt: a retried attempt draws what the first one drew
        rng ??= this.#randomFor(event);
        return rng;
      };
      const deps: FunctionDeps<Services> = {
        store: this.#options.store,
        clock: this.#clock,
        get rng() {
          return randomFor();
        },
        get logger() {
          return loggerFor();
        },
        run: this.#options.run,
        signal: this.#drain.signal,
        services: this.#services,
      };
      let emitted: readonly EmittedEvent<unknown>[];
      try {
        emitted = await this.fn.handle(event, deps);
        this.#recovered(outageStarted);
      } catch (error) {
        if (this.#drain.signal.aborted && actionFor(error) === ErrorAction.retry)
          throw new DrainInterrupted();
        const logger = loggerFor();
        const code = errorCode(error);
        this.metrics.failed.inc({ function: this.fn.name, type: event.type, code });
        if (isUnavailable(error)) {
          outageStarted ??= this.#clock.now();
          await this.#waitOutDependency(error, outageStarted, `handling ${event.type} ${event.id}`);
          attempt--;
          continue;
        }
        if (actionFor(error) !== ErrorAction.retry) {
          logger.warn({ err: error, attempt }, "handler failed with a non-retryable error; dead-lettering");
          return { kind: "dead-letter", reason: DeadLetterReason.nonRetryable, error, attempts: attempt };
        }
        if (attempt >= this.#retry.maxAttempts) {
          logger.error({ err: error, attempt }, "handler kept failing; dead-lettering");
          return { kind: "dead-letter", reason: DeadLetterReason.retriesExhausted, error, attempts: attempt };
        }
        const delay = backoffDelay(this.#retry, attempt, this.#jitter(), retryAfter(error));
        this.metrics.retried.inc({ function: this.fn.name, type: event.type });
        logger.warn({ err: error, attempt, delayMs: Math.round(delay) }, "handler failed; retrying");
        await this.#wait(delay);
        continue;
      }
      try {
        return { kind: "ok", outputs: this.#buildOutputs(event, emitted, message) };
      } catch (error) {
        loggerFor().error({ err: error }, "handler emitted an invalid event; dead-lettering");
        return {
          kind: "dead-letter",
          reason: DeadLetterReason.invalidEmittedEvent,
          error,
          attempts: attempt,
        };
      }
    }
  }

  /** validates the handler's events and fills in the CloudEvents attributes */
  #buildOutputs(
    input: CloudEvent<unknown>,
    emitted: readonly EmittedEvent<unknown>[],
    message: BusMessage,
  ): CloudEvent<unknown>[] {
    if (!Array.isArray(emitted)) {
      throw new DeadLetterError(
        "invalid_handler_result",
        `handler of ${this.fn.name} must return an array of events`,
      );
    }
    const problems: string[] = [];
    const outputs: CloudEvent<unknown>[] = [];
    const occurrences = new Map<string, number>();
    const time = new Date(this.#clock.now()).toISOString();
    for (const [index, item] of emitted.entries()) {
      const type = item?.definition?.type;
      const declared = type === undefined ? undefined : this.fn.emitsByType.get(type);
      if (!declared) {
        problems.push(`[${index}] ${type ?? "(no definition)"} is not declared in ${this.fn.name}'s emits`);
        continue;
      }
      if (typeof item.key !== "string" || item.key === "") {
        problems.push(`[${index}] ${type}: key must be a non-empty string`);
        continue;
      }
      const data = declared.data.safeParse(item.data);
      if (!data.success) {
        const detail = data.error.issues.map(
          (i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`,
        );
        problems.push(`[${index}] ${type} (key ${item.key}): ${detail.join("; ")}`);
        continue;
      }
      const slot = `${type}\u0000${item.key}`;
      const occurrence = occurrences.get(slot) ?? 0;
      occurrences.set(slot, occurrence + 1);
      outputs.push(
        cloudEvent({
          id: item.id ?? deterministicEventId(input.id, type!, item.key, occurrence),
          run: this.#options.run,
          source: this.fn.name,
          type: type!,
          time,
          key: item.key,
          data: data.data,
        }),
      );
    }
    const ids = new Set<string>();
    for (const output of outputs) {
      if (ids.has(output.id)) problems.push(`event id ${output.id} is emitted twice`);
      ids.add(output.id);
    }
    if (problems.length > 0) {
      throw new DeadLetterError(
        "invalid_emitted_event",
        `${this.fn.name} emitted invalid events for ${message.topic}/${message.partition}@${message.offset}: ${problems.join("; ")}`,
      );
    }
    return outputs;
  }

  async #publishOutputs(outputs: readonly CloudEvent<unknown>[]): Promise<void> {
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const output of outputs) {
      const definition = this.fn.emitsByType.get(output.type)!;
      const topic = this.topicOf(definition);
      const list = byTopic.get(topic) ?? [];
      list.push(toBinaryMessage(output));
      byTopic.set(topic, list);
    }
    for (const [topic, messages] of byTopic) {
      await this.#publishWithRetry(topic, messages);
      for (const output of outputs) {
        if (this.topicOf(this.fn.emitsByType.get(output.type)!) === topic) {
          this.metrics.emitted.inc({ function: this.fn.name, type: output.type });
        }
      }
    }
  }

  async #deadLetter(
    message: BusMessage,
    reason: DeadLetterReason,
    error: unknown,
    attempts: number,
  ): Promise<void> {
    const time = new Date(this.#clock.now()).toISOString();
    // one dead letter per (group, message): a redelivered poison message yields the same id and key
    const identity = sha256Hex(
      `${this.groupId}\n${message.topic}\n${message.partition}\n${message.offset}`,
    ).slice(0, 32);
    const stored =
      message.value.byteLength > DEAD_LETTER_VALUE_BYTES
        ? await this.#storeWholeValue(identity, message)
        : undefined;
    const record = deadLetterRecord({
      functionName: this.fn.name,
      group: this.groupId,
      reason,
      attempts,
      time,
      message,
      error,
      ...(stored ? { stored } : {}),
    });
    const eventOf = (data: DeadLetterRecord): CloudEvent<unknown> =>
      cloudEvent({
        id: `dl-${identity}`,
        run: this.#options.run,
        source: this.fn.name,
        type: DeadLetter.type,
        time,
        key: message.key ?? `${message.topic}/${message.partition}`,
        data,
      });
    let data = DeadLetter.data.parse(record);
    let outgoing = toBinaryMessage(eventOf(data));
    // values that JSON-escape heavily (control characters) can still outgrow the bound
    if (outgoing.value.byteLength > DEAD_LETTER_MAX_BYTES) {
      data = minimalDeadLetterRecord(data);
      outgoing = toBinaryMessage(eventOf(data));
    }
    try {
      await this.#publishWithRetry(this.deadLetterTopic, [outgoing]);
    } catch (failure) {
      if (actionFor(failure) === ErrorAction.retry) throw failure;
      // refused for good: a minimal record still goes out, and the message is committed either way,
      // so one message can never block its partition
      this.#logger.error(
        { err: failure, topic: message.topic, partition: message.partition, offset: message.offset },
        "the broker refused the dead-letter record; publishing a minimal one",
      );
      try {
        await this.#publishWithRetry(this.deadLetterTopic, [
          toBinaryMessage(eventOf(minimalDeadLetterRecord(data))),
        ]);
      } catch (again) {
        if (actionFor(again) === ErrorAction.retry) throw again;
        this.#logger.error(
          { err: again, topic: message.topic, partition: message.partition, offset: message.offset },
          "the broker refused the minimal dead-letter record too; committing the message without one",
        );
      }
    }
    this.metrics.deadLettered.inc({ function: this.fn.name, reason });
    this.#logger.warn(
      {
        reason,
        code: data.error.code,
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        size: message.value.byteLength,
        attempts,
      },
      `dead-lettered: ${data.error.message}`,
    );
  }

  /** the whole value of a large dead letter, kept in the object store (waiting out an outage) */
  async #storeWholeValue(
    identity: string,
    message: BusMessage,
  ): Promise<{ uri: string; key: string; sha256: string; size: number } | undefined> {
    const prefix = (this.#options.deadLetterKeyPrefix ?? "dead-letters").replace(/\/+$/, "");
    const key = `${prefix}/${this.fn.name}/dl-${identity}.bin`;
    let outageStarted: number | undefined;
    for (;;) {
      try {
        const put = await this.#options.store.put(key, message.value, {
          contentType: "application/octet-stream",
        });
        this.#recovered(outageStarted);
        return {
          uri: this.#options.store.uri(put.info.key),
          key: put.info.key,
          sha256: put.info.sha256,
          size: put.info.size,
        };
      } catch (error) {
        if (isUnavailable(error)) {
          outageStarted ??= this.#clock.now();
          await this.#waitOutDependency(error, outageStarted, "storing a dead-lettered value");
          continue;
        }
        // the record still carries the value's start, size and sha256
        this.#logger.error({ err: error, key }, "could not store the whole dead-lettered value");
        return undefined;
      }
    }
  }

  /**
   * Waits for an unavailable dependency: backs off (capped at `retry.maxDelayMs`), logs the outage
   * once when it starts (and at debug level after that), and gives up with OutageTooLongError once
   * it has lasted `retry.outageBudgetMs` for this message.
   */
  async #waitOutDependency(error: unknown, since: number, what: string): Promise<void> {
    const now = this.#clock.now();
    if (now - since >= this.#retry.outageBudgetMs) {
      throw new OutageTooLongError(
        "outage_too_long",
        `a dependency stayed unavailable for ${Math.round((now - since) / 1000)} s while ${what} (budget ${Math.round(this.#retry.outageBudgetMs / 1000)} s): ${errorMessage(error)}`,
        { cause: error },
      );
    }
    const code = errorCode(error);
    if (!this.#outage) {
      this.#outage = { since: now, code, waits: 0 };
      this.#logger.warn(
        { code, reason: errorMessage(error) },
        `${code}: waiting for the dependency (messages are kept, not dead-lettered)`,
      );
    } else {
      this.#logger.debug({ err: error, what }, "still unavailable");
    }
    const outage = this.#outage;
    outage.waits++;
    this.metrics.retried.inc({ function: this.fn.name, type: "outage" });
    await this.#wait(
      backoffDelay(this.#retry, Math.min(outage.waits, 20), this.#jitter(), retryAfter(error)),
    );
  }

  /**
   * a call that waited out the outage went through: the outage is over. Only such a call tells: a
   * message handled meanwhile on another partition may not have needed the dependency at all
   */
  #recovered(outageStarted: number | undefined): void {
    if (outageStarted === undefined || !this.#outage) return;
    const seconds = Math.round((this.#clock.now() - this.#outage.since) / 100) / 10;
    this.#logger.warn(
      { code: this.#outage.code, seconds },
      `${this.#outage.code}: recovered after ${seconds} s`,
    );
    this.#outage = undefined;
  }

  /**
   * Publishes, waiting out an unavailable broker and retrying other transient failures up to
   * `retry.maxAttempts` (then PublishFailedError stops the consumer, nothing committed). A
   * permanent rejection (DeadLetterError: the broker refuses these bytes) is thrown at once.
   */
  async #publishWithRetry(topic: string, messages: OutgoingMessage[]): Promise<void> {
    let outageStarted: number | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#options.bus.publish(topic, messages);
        this.#recovered(outageStarted);
        return;
      } catch (error) {
        if (actionFor(error) !== ErrorAction.retry) throw error;
        if (isUnavailable(error)) {
          outageStarted ??= this.#clock.now();
          await this.#waitOutDependency(error, outageStarted, `publishing to ${topic}`);
          attempt--;
          continue;
        }
        if (attempt >= this.#retry.maxAttempts) {
          throw new PublishFailedError(
            "publish_failed",
            `publishing ${messages.length} message(s) to ${topic} failed ${attempt} times: ${errorMessage(error)}`,
            { cause: error },
          );
        }
        const delay = backoffDelay(this.#retry, attempt, this.#jitter(), retryAfter(error));
        this.#logger.warn(
          { err: error, topic, attempt, delayMs: Math.round(delay) },
          "publish failed; retrying",
        );
        await this.#wait(delay);
      }
    }
  }

  async #wait(ms: number): Promise<void> {
    try {
      await this.#sleep(ms, this.#drain.signal);
    } catch (error) {
      if (this.#drain.signal.aborted) throw new DrainInterrupted();
      throw error;
    }
  }

  #randomFor(event: CloudEvent<unknown>): Random {
    return seededRandom(`${this.#seed}\u0000${this.fn.name}\u0000${event.id}`);
  }
}

/** Binds a function to a bus and an object store; call `start()` to consume. */
export function bindFunction<Services>(
  fn: FunctionDefinition<readonly EventDefinition<unknown>[], Services>,
  options: RunnerOptions<Services>,
): FunctionRunner<Services> {
  return new FunctionRunner(fn, options);
}

/** The id an emitted event gets when the handler gives none: stable across redeliveries. */
export function deterministicEventId(inputId: string, type: string, key: string, occurrence = 0): string {
  return sha256Hex(`${inputId}\n${type}\n${key}\n${occurrence}`).slice(0, 32);
}

function errorCode(error: unknown): string {
  if (typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string") {
    return (error as { code: string }).code;
  }
  return error instanceof Error ? error.name : "unknown";
}

function retryAfter(error: unknown): number | undefined {
  return error instanceof RetryableError ? error.retryAfterMs : undefined;
}

/** a bus adapter may wrap the handler's rejection; look through the cause chain */
function isDrainInterrupted(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && depth < 5; depth++) {
    if (current instanceof DrainInterrupted) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}
