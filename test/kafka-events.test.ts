import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, inject, it } from "vitest";
import { ALL_EVENTS } from "../functions/contracts/registry.ts";
import type { BusMessage } from "../functions/runtime/bus.ts";
import { parseBinaryMessage, toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import { KafkaBus } from "../functions/runtime/kafka-bus.ts";

// Every event type of a run goes through the real broker as a binary-mode CloudEvent and comes
// back with the same headers and the same data. A new event type without a sample here fails.

const brokers = inject("kafkaBrokers");
const sha = (seed: string) => seed.repeat(64).slice(0, 64);
const ref = (key: string) => ({ uri: `s3://questa/runs/demo/${key}`, key, sha256: sha("ab"), size: 1234 });

const samples: Record<string, unknown> = {
  "dev.questa.question.augmented.v1": {
    run: "demo",
    questionId: "q-7f3a",
    source: "aime24",
    stage: 1,
    ratio: 0.25,
    purpose: "train",
    prompt: "Find $x$ such that $x^2 = 2$ (ünïcødé ✓).\n\n## Hint.Let $x = \\sqrt{2}$",
    hinted: true,
    hintChars: 17,
    answer: "\\sqrt{2}",
    samples: 16,
    epoch: 0,
  },
  "dev.questa.rollout.group.v1": {
    run: "demo",
    questionId: "q-7f3a",
    stage: 1,
    purpose: "probe",
    epoch: 2,
    policyVersion: 40,
    rewards: [5, 0, 0, 5],
    passCount: 2,
    successRate: 0.5,
    responseTokens: 9000,
    shard: ref("rollouts/step-40/q-7f3a.bin"),
  },
  "dev.questa.checkpoint.published.v1": {
    run: "demo",
    step: 100,
    stage: 1,
    parentStep: 50,
    reason: "stage-end",
    manifest: ref("checkpoints/step-100/manifest.json"),
  },
  "dev.questa.evaluation.result.v1": {
    run: "demo",
    step: 100,
    benchmark: "aime25",
    problems: 30,
    samples: 32,
    temperature: 0.6,
    topP: 0.95,
    hinted: false,
    passAt1: 0.623,
    passAtK: { "1": 0.623, "8": 0.81, "32": 0.9 },
    majAtK: { "8": 0.7 },
    passAt1Interval: { low: 0.55, high: 0.69 },
    results: ref("evaluations/step-100/aime25.jsonl"),
  },
  "dev.questa.run.status.v1": {
    run: "demo",
    kind: "step",
    step: 101,
    stage: 1,
    hintRatio: 0.25,
    metrics: {
      rewardMean: 1.5,
      passRate: 0.3,
      entropy: 0.41,
      clipFraction: 0.02,
      approxKl: -0.0003,
      gradNorm: 0.8,
      loss: -0.012,
      tokensPerSecond: 41000,
      staleness: 1.5,
      groupsKept: 128,
      groupsRejected: 40,
    },
    message: "step 101 done",
  },
  "dev.questa.curriculum.stage.v1": {
    run: "demo",
    fromStage: 0,
    toStage: 1,
    ratio: 0.25,
    step: 100,
    reason: "entropy",
    entropy: 0.35,
  },
  "dev.questa.dead.letter.v1": {
    function: "learn",
    group: "questa.demo.learn",
    reason: "invalid-data",
    attempts: 0,
    time: "2026-01-01T00:00:00Z",
    message: {
      topic: "questa.demo.rollouts",
      partition: 0,
      offset: "42",
      key: "q1",
      headers: { ce_type: "dev.questa.rollout.group.v1" },
      value: { encoding: "utf8", data: '{"run":"demo"}' },
      timestamp: 1767225600000,
    },
    error: {
      code: "invalid_data",
      message: "data.questionId: required",
      action: "dead-letter",
      issues: [{ path: "data.questionId", message: "required" }],
    },
  },
};

const buses: KafkaBus[] = [];
afterAll(async () => {
  await Promise.all(buses.map((bus) => bus.close()));
});

describe("every event type over Kafka", () => {
  it("has a sample for each registered event type", () => {
    expect(Object.keys(samples).sort()).toEqual(ALL_EVENTS.map((d) => d.type).sort());
  });

  it("round-trips each event type with headers and data intact", async () => {
    const bus = new KafkaBus(
      { brokers, clientId: "questa-events" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    buses.push(bus);
    const topic = `events-${randomBytes(4).toString("hex")}`;
    await bus.ensureTopics([{ name: topic, partitions: 3 }]);
    const events: CloudEvent<unknown>[] = ALL_EVENTS.map((definition, i) => ({
      specversion: "1.0",
      id: `evt-${i}`,
      source: "/questa/demo/test",
      type: definition.type,
      subject: "demo",
      time: "2026-11-26T06:00:00.000Z",
      datacontenttype: "application/json",
      partitionkey: `key-${i}`,
      data: definition.data.parse(samples[definition.type]),
    }));
    const outgoing = events.map((event) => toBinaryMessage(event));
    await bus.publish(topic, outgoing);

    const received: BusMessage[] = [];
    const consumer = bus.consumer({ groupId: `${topic}-g`, topics: [topic] });
    await consumer.run(async (message) => {
      received.push(message);
    });
    const deadline = Date.now() + 60_000;
    while (received.length < events.length && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await consumer.stop();
    expect(received).toHaveLength(events.length);

    for (const [i, event] of events.entries()) {
      const message = received.find((m) => m.headers.ce_id === event.id);
      expect(message, event.type).toBeDefined();
      if (!message) continue;
      expect(message.headers).toEqual(outgoing[i]?.headers);
      expect(message.key).toBe(outgoing[i]?.key);
      const parsed = parseBinaryMessage(message);
      if (!parsed.ok) throw parsed.error;
      expect(parsed.value).toEqual(event);
      const definition = ALL_EVENTS.find((d) => d.type === parsed.value.type);
      expect(definition?.data.parse(parsed.value.data)).toEqual(event.data);
    }
  });
});
