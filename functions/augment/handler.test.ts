import { describe, expect, it } from "vitest";
import {
  CurriculumStageChanged,
  type QuestionAugmentedData,
  QuestionAugmentedSchema,
  RolloutGroup,
  RunStatus,
} from "../contracts/events.ts";
import { systemClock } from "../runtime/clock.ts";
import type { CloudEvent, EmittedEvent, EventDefinition } from "../runtime/event-definition.ts";
import { silentLogger } from "../runtime/logger.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import { seededRandom } from "../runtime/random.ts";
import { readProgress } from "./epochs.ts";
import { ANSWERED_WRITE_EVERY, type AugmentDeps, augmentFunction } from "./handler.ts";
import { type AugmentConfigInput, AugmentConfigSchema, RejectionSchema } from "./schema.ts";
import { readStageManifest, readStageQuestions } from "./shard-writer.ts";

const trainLines = [
  {
    problem: "What is 2+3?",
    answer: "5",
    generation: "<think>2 and 3</think>Adding: 2+3=5, so the answer is \\boxed{5}.",
  },
  {
    problem: "What is 4*4?",
    answer: "16",
    generation: "<think>x</think>Multiply four by four to get \\boxed{16} here.",
  },
  {
    problem: "No answer in solution",
    answer: "9",
    generation: "<think>t</think>This solution never says it.",
  },
  "not json at all",
  {
    problem:
      "Copy of a benchmark problem about integer bases and divisors written in decimal notation for everyone here",
    answer: "70",
    generation: "Sum is \\boxed{70} after checking every base carefully.",
  },
];
const benchmark = {
  problem:
    "Copy of a benchmark problem about integer bases and divisors written in decimal notation for everyone here",
  answer: 70,
};

function config(overrides: Partial<AugmentConfigInput["augmentation"]> = {}): AugmentConfigInput {
  return {
    runPrefix: "demo",
    groupSize: 16,
    shardSize: 2,
    augmentation: {
      curriculum: [{ ratio: 0.5, until: { steps: 100 } }, { ratio: 0.25 }],
      hardFilter: { enabled: true, samples: 8, minPasses: 0, maxPasses: 4 },
      decontamination: { enabled: true, ngram: 13 },
      ...overrides,
    },
    train: [{ name: "openr1", uri: "datasets/train.jsonl", mapping: "openr1" }],
    evaluation: [{ name: "aime25", uri: "datasets/aime25.jsonl", mapping: "aime25" }],
  };
}

async function setup(input: AugmentConfigInput = config()) {
  const store = new MemoryObjectStore();
  await store.put(
    "datasets/train.jsonl",
    trainLines.map((line) => (typeof line === "string" ? line : JSON.stringify(line))).join("\n"),
  );
  await store.put("datasets/aime25.jsonl", `${JSON.stringify(benchmark)}\n`);
  const deps: AugmentDeps = {
    store,
    clock: systemClock,
    rng: seededRandom(1),
    logger: silentLogger(),
    run: "demo",
    signal: new AbortController().signal,
    services: { config: AugmentConfigSchema.parse(input) },
  };
  return { store, deps };
}

let sequence = 0;
function cloudEvent<Data>(definition: EventDefinition<Data>, data: Data): CloudEvent<Data> {
  return {
    specversion: "1.0",
    id: `in-${++sequence}`,
    source: "/questa/demo/test",
    type: definition.type,
    subject: "demo",
    time: "2026-01-01T00:00:00Z",
    datacontenttype: "application/json",
    data,
  };
}

const started = () =>
  cloudEvent(RunStatus, { run: "demo", kind: "started", step: 0, stage: 0, hintRatio: 0.5 });

function probeGroup(questionId: string, stage: number, passes: number) {
  const rewards = Array.from({ length: 8 }, (_, i) => (i < passes ? 5 : 0));
  return cloudEvent(RolloutGroup, {
    run: "demo",
    questionId,
    stage,
    purpose: "probe",
    epoch: 0,
    policyVersion: 0,
    rewards,
    passCount: passes,
    successRate: passes / 8,
    responseTokens: 100,
    shard: { uri: "memory:///x", key: "x", sha256: "0".repeat(64), size: 1 },
  });
}

function data(events: readonly EmittedEvent<unknown>[]): QuestionAugmentedData[] {
  return events.map((event) => QuestionAugmentedSchema.parse(event.data));
}

