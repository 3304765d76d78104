/**
 * The augment function bound to the runtime (in-process bus, in-memory store): a run start becomes
 * probe questions on the questions topic, a probe's rollout group becomes a training question, and
 * a restart of the function re-emits nothing it already decided differently.
 */
import { describe, expect, it } from "vitest";
import { augmentFunction } from "../functions/augment/handler.ts";
import { AugmentConfigSchema } from "../functions/augment/schema.ts";
import {
  QuestionAugmented,
  QuestionAugmentedSchema,
  RolloutGroup,
  RunStatus,
} from "../functions/contracts/events.ts";
import { parseBinaryMessage, toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import type { EventDefinition } from "../functions/runtime/event-definition.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";
import { bindFunction } from "../functions/runtime/runner.ts";

const prefix = "questa.demo";

function message<Data>(definition: EventDefinition<Data>, id: string, data: Data, key: string) {
  return toBinaryMessage({
    specversion: "1.0",
    id,
    source: "/questa/demo/test",
    type: definition.type,
    subject: "demo",
    time: "2026-01-01T00:00:00.000Z",
    datacontenttype: "application/json",
    partitionkey: key,
    data,
  });
}

function questions(bus: MemoryBus) {
  return bus.messages(`${prefix}.questions`).map((m) => {
    const parsed = parseBinaryMessage(m);
    if (!parsed.ok) throw parsed.error;
    expect(parsed.value.type).toBe(QuestionAugmented.type);
    return { id: parsed.value.id, data: QuestionAugmentedSchema.parse(parsed.value.data) };
  });
}

/** resolves when `predicate` holds; the deadline only bounds a hang (dataset reads go to disk) */
async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function runnerFor(bus: MemoryBus, store: MemoryObjectStore) {
  return bindFunction(augmentFunction, {
    bus,
    store,
    run: "demo",
    topicPrefix: prefix,
    logger: silentLogger(),
    services: {
      config: AugmentConfigSchema.parse({
        runPrefix: "demo",
        groupSize: 16,
        augmentation: {
          minPrefixChars: 3,
          curriculum: [{ ratio: 0.5, until: { steps: 100 } }, { ratio: 0.25 }],
          hardFilter: { enabled: true, samples: 8, minPasses: 0, maxPasses: 4 },
          decontamination: { enabled: true, ngram: 13 },
        },
        train: [{ name: "synthetic", synthetic: { split: "train", difficulty: "hard", count: 12, seed: 3 } }],
        evaluation: [
          { name: "synthetic-eval", synthetic: { split: "eval", difficulty: "hard", count: 12, seed: 3 } },
        ],
      }),
    },
  });
}

describe("augment function on the in-process bus", () => {
  it("probes, filters and emits training questions; a restarted function keeps its decisions", async () => {
    const bus = new MemoryBus();
    const store = new MemoryObjectStore();
    const runner = runnerFor(bus, store);
    await runner.start();
    await bus.publish(`${prefix}.status`, [
      message(
        RunStatus,
        "start-1",
        { run: "demo", kind: "started", step: 0, stage: 0, hintRatio: 0.5 },
        "demo",
      ),
    ]);
    await until(() => questions(bus).length === 12, "12 probe questions");
    const probes = questions(bus);
    expect(probes.every((q) => q.data.purpose === "probe" && q.data.samples === 8 && q.data.hinted)).toBe(
      true,
    );
    expect(bus.messages(`${prefix}.dead-letter`)).toEqual([]);

    const group = (questionId: string, passes: number, id: string) =>
      message(
        RolloutGroup,
        id,
        {
          run: "demo",
          questionId,
          stage: 0,
          purpose: "probe",
          epoch: 0,
          policyVersion: 0,
          rewards: Array.from({ length: 8 }, (_, i) => (i < passes ? 5 : 0)),
          passCount: passes,
          successRate: passes / 8,
          responseTokens: 64,
          shard: { uri: "memory:///s", key: "s", sha256: "a".repeat(64), size: 1 },
        },
        questionId,
      );
    const [first, second] = probes.map((q) => q.data.questionId) as [string, string];
    await bus.publish(`${prefix}.rollouts`, [group(first, 1, "g-1"), group(second, 8, "g-2")]);
    await until(() => questions(bus).length === 13, "one training question");
    const trained = questions(bus)[12]!;
    expect(trained.data).toMatchObject({ questionId: first, purpose: "train", samples: 16, stage: 0 });
    await runner.stop();

    // a new process (same bus, store and consumer group: committed offsets kept) sees a new start
    const restarted = runnerFor(bus, store);
    await restarted.start();
    await bus.publish(`${prefix}.status`, [
      message(
        RunStatus,
        "start-2",
        { run: "demo", kind: "started", step: 0, stage: 0, hintRatio: 0.5 },
        "demo",
      ),
    ]);
    await until(() => questions(bus).length === 13 + 11, "re-emitted questions");
    const again = questions(bus).slice(13);
    // the kept question is re-emitted for training with the same id; the dropped one is gone
    expect(again.filter((q) => q.data.purpose === "train").map((q) => q.id)).toEqual([trained.id]);
    expect(again.some((q) => q.data.questionId === second)).toBe(false);
    await restarted.stop();
  });
});
