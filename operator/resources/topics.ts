import type { KafkaSpec } from "../../functions/contracts/questatraining.ts";
import { ALL_EVENTS } from "../../functions/contracts/registry.ts";
import type { TopicSpec } from "../../functions/runtime/bus.ts";

/** logical topic names of every event a run emits (questions, rollouts, checkpoints, ...) */
export function logicalTopics(): string[] {
  return [...new Set(ALL_EVENTS.map((event) => event.topic))].filter((t) => t !== "dead-letter").sort();
}

/** The run's Kafka topics: one per logical topic of its events, plus the dead-letter topic. */
export function runTopics(topicPrefix: string, kafka: KafkaSpec): TopicSpec[] {
  return [...logicalTopics(), "dead-letter"].map((topic) => {
    const spec: TopicSpec = {
      name: runTopic(topicPrefix, topic),
      partitions: kafka.partitions,
      replicationFactor: kafka.replicationFactor,
    };
    if (kafka.retentionMs !== undefined) spec.retentionMs = kafka.retentionMs;
    return spec;
  });
}

export const runTopic = (topicPrefix: string, logical: string): string => `${topicPrefix}.${logical}`;