describe("augment function", () => {
  it("builds the stage once, writes shards and a manifest, and probes every question", async () => {
    const { store, deps } = await setup();
    const events = await augmentFunction.handle(started(), deps);
    const questions = data(events);
    expect(questions.map((q) => [q.purpose, q.samples, q.stage, q.ratio])).toEqual([
      ["probe", 8, 0, 0.5],
      ["probe", 8, 0, 0.5],
    ]);
    // 42 characters after </think>; int(42 * 0.5) = 21
    expect(questions[0]?.prompt).toBe("What is 2+3?\n\n## Hint.Adding: 2+3=5, so the");
    expect(events[0]?.key).toBe(`${questions[0]?.questionId}:0`);

    const written = await readStageManifest(store, "demo", 0);
    expect(written?.manifest.shards.map((s) => [s.key, s.count])).toEqual([
      ["demo/augmented/stage-0/questions-00000.jsonl", 2],
    ]);
    expect(written?.manifest.report).toMatchObject({
      datasets: [{ name: "openr1", totalRows: 5, records: 4, badRows: 1 }],
      decontamination: { dropped: 1, droppedBySource: { openr1: 1 }, evaluationProblems: 1 },
      augmentation: {
        input: 3,
        augmented: 2,
        dropped: { "answer-not-in-solution": 1, "missing-solution": 0 },
      },
    });
    const shardLines = await readStageQuestions(store, written!.manifest);
    expect(shardLines.map((line) => [line.questionId, line.prompt])).toEqual(
      questions.map((q) => [q.questionId, q.prompt]),
    );
    const rejections = new TextDecoder()
      .decode(await store.get("demo/augmented/stage-0/rejections.jsonl"))
      .trim()
      .split("\n")
      .map((line) => RejectionSchema.parse(JSON.parse(line)));
    expect(rejections.map((r) => [r.kind, r.row])).toEqual([
      ["bad-row", 4],
      ["contaminated", undefined],
      ["answer-not-in-solution", undefined],
    ]);

    // redelivery: same ids, same bytes, no rebuild needed
    const manifestBefore = await store.head("demo/augmented/stage-0/manifest.json");
    const again = await augmentFunction.handle(started(), deps);
    expect(again.map((e) => e.id)).toEqual(events.map((e) => e.id));
    expect(await store.head("demo/augmented/stage-0/manifest.json")).toEqual(manifestBefore);
  });

  it("produces the same bytes from a fresh store (deterministic shards)", async () => {
    const a = await setup();
    const b = await setup();
    await augmentFunction.handle(started(), a.deps);
    await augmentFunction.handle(started(), b.deps);
    expect((await a.store.list("demo/")).map((o) => [o.key, o.sha256])).toEqual(
      (await b.store.list("demo/")).map((o) => [o.key, o.sha256]),
    );
  });

  it("turns probe feedback into persisted decisions and emits kept questions for training", async () => {
    const { store, deps } = await setup();
    const probes = data(await augmentFunction.handle(started(), deps));
    const [hard, easy] = probes.map((q) => q.questionId) as [string, string];

    const kept = data(await augmentFunction.handle(probeGroup(hard, 0, 2), deps));
    expect(kept).toEqual([{ ...probes[0], purpose: "train", samples: 16 }]);
    expect(await augmentFunction.handle(probeGroup(easy, 0, 7), deps)).toEqual([]);
    // a redelivered probe with other counts does not change the first decision
    expect(data(await augmentFunction.handle(probeGroup(hard, 0, 8), deps))).toEqual(kept);
    expect(await store.head(`demo/augmented/stage-0/hard-filter/${hard}.json`)).toBeDefined();

    // the stage restarts: decided questions are not probed again, dropped ones stay dropped
    const restarted = data(await augmentFunction.handle(started(), deps));
    expect(restarted.map((q) => [q.questionId, q.purpose])).toEqual([[hard, "train"]]);

    // the next stage cuts shorter hints and probes afresh
    const stage1 = data(
      await augmentFunction.handle(
        cloudEvent(CurriculumStageChanged, {
          run: "demo",
          fromStage: 0,
          toStage: 1,
          ratio: 0.25,
          step: 100,
          reason: "steps",
        }),
        deps,
      ),
    );
    expect(stage1.map((q) => [q.purpose, q.stage, q.ratio, q.hinted])).toEqual([
      ["probe", 1, 0.25, true],
      ["probe", 1, 0.25, true],
    ]);
    expect(stage1[0]?.prompt).toBe("What is 2+3?\n\n## Hint.Adding: 2+");
  });

  it("emits every question for training when the filter is off; ignores training groups and other statuses", async () => {
    const { deps } = await setup(
      config({ hardFilter: { enabled: false, samples: 8, minPasses: 0, maxPasses: 4 } }),
    );
    const questions = data(await augmentFunction.handle(started(), deps));
    expect(questions.map((q) => [q.purpose, q.samples])).toEqual([
      ["train", 16],
      ["train", 16],
    ]);
    const trainGroup = probeGroup(questions[0]!.questionId, 0, 3);
    expect(
      await augmentFunction.handle({ ...trainGroup, data: { ...trainGroup.data, purpose: "train" } }, deps),
    ).toEqual([]);
    const step = cloudEvent(RunStatus, { run: "demo", kind: "step", step: 3, stage: 0, hintRatio: 0.5 });
    expect(await augmentFunction.handle(step, deps)).toEqual([]);
  });

  it("generates the synthetic task when a dataset is synthetic", async () => {
    const { deps } = await setup({
      ...config({
        hardFilter: { enabled: false, samples: 8, minPasses: 0, maxPasses: 4 },
        minPrefixChars: 3,
      }),
      train: [{ name: "synthetic", synthetic: { split: "train", difficulty: "hard", count: 20, seed: 1 } }],
      evaluation: [
        { name: "synthetic-eval", synthetic: { split: "eval", difficulty: "hard", count: 20, seed: 1 } },
      ],
    });
    const questions = data(await augmentFunction.handle(started(), deps));
    expect(questions).toHaveLength(20);
    expect(questions.every((q) => q.hinted && q.prompt.includes("=?\n\n## Hint."))).toBe(true);
  });
});

