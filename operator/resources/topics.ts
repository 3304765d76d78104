import type { KafkaSpec } from "../../functions/contracts/questatraining.ts";
import { ALL_EVENTS } from "../../functions/contracts/registry.ts";
import type { TopicSpec } from "../../functions/runtime/bus.ts";
import { defaultTopicPrefix, type RunRef } from "./names.ts";

export const topicPrefixOf = (run: RunRef, kafka: KafkaSpec): string =>
  kafka.topicPrefix ?? defaultTopicPrefix(run);

/** logical topic names of every event a run emits (questions, rollouts, checkpoints, ...) */
export function logicalTopics(): string[] {
  return [...new Set(ALL_EVENTS.map((event) => event.topic))].filter((t) => t !== "dead-letter").sort();
}

/** The run's Kafka topics: one per logical topic of its events, plus the dead-letter topic. */
export function runTopics(run: RunRef, kafka: KafkaSpec): TopicSpec[] {
  const prefix = topicPrefixOf(run, kafka);
  return [...logicalTopics(), "dead-letter"].map((topic) => {
    const spec: TopicSpec = {
      name: `${prefix}.${topic}`,
      partitions: kafka.partitions,
      replicationFactor: kafka.replicationFactor,
    };
    if (kafka.retentionMs !== undefined) spec.retentionMs = kafka.retentionMs;
    return spec;
  });
}

export const runTopic = (run: RunRef, kafka: KafkaSpec, logical: string): string =>
  `${topicPrefixOf(run, kafka)}.${logical}`;
