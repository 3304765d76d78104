/**
 * The benchmark and training files that ship in the repository (datasets/, each with its SOURCE.md)
 * load with the exact counts and answers, and the training sample augments and decontaminates cleanly.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { Augmenter, augmentRecords } from "../functions/questa/augmentation.ts";
import { type DatasetMappingName, readDataset } from "../functions/questa/dataset-readers.ts";
import { ContaminationIndex, decontaminate } from "../functions/questa/decontamination.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const datasets = resolve(repoRoot, "datasets");

async function load(path: string, mapping: DatasetMappingName, source: string) {
  const store = new MemoryObjectStore();
  const key = `datasets/${path}`;
  await store.put(key, readFileSync(join(datasets, path)));
  return readDataset(store, key, { source, mapping });
}

function jsonLines(path: string): Array<Record<string, unknown>> {
  return readFileSync(join(datasets, path), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("the datasets in the repository", () => {
  it("AIME 2024: 30 problems, zero-padded answers read as integers", async () => {
    const result = await load("aime24/test.jsonl", "aime24", "aime24");
    expect(result.badRows).toEqual([]);
    expect(result.records).toHaveLength(30);
    const raw = jsonLines("aime24/test.jsonl");
    expect(raw.some((row) => String(row.answer).startsWith("0"))).toBe(true);
    expect(result.records.map((r) => r.answer)).toEqual(raw.map((row) => String(Number(row.answer))));
    expect(result.records.every((r) => r.solution !== undefined)).toBe(true);
  });

  it("AIME 2025: 30 problems, numeric answers as in the MathArena answer lists", async () => {
    const result = await load("aime25/test.jsonl", "aime25", "aime25");
    expect(result.badRows).toEqual([]);
    expect(result.records.map((r) => r.answer)).toEqual(
      [
        70, 588, 16, 117, 279, 504, 821, 77, 62, 81, 259, 510, 204, 60, 735, 468, 49, 82, 106, 336, 293, 237,
        610, 149, 907, 113, 19, 248, 104, 240,
      ].map(String),
    );
  });

  it("HMMT February 2025: 30 problems, answers equal to the upstream answers.csv", async () => {
    const result = await load("hmmt_feb_2025/test.jsonl", "hmmt-feb-2025", "hmmt-feb-2025");
    expect(result.badRows).toEqual([]);
    const csv = readFileSync(join(datasets, "hmmt_feb_2025/answers.csv"), "utf8").trim().split("\n").slice(1);
    const answers = csv.map((line) => {
      const value = line.slice(line.indexOf(",") + 1);
      return value.startsWith('"') ? value.slice(1, -1).replaceAll('""', '"') : value;
    });
    expect(answers).toHaveLength(30);
    expect(result.records.map((r) => r.answer)).toEqual(answers);
    expect(result.records[9]?.answer).toBe("\\frac{-1+\\sqrt{17}}{2}, \\frac{-1-\\sqrt{17}}{2}");
  });

  it("MATH-500: 500 problems with solutions and the file's answers", async () => {
    const result = await load("math500/test.jsonl", "math-500", "math-500");
    expect(result.badRows).toEqual([]);
    expect(result.records).toHaveLength(500);
    expect(result.records.map((r) => r.answer)).toEqual(
      jsonLines("math500/test.jsonl").map((row) => row.answer),
    );
    expect(new Set(result.records.map((r) => r.id)).size).toBe(500);
  });

  it("training sample: 975 AIME problems augment at p = 0.5 and do not overlap the benchmarks", async () => {
    const train = await load("train-sample/aime.json", "deepscaler-aime", "deepscaler-aime");
    expect(train.badRows).toEqual([]);
    expect(train.records).toHaveLength(975);
    const benchmarks = await Promise.all([
      load("aime24/test.jsonl", "aime24", "aime24"),
      load("aime25/test.jsonl", "aime25", "aime25"),
      load("hmmt_feb_2025/test.jsonl", "hmmt-feb-2025", "hmmt-feb-2025"),
    ]);
    const index = new ContaminationIndex(benchmarks.flatMap((b) => b.records));
    const clean = decontaminate(train.records, index);
    expect(clean.counts.dropped).toBe(0);
    // a benchmark checked against itself is wholly contaminated
    expect(decontaminate(benchmarks[0]!.records, index).counts.dropped).toBe(30);
    // MATH-500 holds old AIME problems, some of them in the training sample
    const math500 = await load("math500/test.jsonl", "math-500", "math-500");
    const againstMath = decontaminate(train.records, new ContaminationIndex(math500.records));
    expect(againstMath.counts.dropped).toBe(9);
    expect(againstMath.dropped.map((hit) => hit.overlap).every((overlap) => overlap >= 0.5)).toBe(true);

    const batch = augmentRecords(clean.kept, new Augmenter({ ratio: 0.5 }));
    expect(batch.counts.input).toBe(975);
    expect(batch.counts.augmented + batch.counts.dropped["answer-not-in-solution"]).toBe(975);
    // 2 of the 975 solutions never state their answer (checked with Python; a third writes \boxed{24}
    // for the answer "024", which the integer mapping reads as "24")
    expect(batch.counts.dropped["answer-not-in-solution"]).toBe(2);
    expect(batch.questions.every((q) => q.prompt.includes("\n\n## Hint."))).toBe(true);
  });
});