describe("augment function input errors", () => {
  it("rejects a training dataset without one usable record, naming it and the first reasons", async () => {
    const { store, deps } = await setup();
    await store.put("datasets/train.jsonl", "oops\n{}\n");
    await expect(augmentFunction.handle(started(), deps)).rejects.toThrow(
      /datasets\.train\[0\]: openr1 has no usable records in 2 rows \(line 1: not JSON/,
    );
  });

  it("emits the next pass, reshuffled, once most of a pass came back, and stops when the run ends", async () => {
    const { deps } = await setup();
    const questions = data(await augmentFunction.handle(started(), deps));
    const answered = async (questionId: string, epoch: number) =>
      data(
        await augmentFunction.handle(
          cloudEvent(RolloutGroup, {
            ...probeGroup(questionId, 0, 1).data,
            purpose: "train" as const,
            epoch,
          }),
          deps,
        ),
      );
    // both probes decided as kept; epoch 0 is their training questions
    const kept = [];
    for (const q of questions)
      kept.push(...data(await augmentFunction.handle(probeGroup(q.questionId, 0, 2), deps)));
    expect(kept.map((q) => [q.purpose, q.epoch])).toEqual([
      ["train", 0],
      ["train", 0],
    ]);
    // ceil(2 * 0.75) = 2 answers complete pass 0
    expect(await answered(kept[0]?.questionId ?? "", 0)).toEqual([]);
    const pass1 = await answered(kept[1]?.questionId ?? "", 0);
    expect(pass1.map((q) => [q.purpose, q.epoch]).sort()).toEqual([
      ["train", 1],
      ["train", 1],
    ]);
    // a late answer of pass 0 does not start another pass
    expect(await answered(kept[0]?.questionId ?? "", 0)).toEqual([]);
    await augmentFunction.handle(
      cloudEvent(RunStatus, { run: "demo", kind: "finished", step: 9, stage: 0, hintRatio: 0.5 }),
      deps,
    );
    expect(await answered(kept[0]?.questionId ?? "", 1)).toEqual([]);
    expect(await answered(kept[1]?.questionId ?? "", 1)).toEqual([]);
  });

  it("keeps an answered count in memory until the count is due, and writes a new pass at once", async () => {
    const { deps } = await setup();
    const questions = data(await augmentFunction.handle(started(), deps));
    for (const q of questions) await augmentFunction.handle(probeGroup(q.questionId, 0, 2), deps);
    const stored = async () => readProgress(deps.store, deps.services.config.runPrefix);
    const answer = (epoch: number) =>
      augmentFunction.handle(
        cloudEvent(RolloutGroup, { ...probeGroup("q", 0, 1).data, purpose: "train" as const, epoch }),
        deps,
      );
    expect(await stored()).toMatchObject({ epoch: 0, answered: 0, decided: 2 });
    // one of the two kept questions answered: counted, not yet written (ANSWERED_WRITE_EVERY)
    await answer(0);
    expect(ANSWERED_WRITE_EVERY).toBeGreaterThan(1);
    expect(await stored()).toMatchObject({ epoch: 0, answered: 0 });
    // the second completes pass 0: the next pass is written before its questions go out
    expect(data(await answer(0))).toHaveLength(2);
    expect(await stored()).toMatchObject({ epoch: 1, answered: 0 });
  });
});
