import { mkdir, open, readdir, truncate } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { isErrno, readTextIfPresent, writeFileAtomic } from "./atomic-file.ts";
import type {
  Bus,
  BusMessage,
  Consumer,
  ConsumerOptions,
  Headers,
  MessageHandler,
  OutgoingMessage,
  TopicSpec,
} from "./bus.ts";
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { parseBinaryMessage, parseStructured, toBinaryMessage, toStructured } from "./cloudevents.ts";
import type { CloudEvent } from "./event-definition.ts";
import { partitionForKey } from "./partitioner.ts";
import { parseJsonWith } from "./stored-json.ts";

/**
 * An in-process `Bus` with Kafka's semantics: topics split into partitions by murmur2 of the key,
 * consumer groups whose members share the partitions, committed offsets, per-partition order (one
 * message in flight per partition), pause/resume, lag, and redelivery of everything a group has not
 * committed when a consumer crashes, stops or a new one joins.
 *
 * With `dir` (see `MemoryBus.open`) it is the local bus of `questa run`: every topic is journaled to
 * `<dir>/events/<topic>.jsonl` (one structured-mode CloudEvent per line, append-only, fsynced before
 * `publish` resolves), partition counts to `<dir>/topics.json` and committed offsets to
 * `<dir>/offsets.json` (replaced atomically), so a run resumes after Ctrl-C or a crash. A journaled
 * bus carries only CloudEvents with JSON data; one process owns a directory at a time.
 */
export interface MemoryBusOptions {
  /** partitions of topics created without a count (auto-created, or `TopicSpec.partitions` omitted); default 1 */
  defaultPartitions?: number;
  /** create unknown topics on publish or subscribe, as Kafka's `auto.create.topics.enable`; default true */
  autoCreateTopics?: boolean;
  clock?: Clock;
}

export interface LocalBusOptions extends MemoryBusOptions {
  /** directory holding `events/<topic>.jsonl`, `topics.json` and `offsets.json` */
  dir: string;
}

interface StoredMessage {
  key: string | undefined;
  headers: Headers;
  value: Uint8Array;
  timestamp: number;
}

interface TopicState {
  name: string;
  partitions: StoredMessage[][];
  /** round-robin position for keyless messages; replaying the journal in order reproduces it */
  keyless: number;
  /** serialises appends so journal order = partition order */
  appending: Promise<void>;
  /** publishes waiting for the next flush */
  pending: PendingAppend[];
}

interface PendingAppend {
  messages: readonly OutgoingMessage[];
  /** the canonical CloudEvents, when journaled */
  events: CloudEvent<unknown>[] | undefined;
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface GroupState {
  id: string;
  /** next offset to deliver per partition (Kafka's committed offset) */
  committed: Map<string, number[]>;
  members: MemoryConsumer[];
  /** partitions with a message in flight, as `topic\u0000partition` */
  busy: Set<string>;
}

const topicNamePattern = /^[A-Za-z0-9._-]{1,249}$/;

export function topicNameProblem(name: string): string | undefined {
  if (!topicNamePattern.test(name)) return "must be 1-249 characters of letters, digits, '.', '_' or '-'";
  if (name === "." || name === "..") return "must not be . or ..";
  return undefined;
}

function assertTopicName(name: string): void {
  const problem = topicNameProblem(name);
  if (problem) throw new Error(`topic name ${JSON.stringify(name)} ${problem}`);
}

const TopicsFileSchema = z.object({
  version: z.literal(1),
  topics: z.record(z.string(), z.object({ partitions: z.number().int().positive() })),
});
const OffsetsFileSchema = z.object({
  version: z.literal(1),
  groups: z.record(z.string(), z.record(z.string(), z.array(z.number().int().nonnegative()))),
});

/** The local event log of a topic: `<dir>/events/<topic>.jsonl`. */
export function eventLogPath(dir: string, topic: string): string {
  assertTopicName(topic);
  return join(dir, "events", `${topic}.jsonl`);
}

export class MemoryBus implements Bus {
  readonly #topics = new Map<string, TopicState>();
  readonly #groups = new Map<string, GroupState>();
  readonly #defaultPartitions: number;
  readonly #autoCreate: boolean;
  readonly #clock: Clock;
  readonly #journal: Journal | undefined;
  #nextMemberId = 0;
  #closed = false;

