import { describe, expect, it } from "vitest";
import { DatasetRefSchema } from "../contracts/questatraining.ts";
import { InputError } from "../runtime/errors.ts";
import { datasetSourceOf, loadDatasetSource, requireRecords } from "./dataset-source.ts";

const rows = [
  { problem: "p1", answer: "1", level: 1 },
  { problem: "p2", answer: "2", level: 3 },
  { problem: "p3", answer: "3", level: "2" },
  { problem: "p4", answer: "4", level: 2 },
  { problem: "p5", answer: "5" },
  { problem: "p6", answer: "6", level: 1 },
];
const file = new TextEncoder().encode(rows.map((r) => JSON.stringify(r)).join("\n"));
const open = async (uri: string) => (uri === "math.jsonl" ? file : undefined);
const problems = async (source: Parameters<typeof loadDatasetSource>[0]) =>
  (await loadDatasetSource(source, open)).records.map((r) => r.problem);

describe("loadDatasetSource", () => {
  it("keeps the rows where selects (values compared as text), then applies offset and limit", async () => {
    const base = { name: "math", uri: "math.jsonl" };
    expect(await problems({ ...base, where: { level: ["1", "2"] } })).toEqual(["p1", "p3", "p4", "p6"]);
    expect(await problems({ ...base, where: { level: ["1", "2"] }, offset: 1, limit: 2 })).toEqual([
      "p3",
      "p4",
    ]);
    expect(await problems({ ...base, offset: 4 })).toEqual(["p5", "p6"]);
    expect(await problems({ ...base, limit: 1 })).toEqual(["p1"]);
    // a row without the field is not selected, and is not a bad row either
    const read = await loadDatasetSource({ ...base, where: { level: ["1"] } }, open);
    expect(read.records.map((r) => r.problem)).toEqual(["p1", "p6"]);
    expect(read.badRows).toEqual([]);
  });

  it("names the field and what narrowed the rows when none is left", async () => {
    const source = { name: "math", uri: "math.jsonl", where: { levle: ["1"] }, limit: 4 };
    const read = await loadDatasetSource(source, open);
    let error: unknown;
    try {
      requireRecords(read, source, "evaluation.benchmarks[0]");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect(String((error as InputError).message)).toMatch(
      /evaluation\.benchmarks\[0\]: math has no usable records in 6 rows after where \{"levle":\["1"\]\}, limit 4/,
    );
    expect(() => requireRecords(read, { name: "math", uri: "math.jsonl" }, "x")).toThrow(/check its format/);
    const kept = await loadDatasetSource({ name: "math", uri: "math.jsonl" }, open);
    expect(() => requireRecords(kept, source, "x")).not.toThrow();
  });

  it("reads the datasets that ship with questa by name, with their own format and mapping", async () => {
    const nowhere = async () => undefined; // never asked: a built-in dataset is part of the installation
    const counts: Record<string, number> = {};
    for (const builtin of DatasetRefSchema.shape.builtin.unwrap().options) {
      const source = datasetSourceOf(DatasetRefSchema.parse({ name: "b", builtin }));
      const read = await loadDatasetSource(source, nowhere);
      expect(read.badRows, builtin).toEqual([]);
      counts[builtin] = read.records.length;
    }
    expect(counts).toEqual({
      aime24: 30,
      aime25: 30,
      "hmmt-feb-2025": 30,
      "math-500": 500,
      "deepscaler-aime": 975,
    });
    // where, offset and limit apply as to a file
    const level5 = datasetSourceOf(
      DatasetRefSchema.parse({ name: "m", builtin: "math-500", where: { level: ["5"] }, limit: 3 }),
    );
    expect((await loadDatasetSource(level5, nowhere)).records).toHaveLength(3);
  });

  it("takes exactly one of uri, builtin and synthetic", () => {
    const problem = (ref: object) =>
      DatasetRefSchema.safeParse({ name: "d", ...ref }).error?.issues[0]?.message;
    expect(problem({ builtin: "aime24", uri: "s3://b/k" })).toBe(
      "set exactly one of uri, builtin and synthetic",
    );
    expect(problem({})).toBe("set exactly one of uri, builtin and synthetic");
    expect(problem({ builtin: "aime26" })).toMatch(/aime24/);
    expect(problem({ builtin: "aime24" })).toBeUndefined();
  });
});
