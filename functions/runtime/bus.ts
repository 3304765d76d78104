/**
 * The message bus every function reads from and writes to: an in-process bus locally, Kafka in a
 * cluster. Semantics follow Kafka's so both behave alike: topics split into partitions by key
 * (same key, same partition, in order), consumer groups with committed offsets, and at-least-once
 * delivery (whatever a group has not committed is delivered again after a crash or restart).
 */
export type Headers = Record<string, string>;

export interface OutgoingMessage {
  /** partitioning key: messages with the same key keep their order */
  key?: string;
  headers: Headers;
  value: Uint8Array;
}

export interface BusMessage {
  topic: string;
  partition: number;
  /** decimal string, as Kafka reports offsets (they may exceed 2^53) */
  offset: string;
  key: string | undefined;
  headers: Headers;
  value: Uint8Array;
  /** milliseconds since the epoch when the message was appended */
  timestamp: number;
}

export interface TopicSpec {
  name: string;
  partitions?: number;
  replicationFactor?: number;
  /** milliseconds; omitted = the broker's default */
  retentionMs?: number;
}

export interface ConsumerOptions {
  groupId: string;
  topics: readonly string[];
  /** where a group with no committed offset starts; default true (read everything) */
  fromBeginning?: boolean;
  /**
   * default true. false: the group never commits, so every member that joins (a restart, a new
   * process, a partition moved by a rebalance) reads from where `fromBeginning` says again. For
   * readers whose handling is idempotent and whose results live elsewhere (the operator folds a
   * run's events into `.status`): a committed offset would vouch for a result it never stored.
   */
  commitOffsets?: boolean;
}

/**
 * Handles one message. The bus commits the message's offset only after this resolves; if it
 * rejects, the message is not committed and the consumer stops as if it crashed (the runtime above
 * the bus turns handler failures into retries or dead letters, so a rejection here means "stop").
 */
export type MessageHandler = (message: BusMessage) => Promise<void>;

export interface Consumer {
  /** starts delivering; resolves once the consumer has joined its group and is delivering */
  run(handler: MessageHandler): Promise<void>;
  /** stops fetching new messages (in-flight ones finish); used for back-pressure */
  pause(): void;
  resume(): void;
  /** messages on the subscribed topics that the group has not committed yet */
  lag(): Promise<number>;
  /** finishes the in-flight message, commits what finished, leaves the group */
  stop(): Promise<void>;
  /** resolves when the consumer stops, or rejects with the error that stopped it */
  readonly done: Promise<void>;
}

export interface Bus {
  /** creates the topics that do not exist yet; existing ones are left as they are */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** resolves once every message is durable (acknowledged by all in-sync replicas on Kafka) */
  publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  consumer(options: ConsumerOptions): Consumer;
  close(): Promise<void>;
}
