import { parquetWriteBuffer } from "hyparquet-writer";
import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import { parseDataset, readDataset, solutionOfGeneration } from "./dataset-readers.ts";
import { MathRecordSchema, recordId } from "./record.ts";

const encode = (text: string) => new TextEncoder().encode(text);

describe("dataset readers", () => {
  it("reads JSONL with a named mapping and reports bad rows by line", async () => {
    const store = new MemoryObjectStore();
    const lines = [
      JSON.stringify({ problem: "What is 2+3?", answer: "005", solution: "2+3=5, so \\boxed{5}" }),
      "",
      "{not json",
      JSON.stringify({ problem: "", answer: "1" }),
      JSON.stringify({ problem: "Missing answer" }),
      JSON.stringify({ problem: "Not an integer", answer: "1/2" }),
      JSON.stringify({ problem: "What  is 2+3? ", answer: 5 }),
      JSON.stringify({ problem: "What is 7?", answer: 7 }),
      "[1,2]",
    ];
    await store.put("data/train.jsonl", `${lines.join("\r\n")}\n`);
    const result = await readDataset(store, "data/train.jsonl", { source: "aime24", mapping: "aime24" });
    expect(result.totalRows).toBe(8);
    expect(result.records.map((r) => [r.problem, r.answer])).toEqual([
      ["What is 2+3?", "5"],
      ["What is 7?", "7"],
    ]);
    expect(result.records[0]?.solution).toBe("2+3=5, so \\boxed{5}");
    expect(result.badRows.map((b) => [b.row, b.unit])).toEqual([
      [3, "line"],
      [4, "line"],
      [5, "line"],
      [6, "line"],
      [7, "line"],
      [9, "line"],
    ]);
    expect(result.badRows[0]?.reason).toMatch(/^not JSON/);
    expect(result.badRows[1]?.reason).toBe("field problem (problem) is empty");
    expect(result.badRows[2]?.reason).toBe("field answer (answer) is missing, not text or a number");
    expect(result.badRows[3]?.reason).toBe('field answer (answer) "1/2" is not an integer');
    // whitespace differences do not make a new problem
    expect(result.badRows[4]?.reason).toBe("duplicate of line 1 (same normalised problem)");
    expect(result.badRows[5]?.reason).toBe("row is not an object");
    for (const rec of result.records) expect(MathRecordSchema.parse(rec)).toEqual(rec);
  });

  it("never quotes a file's bytes when it is not JSON (it may be a mounted secret)", async () => {
    const store = new MemoryObjectStore();
    const secret = "AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    await store.put("creds.jsonl", `${secret}\n`);
    await store.put("creds.json", `[${secret}]`);
    const lines = await readDataset(store, "creds.jsonl", { source: "x", mapping: "auto" }).catch(
      (error: unknown) => error,
    );
    const array = await readDataset(store, "creds.json", {
      source: "x",
      mapping: "auto",
      format: "json",
    }).catch((error: unknown) => error);
    for (const outcome of [lines, array]) {
      const text = JSON.stringify(outcome, Object.getOwnPropertyNames(outcome ?? {})) + String(outcome);
      expect(text).not.toContain("AKIA");
      expect(text).not.toContain("EXAMPLEKEY");
    }
    expect(String(array)).toMatch(/creds.json is not a JSON array: not JSON( \(at character \d+\))?$/);
    expect((lines as { badRows: { reason: string }[] }).badRows.map((b) => b.reason)).toEqual([
      expect.stringMatching(/^not JSON( \(at character \d+\))?$/),
    ]);
  });

  it("gives stable ids from source and normalised problem", () => {
    expect(recordId("aime24", "Find  x.\n")).toBe(recordId("aime24", "Find x."));
    expect(recordId("aime24", "Find x.")).not.toBe(recordId("aime25", "Find x."));
    expect(recordId("aime24", "Find x.")).toMatch(/^aime24-[0-9a-f]{20}$/);
  });

  it("reads OpenR1 generations: text after the last </think>, official quote stripping", async () => {
    const rows = [
      { problem: "P1", answer: "3", generation: "<think>a</think>b</think>\nSo \\boxed{3}" },
      { problem: "P2", answer: "4", generation: '"<think>x</think>Thus \\boxed{4}"' },
      { problem: "P3", answer: "5" },
    ];
    const result = await parseDataset(encode(rows.map((r) => JSON.stringify(r)).join("\n")), {
      source: "openr1",
      mapping: "openr1",
      format: "jsonl",
    });
    expect(result.records.map((r) => r.solution)).toEqual(["\nSo \\boxed{3}", "Thus \\boxed{4}", undefined]);
    expect(solutionOfGeneration('"quoted"')).toBe("quoted");
  });

  it("reads a JSON array, reporting bad elements", async () => {
    const body = JSON.stringify([
      { problem: "A", answer: "1", solution: "s" },
      { problem: 3, answer: "2" },
    ]);
    const result = await parseDataset(encode(body), {
      source: "x",
      mapping: "deepscaler-aime",
      name: "aime.json",
    });
    expect(result.records).toHaveLength(1);
    expect(result.badRows).toEqual([
      { row: 2, unit: "element", reason: "field problem (problem) is a number, not text" },
    ]);
  });

  it("reads a .json file that is really JSON Lines", async () => {
    const result = await parseDataset(
      encode('{"problem":"A","answer":"1"}\n{"problem":"B","answer":"2"}\n'),
      {
        source: "x",
        mapping: "auto",
        name: "d.json",
      },
    );
    expect(result.records.map((r) => r.problem)).toEqual(["A", "B"]);
  });

  it("reads Parquet, with bigint answers", async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: "question", data: ["Q1", "Q2", ""], type: "STRING" },
        { name: "final_answer", data: [10n, 20n, 30n], type: "INT64" },
      ],
    });
    const store = new MemoryObjectStore();
    await store.put("d/x.parquet", new Uint8Array(buffer));
    const result = await readDataset(store, "d/x.parquet", { source: "pq", mapping: "auto" });
    expect(result.records.map((r) => [r.problem, r.answer])).toEqual([
      ["Q1", "10"],
      ["Q2", "20"],
    ]);
    expect(result.badRows).toEqual([{ row: 3, unit: "row", reason: "field question (problem) is empty" }]);
  });

  it("auto-detects OpenR1 generations", async () => {
    const result = await parseDataset(
      encode(JSON.stringify({ problem: "P", answer: "1", generation: "<think>t</think>ok 1" })),
      {
        source: "s",
        mapping: "auto",
        format: "jsonl",
      },
    );
    expect(result.records[0]?.solution).toBe("ok 1");
  });

  it("throws input errors for a missing object, an unknown format or a broken file", async () => {
    const store = new MemoryObjectStore();
    await expect(readDataset(store, "nope.jsonl", { source: "s", mapping: "auto" })).rejects.toBeInstanceOf(
      InputError,
    );
    await expect(parseDataset(encode("{}"), { source: "s", mapping: "auto", name: "x.csv" })).rejects.toThrow(
      /dataset.format/,
    );
    await expect(
      parseDataset(encode("[{"), { source: "s", mapping: "auto", name: "x.json" }),
    ).rejects.toThrow(/not a JSON array/);
    await expect(
      parseDataset(encode("PAR1garbage"), { source: "s", mapping: "auto", format: "parquet" }),
    ).rejects.toBeInstanceOf(InputError);
    await expect(
      parseDataset(encode('{"text":"x"}'), { source: "s", mapping: "auto", format: "jsonl" }),
    ).rejects.toThrow(/auto cannot find problem and answer/);
  });
});

describe("format detection", () => {
  it("reads a Parquet file declared as JSON Lines by its magic bytes", async () => {
    const buffer = parquetWriteBuffer({
      columnData: [
        { name: "problem", data: ["P"], type: "STRING" },
        { name: "answer", data: ["1"], type: "STRING" },
      ],
    });
    const result = await parseDataset(new Uint8Array(buffer), {
      source: "s",
      mapping: "auto",
      format: "jsonl",
    });
    expect(result.records.map((r) => r.problem)).toEqual(["P"]);
  });

  it("reads a JSON array declared as JSON Lines", async () => {
    const result = await parseDataset(encode('[\n  {"problem": "A", "answer": "1"}\n]'), {
      source: "s",
      mapping: "auto",
      format: "jsonl",
    });
    expect(result.records.map((r) => r.problem)).toEqual(["A"]);
  });
});