  constructor(options: MemoryBusOptions = {}, journal?: Journal) {
    this.#defaultPartitions = options.defaultPartitions ?? 1;
    if (!Number.isInteger(this.#defaultPartitions) || this.#defaultPartitions < 1) {
      throw new RangeError(`defaultPartitions must be a positive integer, got ${this.#defaultPartitions}`);
    }
    this.#autoCreate = options.autoCreateTopics ?? true;
    this.#clock = options.clock ?? systemClock;
    this.#journal = journal;
  }

  /** A bus journaled to `options.dir`, restored from what an earlier process left there. */
  static async open(options: LocalBusOptions): Promise<MemoryBus> {
    const journal = new Journal(options.dir);
    const bus = new MemoryBus(options, journal);
    await journal.load(bus);
    return bus;
  }

  /** the journal directory, when journaled */
  get dir(): string | undefined {
    return this.#journal?.dir;
  }

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    this.#assertOpen();
    const created: TopicState[] = [];
    for (const spec of topics) {
      assertTopicName(spec.name);
      if (this.#topics.has(spec.name)) continue;
      const partitions = spec.partitions ?? this.#defaultPartitions;
      if (!Number.isInteger(partitions) || partitions < 1) {
        throw new RangeError(`topic ${spec.name}: partitions must be a positive integer, got ${partitions}`);
      }
      created.push(this.#createTopic(spec.name, partitions));
    }
    if (created.length > 0 && this.#journal) {
      // a topic takes events only once topics.json names it, or a restart could not replay them
      const written = this.#journal.writeTopics(this.#topics);
      for (const topic of created) topic.appending = written;
      try {
        await written;
      } catch (error) {
        for (const topic of created) this.#topics.delete(topic.name);
        throw error;
      }
    }
    for (const topic of created) this.#notifyTopic(topic.name);
  }

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    this.#assertOpen();
    const state = await this.#topicFor(topic);
    const journal = this.#journal;
    // journaled messages are stored in their canonical binary form so a restart replays exactly what was delivered
    const events = journal ? messages.map((m) => canonicalCloudEvent(topic, m)) : undefined;
    const appended = new Promise<void>((resolve, reject) => {
      state.pending.push({ messages, events, resolve, reject });
    });
    // the first waiting publish schedules a flush; publishes arriving before it runs join its batch,
    // so concurrent publishers share one write and one fsync (group commit)
    if (state.pending.length === 1) {
      state.appending = state.appending.then(
        () => this.#flush(state),
        (error: unknown) => {
          for (const entry of state.pending.splice(0)) entry.reject(error);
        },
      );
    }
    await appended;
    this.#notifyTopic(topic);
  }

  consumer(options: ConsumerOptions): Consumer {
    this.#assertOpen();
    if (options.topics.length === 0)
      throw new Error(`consumer group ${options.groupId}: subscribe to at least one topic`);
    for (const topic of options.topics) assertTopicName(topic);
    return new MemoryConsumer(this, options, this.#nextMemberId++);
  }

  /** stops every consumer (draining in-flight messages), then flushes the journal */
  async close(): Promise<void> {
    if (this.#closed) return;
    const consumers = [...this.#groups.values()].flatMap((g) => g.members);
    await Promise.all(consumers.map((c) => c.stop()));
    this.#closed = true;
    await Promise.all([...this.#topics.values()].map((t) => t.appending));
    await this.#journal?.close(this.#groups);
  }

  /**
   * Fault injection: every consumer of `groupId` dies at once, as if its process were killed.
   * In-flight messages are abandoned uncommitted (their handlers may still run, like a zombie, but
   * can no longer commit), members leave, and the group's uncommitted messages go to the next member.
   */
  crashConsumers(groupId: string, error: Error = new Error(`consumer group ${groupId} crashed`)): void {
    for (const member of [...(this.#groups.get(groupId)?.members ?? [])]) member.crash(error);
  }

  /**
   * Fault injection: the whole process dies. Every consumer crashes (see `crashConsumers`), the bus
   * refuses any further call (zombie handlers can publish nothing more), and what was already on its
   * way to disk lands; resolves once nothing more will be written. Open the directory again to
   * "restart".
   */
  async crash(error: Error = new Error("process crashed")): Promise<void> {
    for (const groupId of this.#groups.keys()) this.crashConsumers(groupId, error);
    this.#closed = true;
    await Promise.all([...this.#topics.values()].map((t) => t.appending));
    await this.#journal?.abandon();
  }

  /** every message of `topic` in partition then offset order (for tests and tools) */
  messages(topic: string): BusMessage[] {
    const state = this.#topics.get(topic);
    if (!state) return [];
    return state.partitions.flatMap((messages, partition) =>
      messages.map((m, offset) => toBusMessage(topic, partition, offset, m)),
    );
  }

  /** partition counts by topic */
  topics(): Map<string, number> {
    return new Map([...this.#topics.values()].map((t) => [t.name, t.partitions.length]));
  }

  /** the group's committed offsets of `topic`, per partition (next offset to deliver) */
  committedOffsets(groupId: string, topic: string): number[] {
    const state = this.#topics.get(topic);
    const committed = this.#groups.get(groupId)?.committed.get(topic) ?? [];
    return (state?.partitions ?? []).map((_, p) => committed[p] ?? 0);
  }

  /** flushes committed offsets to the journal (they are written in the background otherwise) */
  async flush(): Promise<void> {
    await this.#journal?.flushOffsets(this.#groups);
  }

  // --- internals shared with MemoryConsumer and Journal ---

  /** @internal */
  createTopicFromJournal(name: string, partitions: number): TopicState {
    return this.#createTopic(name, partitions);
  }

  /** @internal */
  appendFromJournal(topic: string, event: CloudEvent<unknown>): void {
    const state = this.#topics.get(topic);
    if (!state) throw new Error(`journal has events for topic ${topic} missing from topics.json`);
    this.#append(state, storedFromEvent(event, Date.parse(event.time)));
  }

  /** @internal */
  restoreCommitted(groupId: string, topic: string, offsets: number[]): void {
    this.#group(groupId).committed.set(topic, [...offsets]);
  }

  /** @internal */
  async subscribe(member: MemoryConsumer, options: ConsumerOptions): Promise<GroupState> {
    this.#assertOpen();
    for (const topic of options.topics) await this.#topicFor(topic);
    const group = this.#group(options.groupId);
    for (const topic of options.topics) {
      const state = this.#topics.get(topic)!;
      const committed = group.committed.get(topic) ?? [];
      // a group new to this topic starts at the beginning or at the current end, and remembers that start
      state.partitions.forEach((messages, p) => {
        if (committed[p] === undefined) committed[p] = (options.fromBeginning ?? true) ? 0 : messages.length;
      });
      group.committed.set(topic, committed);
    }
    group.members.push(member);
    this.#journal?.offsetsChanged(this.#groups);
    this.#rebalance(group);
    return group;
  }

  /** @internal */
  leave(member: MemoryConsumer, group: GroupState): void {
    group.members = group.members.filter((m) => m !== member);
    this.#rebalance(group);
  }

  /** @internal */
  commit(group: GroupState, topic: string, partition: number, nextOffset: number): void {
    const committed = group.committed.get(topic) ?? [];
    if ((committed[partition] ?? 0) < nextOffset) committed[partition] = nextOffset;
    group.committed.set(topic, committed);
    this.#journal?.offsetsChanged(this.#groups);
  }

  /** @internal */
  partitionCount(topic: string): number {
    return this.#topics.get(topic)?.partitions.length ?? 0;
  }

  /** @internal */
  messageAt(topic: string, partition: number, offset: number): BusMessage | undefined {
    const stored = this.#topics.get(topic)?.partitions[partition]?.[offset];
    return stored ? toBusMessage(topic, partition, offset, stored) : undefined;
  }

  /** @internal */
  endOffset(topic: string, partition: number): number {
    return this.#topics.get(topic)?.partitions[partition]?.length ?? 0;
  }

  /** @internal: the partitions of `topic` that `member` owns under the group's current assignment */
  assignment(group: GroupState, member: MemoryConsumer, topic: string): number[] {
    const subscribers = group.members.filter((m) => m.topics.includes(topic));
    const index = subscribers.indexOf(member);
    if (index < 0) return [];
    const partitions: number[] = [];
    for (let p = index; p < this.partitionCount(topic); p += subscribers.length) partitions.push(p);
    return partitions;
  }

  /** @internal: wakes every member of `group` (a partition was released or the assignment changed) */
  wakeGroup(group: GroupState): void {
    for (const member of group.members) member.wake();
  }

  #rebalance(group: GroupState): void {
    this.wakeGroup(group);
  }

  #createTopic(name: string, partitions: number): TopicState {
    const state: TopicState = {
      name,
      partitions: Array.from({ length: partitions }, () => []),
      keyless: 0,
      appending: Promise.resolve(),
      pending: [],
    };
    this.#topics.set(name, state);
    return state;
  }

  async #flush(state: TopicState): Promise<void> {
    const batch = state.pending.splice(0);
    try {
      if (this.#journal) {
        await this.#journal.append(
          state.name,
          batch.flatMap((entry) => (entry.events ?? []).map(toStructured)),
        );
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    }
    const now = this.#clock.now();
    for (const { messages, events, resolve } of batch) {
      for (const [index, message] of messages.entries()) {
        this.#append(
          state,
          events
            ? storedFromEvent(events[index]!, now)
            : {
                key: message.key,
                headers: { ...message.headers },
                value: Uint8Array.from(message.value),
                timestamp: now,
              },
        );
      }
      resolve();
    }
  }

  #append(state: TopicState, message: StoredMessage): void {
    const count = state.partitions.length;
    const partition =
      message.key === undefined ? state.keyless++ % count : partitionForKey(message.key, count);
    state.partitions[partition]!.push(message);
  }

  async #topicFor(topic: string): Promise<TopicState> {
    assertTopicName(topic);
    const existing = this.#topics.get(topic);
    if (existing) return existing;
    if (!this.#autoCreate) {
      throw new Error(
        `topic ${topic} does not exist (create it with ensureTopics, or enable autoCreateTopics)`,
      );
    }
    await this.ensureTopics([{ name: topic }]);
    return this.#topics.get(topic)!;
  }

  #group(id: string): GroupState {
    let group = this.#groups.get(id);
    if (!group) {
      group = { id, committed: new Map(), members: [], busy: new Set() };
      this.#groups.set(id, group);
    }
    return group;
  }

  #notifyTopic(topic: string): void {
    for (const group of this.#groups.values()) {
      for (const member of group.members) if (member.topics.includes(topic)) member.wake();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("bus is closed");
  }
}

function toBusMessage(topic: string, partition: number, offset: number, m: StoredMessage): BusMessage {
  return {
    topic,
    partition,
    offset: String(offset),
    key: m.key,
    headers: { ...m.headers },
    value: Uint8Array.from(m.value),
    timestamp: m.timestamp,
  };
}

function canonicalCloudEvent(topic: string, message: OutgoingMessage): CloudEvent<unknown> {
  const parsed = parseBinaryMessage(message);
  if (!parsed.ok) {
    throw new Error(`a journaled bus carries CloudEvents only; message to ${topic}: ${parsed.error.message}`);
  }
  const event = parsed.value;
  if (message.key !== undefined && event.partitionkey === undefined)
    return { ...event, partitionkey: message.key };
  return event;
}

function storedFromEvent(event: CloudEvent<unknown>, timestamp: number): StoredMessage {
  const binary = toBinaryMessage(event);
  return { key: binary.key, headers: binary.headers, value: binary.value, timestamp };
}

type DeliveryToken = { abandoned: boolean };

class MemoryConsumer implements Consumer {
  readonly topics: readonly string[];
  readonly done: Promise<void>;
  readonly #bus: MemoryBus;
  readonly #options: ConsumerOptions;
  readonly memberId: number;
  #state: "idle" | "joining" | "running" | "stopping" | "stopped" = "idle";
  #paused = false;
  #handler: MessageHandler | undefined;
  #failure: { error: unknown } | undefined;
  #group: GroupState | undefined;
  readonly #inFlight = new Map<string, { token: DeliveryToken; settled: Promise<void> }>();
  /** with commitOffsets false: this member's own next offset per `topic\0partition` (never the group's) */
  readonly #positions: Map<string, number> | undefined;
  #resolveDone!: () => void;
  #rejectDone!: (error: unknown) => void;

  constructor(bus: MemoryBus, options: ConsumerOptions, memberId: number) {
    this.#bus = bus;
    this.#options = options;
    this.topics = [...options.topics];
    this.memberId = memberId;
    this.#positions = options.commitOffsets === false ? new Map() : undefined;
    this.done = new Promise<void>((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // a consumer nobody awaits must not crash the process with an unhandled rejection
    this.done.catch(() => {});
  }

  async run(handler: MessageHandler): Promise<void> {
    if (this.#state !== "idle")
      throw new Error(`consumer of group ${this.#options.groupId} was already started`);
    this.#state = "joining";
    this.#handler = handler;
    const group = await this.#bus.subscribe(this, this.#options);
    this.#group = group;
    if (this.#positions && !(this.#options.fromBeginning ?? true)) {
      // a member that never commits starts at the end as of joining, as a new group would
      for (const topic of this.topics) {
        for (let p = 0; p < this.#bus.partitionCount(topic); p++) {
          this.#positions.set(`${topic}\u0000${p}`, this.#bus.endOffset(topic, p));
        }
      }
    }
    if (this.#state !== "joining") {
      // stopped or crashed while joining
      this.#bus.leave(this, group);
      return;
    }
    this.#state = "running";
    this.wake();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.wake();
  }

  async lag(): Promise<number> {
    let lag = 0;
    for (const topic of this.topics) {
      const committed = this.#bus.committedOffsets(this.#options.groupId, topic);
      committed.forEach((offset, p) => {
        lag += Math.max(0, this.#bus.endOffset(topic, p) - offset);
      });
    }
    return lag;
  }

  async stop(): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      this.#resolveDone();
      return;
    }
    if (this.#state === "stopped") return this.done.catch(() => {});
    this.#state = "stopping";
    while (this.#inFlight.size > 0) await Promise.all([...this.#inFlight.values()].map((f) => f.settled));
    this.#finish();
    return this.done.catch(() => {});
  }

  /** @internal: dies at once; see `MemoryBus.crashConsumers` */
  crash(error: unknown): void {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    for (const flight of this.#inFlight.values()) flight.token.abandoned = true;
    const group = this.#group;
    if (group) {
      for (const key of this.#inFlight.keys()) group.busy.delete(key);
      this.#bus.leave(this, group);
    }
    this.#inFlight.clear();
    this.#rejectDone(error);
  }

  /** @internal: delivers whatever this member may deliver now */
  wake(): void {
    if (this.#state !== "running" || this.#paused) return;
    const group = this.#group;
    const handler = this.#handler;
    if (!group || !handler) return;
    for (const topic of this.topics) {
      for (const partition of this.#bus.assignment(group, this, topic)) {
        const busyKey = `${topic}\u0000${partition}`;
        if (group.busy.has(busyKey)) continue;
        const offset = this.#position(group, topic, partition);
        const message = this.#bus.messageAt(topic, partition, offset);
        if (!message) continue;
        this.#deliver(group, handler, busyKey, message, offset);
      }
    }
  }

  #deliver(
    group: GroupState,
    handler: MessageHandler,
    busyKey: string,
    message: BusMessage,
    offset: number,
  ): void {
    group.busy.add(busyKey);
    const token: DeliveryToken = { abandoned: false };
    const settled = Promise.resolve()
      .then(() => handler(message))
      .then(
        () => {
          if (token.abandoned) return;
          if (this.#positions) this.#positions.set(busyKey, offset + 1);
          else this.#bus.commit(group, message.topic, message.partition, offset + 1);
          this.#release(group, busyKey);
        },
        (error: unknown) => {
          if (token.abandoned) return;
          // a handler rejection means "stop": this message stays uncommitted for the next member,
          // messages in flight on other partitions finish and commit, then the consumer leaves
          this.#failure ??= { error };
          this.#inFlight.delete(busyKey);
          group.busy.delete(busyKey);
          if (this.#state === "running" || this.#state === "joining") this.#state = "stopping";
          void Promise.all([...this.#inFlight.values()].map((f) => f.settled)).then(() => this.#finish());
        },
      );
    this.#inFlight.set(busyKey, { token, settled });
  }

  /** the next offset this member delivers: the group's committed one, or its own when it never commits */
  #position(group: GroupState, topic: string, partition: number): number {
    if (!this.#positions) return group.committed.get(topic)?.[partition] ?? 0;
    const key = `${topic}\u0000${partition}`;
    let position = this.#positions.get(key);
    if (position === undefined) {
      // first time this member owns the partition: where a new group would start
      position = (this.#options.fromBeginning ?? true) ? 0 : this.#bus.endOffset(topic, partition);
      this.#positions.set(key, position);
    }
    return position;
  }

  #release(group: GroupState, busyKey: string): void {
    this.#inFlight.delete(busyKey);
    group.busy.delete(busyKey);
    if (this.#state === "running") this.wake();
    // another member may own this partition after a rebalance
    this.#bus.wakeGroup(group);
  }

  #finish(): void {
    if (this.#state === "stopped") return;
    this.#state = "stopped";
    if (this.#group) this.#bus.leave(this, this.#group);
    if (this.#failure) this.#rejectDone(this.#failure.error);
    else this.#resolveDone();
  }
}

/** Appends events to per-topic JSONL files and keeps topics.json and offsets.json current. */
class Journal {
  readonly dir: string;
  readonly #handles = new Map<string, Awaited<ReturnType<typeof open>>>();
  #offsetsDirty = false;
  #offsetsWriting: Promise<void> | undefined;
  #latestGroups: Map<string, GroupState> | undefined;
  #abandoned = false;
  #topicsWriting: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.dir = dir;
  }

  async load(bus: MemoryBus): Promise<void> {
    await mkdir(join(this.dir, "events"), { recursive: true });
    const topics = await readJson(join(this.dir, "topics.json"), TopicsFileSchema);
    for (const [name, spec] of Object.entries(topics?.topics ?? {})) {
      assertTopicName(name);
      bus.createTopicFromJournal(name, spec.partitions);
      const path = eventLogPath(this.dir, name);
      for (const event of await readEventLogFile(path, { repairTornTail: true }))
        bus.appendFromJournal(name, event);
    }
    const orphans = (await listEventLogTopics(this.dir)).filter((name) => !topics?.topics[name]);
    if (orphans.length > 0) {
      throw new Error(
        `${join(this.dir, "events")}: ${orphans.map((n) => `${n}.jsonl`).join(", ")} not named in topics.json ` +
          `(add "<topic>": {"partitions": N} with the partition count it was written with)`,
      );
    }
    const offsets = await readJson(join(this.dir, "offsets.json"), OffsetsFileSchema);
    for (const [groupId, byTopic] of Object.entries(offsets?.groups ?? {})) {
      for (const [topic, committed] of Object.entries(byTopic))
        bus.restoreCommitted(groupId, topic, committed);
    }
  }

  /** serialised, each write taking the map as it is then, so the last write names every topic */
  writeTopics(topics: Map<string, TopicState>): Promise<void> {
    const write = this.#topicsWriting.then(async () => {
      const body = {
        version: 1 as const,
        topics: Object.fromEntries(
          [...topics.values()].map((t) => [t.name, { partitions: t.partitions.length }]),
        ),
      };
      await writeFileAtomic(join(this.dir, "topics.json"), `${JSON.stringify(body, null, 2)}\n`);
    });
    this.#topicsWriting = write.catch(() => {});
    return write;
  }

  async append(topic: string, lines: readonly string[]): Promise<void> {
    if (this.#abandoned) throw new Error("bus crashed: nothing more is written");
    let handle = this.#handles.get(topic);
    if (!handle) {
      handle = await open(eventLogPath(this.dir, topic), "a");
      this.#handles.set(topic, handle);
    }
    await handle.write(lines.map((line) => `${line}\n`).join(""));
    await handle.datasync();
  }

  /** offsets are written in the background, coalesced: losing the latest commits only causes redelivery */
  offsetsChanged(groups: Map<string, GroupState>): void {
    if (this.#abandoned) return;
    this.#latestGroups = groups;
    this.#offsetsDirty = true;
    if (!this.#offsetsWriting) {
      this.#offsetsWriting = this.#writeOffsetsLoop().finally(() => {
        this.#offsetsWriting = undefined;
      });
      this.#offsetsWriting.catch(() => {});
    }
  }

  async flushOffsets(groups: Map<string, GroupState>): Promise<void> {
    while (this.#offsetsWriting) await this.#offsetsWriting;
    if (this.#offsetsDirty || this.#latestGroups === undefined) {
      this.#latestGroups = groups;
      this.#offsetsDirty = true;
      await this.#writeOffsetsLoop();
    }
  }

  /** stops writing offsets (the latest may be lost, as in a crash) and closes the logs */
  async abandon(): Promise<void> {
    this.#abandoned = true;
    this.#offsetsDirty = false;
    while (this.#offsetsWriting) await this.#offsetsWriting;
    for (const handle of this.#handles.values()) await handle.close();
    this.#handles.clear();
  }

  async close(groups: Map<string, GroupState>): Promise<void> {
    await this.flushOffsets(groups);
    for (const handle of this.#handles.values()) await handle.close();
    this.#handles.clear();
  }

  async #writeOffsetsLoop(): Promise<void> {
    while (this.#offsetsDirty && this.#latestGroups) {
      this.#offsetsDirty = false;
      const groups: Record<string, Record<string, number[]>> = {};
      for (const group of this.#latestGroups.values()) {
        groups[group.id] = Object.fromEntries([...group.committed].map(([t, o]) => [t, [...o]]));
      }
      await writeFileAtomic(join(this.dir, "offsets.json"), `${JSON.stringify({ version: 1, groups })}\n`);
    }
  }
}

async function readJson<T>(path: string, schema: z.ZodType<T>): Promise<T | undefined> {
  const text = await readTextIfPresent(path);
  if (text === undefined) return undefined;
  const parsed = parseJsonWith(text, schema);
  if (parsed.ok) return parsed.value;
  if (parsed.problem === "not-json") throw new Error(`${path} is not valid JSON: ${parsed.error.message}`);
  const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
  throw new Error(`${path} is malformed: ${issues}`);
}

/**
 * Reads one topic's event log. A crash can tear only the last line (appends are fsynced in order),
 * so with `repairTornTail` an unterminated last line is cut off; any other bad line is an error.
 */
export async function readEventLogFile(
  path: string,
  options: { repairTornTail?: boolean } = {},
): Promise<CloudEvent<unknown>[]> {
  let text = await readTextIfPresent(path);
  if (text === undefined) return [];
  const lastNewline = text.lastIndexOf("\n");
  if (lastNewline !== text.length - 1) {
    if (options.repairTornTail) await truncate(path, Buffer.byteLength(text.slice(0, lastNewline + 1)));
    text = text.slice(0, lastNewline + 1);
  }
  const events: CloudEvent<unknown>[] = [];
  const lines = text.split("\n");
  for (const [index, line] of lines.entries()) {
    if (line === "") continue;
    const parsed = parseStructured(line);
    if (!parsed.ok) throw new Error(`${path}:${index + 1}: ${parsed.error.message}`);
    events.push(parsed.value);
  }
  return events;
}

/** The topics with an event log under `<dir>/events/`, sorted. */
export async function listEventLogTopics(dir: string): Promise<string[]> {
  try {
    const names = await readdir(join(dir, "events"));
    return names
      .filter((n) => n.endsWith(".jsonl"))
      .map((n) => n.slice(0, -".jsonl".length))
      .sort();
  } catch (error) {
    if (isErrno(error, "ENOENT")) return [];
    throw error;
  }
}
