import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validateYaml } from "../contracts/validate.ts";
import { replayCurriculum } from "../questa/curriculum.ts";
import { generateSyntheticProblems } from "../questa/synthetic-task.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import { augmentConfigFromSpec } from "./config.ts";
import { curriculumStageChangedData } from "./curriculum-events.ts";
import { storeDatasetOpener } from "./dataset-source.ts";
import { buildStage } from "./handler.ts";

function exampleSpec(name: string) {
  const text = readFileSync(new URL(`../../manifests/examples/${name}`, import.meta.url), "utf8");
  const result = validateYaml(text)[0]?.result;
  if (!result?.ok) throw new Error(`example ${name} does not validate`);
  return result.value.spec;
}

describe("augment config from the QuestATraining spec", () => {
  it("maps the quickstart example and builds its stage-0 set from the synthetic task", async () => {
    const config = augmentConfigFromSpec("quickstart", exampleSpec("quickstart.yaml"));
    expect(config).toMatchObject({
      runPrefix: "quickstart",
      groupSize: 8,
      augmentation: { template: "{problem}\n\n## Hint.{hint}", unit: "chars", minPrefixChars: 4 },
    });
    expect(config.evaluation.map((source) => source.name)).toEqual([
      "synthetic-hard-eval",
      "synthetic-easy-eval",
    ]);
    const built = await buildStage(config, 0, storeDatasetOpener(new MemoryObjectStore()));
    expect(built.questions).toHaveLength(1024);
    expect(built.manifest.report.decontamination).toMatchObject({ enabled: false, dropped: 0 });
    expect(built.questions.every((q) => q.hinted)).toBe(true);
  });

  it("maps the Nemotron example (Parquet OpenR1 data on S3)", () => {
    const config = augmentConfigFromSpec("nemotron", exampleSpec("nemotron-aime.yaml"));
    expect(config.train[0]).toMatchObject({
      uri: "s3://questa-data/openr1-math-hard.parquet",
      format: "parquet",
      mapping: "openr1",
    });
    expect(config.augmentation.decontamination).toMatchObject({ enabled: true, ngram: 13, minOverlap: 0.5 });
  });

  it("turns curriculum transitions into stage events, not the end of the last stage", () => {
    const config = augmentConfigFromSpec("quickstart", exampleSpec("quickstart.yaml"));
    const { transitions } = replayCurriculum(config.augmentation.curriculum, [
      { step: 49 },
      { step: 50, entropy: 0.4 },
    ]);
    expect(transitions.map((t) => curriculumStageChangedData("quickstart", t))).toEqual([
      { run: "quickstart", fromStage: 0, toStage: 1, ratio: 0.25, step: 50, reason: "steps" },
    ]);
    expect(
      curriculumStageChangedData("q", {
        fromStage: 1,
        toStage: null,
        fromRatio: 0.25,
        toRatio: null,
        atStep: 9,
        reason: "steps",
      }),
    ).toBeUndefined();
  });

  it("keeps every quickstart synthetic hint at p = 0.25 only with a lower minPrefixChars", () => {
    const problems = generateSyntheticProblems({ seed: 1, count: 500, split: "train", difficulty: "hard" });
    const quarter = (solution: string) => Math.trunc(solution.length * 0.25);
    const hintedAt = (min: number) =>
      problems.filter((p) => quarter(p.solution) >= min).length / problems.length;
    // hard solutions are 35-42 characters: at the official 10, a quarter of the short ones is dropped
    expect(hintedAt(10)).toBeLessThan(0.95);
    expect(hintedAt(4)).toBe(1);
  });
});
