import type { TopicSpec } from "../functions/runtime/bus.ts";

/**
 * Creates and deletes a run's Kafka topics. The cluster implementation adapts the Kafka admin client
 * (functions/runtime/kafka-bus.ts); tests use `MemoryTopicAdmin`.
 */
export interface TopicAdmin {
  /** creates missing topics; existing ones are left as they are (idempotent) */
  ensureTopics(topics: readonly TopicSpec[]): Promise<void>;
  /** deletes the topics that exist; missing ones are ignored (idempotent) */
  deleteTopics(names: readonly string[]): Promise<void>;
}

/** An in-memory TopicAdmin for unit tests and embedded use. */
export class MemoryTopicAdmin implements TopicAdmin {
  readonly topics = new Map<string, TopicSpec>();
  readonly deleted: string[] = [];

  async ensureTopics(topics: readonly TopicSpec[]): Promise<void> {
    for (const topic of topics) if (!this.topics.has(topic.name)) this.topics.set(topic.name, { ...topic });
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    for (const name of names) {
      if (this.topics.delete(name)) this.deleted.push(name);
    }
  }
}
