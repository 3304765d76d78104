import { parquetReadObjects } from "hyparquet";
import { z } from "zod";
import { InputError, schemaInputError } from "../runtime/errors.ts";
import { describeJsonError } from "../runtime/json-text.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { type MathRecord, recordId } from "./record.ts";
import { solutionAfterThink } from "./solution-text.ts";

export const DatasetFileFormat = { jsonl: "jsonl", json: "json", parquet: "parquet" } as const;
export type DatasetFileFormat = (typeof DatasetFileFormat)[keyof typeof DatasetFileFormat];

/** Which field of a row holds what, and how to clean it. */
export const FieldMappingSchema = z.object({
  problem: z.string().min(1),
  answer: z.string().min(1),
  /** field holding a reference solution; absent = the dataset has none */
  solution: z.string().min(1).optional(),
  /**
   * the solution field is an R1 generation (`<think>…</think>` then the solution): keep the text
   * after the last `</think>`, and first drop one wrapping quote pair as the official add_prefix.py does
   */
  solutionIsGeneration: z.boolean().default(false),
  /** answers are integers (AIME): `"025"` and `25` both become `"25"` */
  integerAnswer: z.boolean().default(false),
});
export type FieldMapping = z.input<typeof FieldMappingSchema>;

/**
 * Named field mappings: the benchmark files in datasets/ and the QuestA/OpenR1 training format.
 * Names follow the spec's `datasets[].mapping` values.
 */
export const datasetMappings = {
  // QuestA's OpenR1-Math training files: `generation` holds the R1 trace and then the final solution
  openr1: { problem: "problem", answer: "answer", solution: "generation", solutionIsGeneration: true },
  questa: { problem: "problem", answer: "answer", solution: "generation", solutionIsGeneration: true },
  // AIME 2024 I+II: answers are zero-padded strings ("025")
  aime24: { problem: "problem", answer: "answer", solution: "solution", integerAnswer: true },
  // AIME 2025 I+II: answers are JSON numbers, no solutions
  aime25: { problem: "problem", answer: "answer", integerAnswer: true },
  // HMMT February 2025 (MathArena): LaTeX answers, no solutions
  "hmmt-feb-2025": { problem: "problem", answer: "answer" },
  "math-500": { problem: "problem", answer: "answer", solution: "solution" },
  // train-sample/aime.json: DeepScaleR's historical AIME problems with AoPS solutions, one JSON array
  "deepscaler-aime": { problem: "problem", answer: "answer", solution: "solution", integerAnswer: true },
} as const satisfies Record<string, FieldMapping>;
export type DatasetMappingName = keyof typeof datasetMappings;

/** `auto`: the first of these field names present in the first object row wins */
const AUTO_PROBLEM_FIELDS = ["problem", "question"] as const;
const AUTO_ANSWER_FIELDS = ["answer", "final_answer", "expected_answer"] as const;

/** A row that could not become a record: where it is and why. */
export interface BadRow {
  /** 1-based: the line of a JSONL file, the element of a JSON array, the row of a Parquet file */
  row: number;
  unit: "line" | "element" | "row";
  reason: string;
}

export interface DatasetReadResult {
  source: string;
  records: MathRecord[];
  badRows: BadRow[];
  /** rows seen, good and bad (blank JSONL lines are not rows) */
  totalRows: number;
}

export interface ParseDatasetOptions {
  /** dataset name recorded in every record and its id */
  source: string;
  /** a field mapping, a named one, or `auto` (detected from the first row's fields) */
  mapping: FieldMapping | DatasetMappingName | "auto";
  /** default: from the key's extension (`.jsonl`, `.json`, `.parquet`) */
  format?: DatasetFileFormat;
  /** object key or file name, used to pick the format and to name the file in errors */
  name?: string;
  /**
   * keep only rows whose field (by its name in the file) equals one of the listed values, compared
   * as text (`level: ["1", "2"]` keeps MATH's levels 1 and 2 whether the file holds 1 or "1")
   */
  where?: Readonly<Record<string, readonly string[]>>;
}

/** Reads a dataset object from the store and maps every row; bad rows are reported, never thrown. */
export async function readDataset(
  store: ObjectStore,
  key: string,
  options: Omit<ParseDatasetOptions, "name">,
): Promise<DatasetReadResult> {
  const bytes = await store.get(key);
  if (bytes === undefined) {
    throw new InputError("dataset_not_found", [
      {
        path: "dataset.key",
        message: `no object at ${JSON.stringify(key)} (${store.uri(key)})`,
        hint: "upload the dataset first or fix the key",
      },
    ]);
  }
  return parseDataset(bytes, { ...options, name: key });
}

export async function parseDataset(
  bytes: Uint8Array,
  options: ParseDatasetOptions,
): Promise<DatasetReadResult> {
  // Parquet files announce themselves ("PAR1"); trust the bytes over a default or a file name
  const format = startsWithParquetMagic(bytes) ? "parquet" : (options.format ?? formatFromName(options.name));
  const rows = await rowsOf(bytes, format, options.name ?? "(dataset)");
  const mapper = new RowMapper(options.source, options.mapping, rows.unit, options.where);
  // rows are mapped as they are parsed, so a file's long traces are never all held at once
  for (const row of rows.rows) {
    if ("reason" in row) mapper.reject(row.row, row.reason);
    else mapper.add(row.row, row.value);
  }
  return mapper.result();
}

function resolveMapping(mapping: ParseDatasetOptions["mapping"], firstObject: unknown): FieldMapping {
  if (typeof mapping !== "string") return mapping;
  if (mapping !== "auto") {
    const named: FieldMapping | undefined = datasetMappings[mapping];
    if (named === undefined) {
      throw new InputError("unknown_dataset_mapping", [
        {
          path: "dataset.mapping",
          message: `unknown mapping ${JSON.stringify(mapping)}`,
          hint: `one of ${[...Object.keys(datasetMappings), "auto"].join(", ")}`,
        },
      ]);
    }
    return named;
  }
  const fields = new Set(Object.keys((firstObject ?? {}) as object));
  const problem = AUTO_PROBLEM_FIELDS.find((name) => fields.has(name));
  const answer = AUTO_ANSWER_FIELDS.find((name) => fields.has(name));
  if (problem === undefined || answer === undefined) {
    throw new InputError("unknown_dataset_mapping", [
      {
        path: "dataset.mapping",
        message: `auto cannot find problem and answer fields among ${JSON.stringify([...fields])}`,
        hint: "name a mapping (openr1, aime24, math-500, …) or rename the fields to problem and answer",
      },
    ]);
  }
  if (fields.has("generation"))
    return { problem, answer, solution: "generation", solutionIsGeneration: true };
  if (fields.has("solution")) return { problem, answer, solution: "solution" };
  return { problem, answer };
}

function parseMapping(mapping: FieldMapping): z.output<typeof FieldMappingSchema> {
  const parsed = FieldMappingSchema.safeParse(mapping);
  if (parsed.success) return parsed.data;
  throw schemaInputError("invalid_field_mapping", parsed.error, { under: "mapping" });
}

function startsWithParquetMagic(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 8 && bytes[0] === 0x50 && bytes[1] === 0x41 && bytes[2] === 0x52 && bytes[3] === 0x31
  );
}

function formatFromName(name: string | undefined): DatasetFileFormat {
  const lower = (name ?? "").toLowerCase();
  if (lower.endsWith(".jsonl") || lower.endsWith(".ndjson")) return "jsonl";
  if (lower.endsWith(".json")) return "json";
  if (lower.endsWith(".parquet")) return "parquet";
  throw new InputError("unknown_dataset_format", [
    {
      path: "dataset.format",
      message: `cannot tell the format of ${JSON.stringify(name ?? "")} from its name`,
      hint: "name the file .jsonl, .json or .parquet, or set the format explicitly",
    },
  ]);
}

type RawRow = { row: number; value: unknown } | { row: number; reason: string };

interface RawRows {
  unit: BadRow["unit"];
  rows: Iterable<RawRow>;
}

async function rowsOf(bytes: Uint8Array, format: DatasetFileFormat, name: string): Promise<RawRows> {
  switch (format) {
    // a JSON array in either JSON format is read as an array, JSON Lines in either as lines
    case "jsonl":
    case "json":
      return firstTextByte(bytes) === 0x5b
        ? jsonArrayRows(bytes, name)
        : { unit: "line", rows: jsonlRows(bytes) };
    case "parquet":
      return parquetRows(bytes, name);
    default:
      return assertNever(format);
  }
}

/** the first byte that is not whitespace or a UTF-8 byte-order mark */
function firstTextByte(bytes: Uint8Array): number | undefined {
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    if (byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09) continue;
    if (i === 0 && byte === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      i += 2;
      continue;
    }
    return byte;
  }
  return undefined;
}

/** one line at a time from the bytes: no copy of the whole file as one string */
function* jsonlRows(bytes: Uint8Array): Generator<RawRow> {
  const decoder = new TextDecoder();
  let line = 0;
  for (let start = 0; start < bytes.length; ) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    line++;
    const text = decoder.decode(bytes.subarray(start, end));
    start = end + 1;
    if (text.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      yield { row: line, reason: describeJsonError(error) };
      continue;
    }
    yield { row: line, value };
  }
}

function jsonArrayRows(bytes: Uint8Array, name: string): RawRows {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new InputError("dataset_unreadable", [
      { path: "dataset.key", message: `${name} is not a JSON array: ${describeJsonError(error)}` },
    ]);
  }
  if (!Array.isArray(parsed)) {
    throw new InputError("dataset_unreadable", [
      { path: "dataset.key", message: `${name} is not a JSON array` },
    ]);
  }
  return { unit: "element", rows: parsed.map((value, index) => ({ row: index + 1, value })) };
}

async function parquetRows(bytes: Uint8Array, name: string): Promise<RawRows> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let objects: Record<string, unknown>[];
  try {
    objects = await parquetReadObjects({ file, rowFormat: "object" });
  } catch (error) {
    throw new InputError("dataset_unreadable", [
      { path: "dataset.key", message: `${name} is not a readable Parquet file: ${(error as Error).message}` },
    ]);
  }
  return { unit: "row", rows: objects.map((value, index) => ({ row: index + 1, value })) };
}

class RowMapper {
  readonly #records: MathRecord[] = [];
  readonly #badRows: BadRow[] = [];
  readonly #firstRowOfId = new Map<string, number>();
  #mapping: z.output<typeof FieldMappingSchema> | undefined;
  #totalRows = 0;

  constructor(
    private readonly source: string,
    private readonly requested: ParseDatasetOptions["mapping"],
    private readonly unit: BadRow["unit"],
    private readonly where: ParseDatasetOptions["where"],
  ) {
    // named and explicit mappings are checked before any row; `auto` waits for the first object row
    if (requested !== "auto") this.#mapping = parseMapping(resolveMapping(requested, undefined));
  }

  add(row: number, value: unknown): void {
    this.#totalRows++;
    if (this.where && !matchesWhere(value, this.where)) return; // filtered out: neither a record nor a bad row
    if (this.#mapping === undefined && typeof value === "object" && value !== null && !Array.isArray(value)) {
      this.#mapping = parseMapping(resolveMapping(this.requested, value));
    }
    const mapped =
      this.#mapping === undefined ? "row is not an object" : mapRow(value, this.#mapping, this.source);
    if (typeof mapped === "string") {
      this.#badRows.push({ row, unit: this.unit, reason: mapped });
      return;
    }
    const first = this.#firstRowOfId.get(mapped.id);
    if (first !== undefined) {
      this.#badRows.push({
        row,
        unit: this.unit,
        reason: `duplicate of ${this.unit} ${first} (same normalised problem)`,
      });
      return;
    }
    this.#firstRowOfId.set(mapped.id, row);
    this.#records.push(mapped);
  }

  reject(row: number, reason: string): void {
    this.#totalRows++;
    this.#badRows.push({ row, unit: this.unit, reason });
  }

  result(): DatasetReadResult {
    return {
      source: this.source,
      records: this.#records,
      badRows: this.#badRows,
      totalRows: this.#totalRows,
    };
  }
}

/** whether a row's fields each equal one of their listed values (as text; numbers as JSON writes them) */
export function matchesWhere(row: unknown, where: Readonly<Record<string, readonly string[]>>): boolean {
  if (typeof row !== "object" || row === null || Array.isArray(row)) return true; // a bad row either way
  const fields = row as Record<string, unknown>;
  return Object.entries(where).every(([field, values]) => {
    const value = fields[field];
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") return false;
    return values.includes(String(value));
  });
}

/** Maps one parsed row to a record, or returns why it cannot be one. */
export function mapRow(
  row: unknown,
  mapping: z.output<typeof FieldMappingSchema>,
  source: string,
): MathRecord | string {
  if (typeof row !== "object" || row === null || Array.isArray(row)) return "row is not an object";
  const fields = row as Record<string, unknown>;
  const problem = fields[mapping.problem];
  if (typeof problem !== "string")
    return `field ${mapping.problem} (problem) is ${describe(problem)}, not text`;
  if (problem.trim() === "") return `field ${mapping.problem} (problem) is empty`;
  const answer = answerText(fields[mapping.answer], mapping.integerAnswer);
  if (answer.error !== undefined) return `field ${mapping.answer} (answer) ${answer.error}`;
  const record: MathRecord = { id: recordId(source, problem), source, problem, answer: answer.text };
  if (mapping.solution !== undefined) {
    const solution = fields[mapping.solution];
    if (solution !== undefined && solution !== null) {
      if (typeof solution !== "string")
        return `field ${mapping.solution} (solution) is ${describe(solution)}, not text`;
      const text = mapping.solutionIsGeneration ? solutionOfGeneration(solution) : solution;
      if (text.trim() !== "") record.solution = text;
    }
  }
  return record;
}

/**
 * The official add_prefix.py: `if text[0] == '"': text = text[1:-1]`, then `text.split('</think>')[-1]`.
 * (Some generations were stored JSON-quoted twice.)
 */
export function solutionOfGeneration(generation: string): string {
  const unquoted = generation.startsWith('"') ? generation.slice(1, -1) : generation;
  const solution = solutionAfterThink(unquoted);
  // a slice keeps its whole parent alive in V8; copy it so the (long) trace can be collected.
  // UTF-16LE round-trips every code unit exactly, lone surrogates included.
  return solution.length === unquoted.length
    ? solution
    : Buffer.from(solution, "utf16le").toString("utf16le");
}

function answerText(
  value: unknown,
  integer: boolean,
): { text: string; error?: undefined } | { error: string } {
  let text: string;
  if (typeof value === "string") text = value.trim();
  else if (typeof value === "number") {
    if (!Number.isFinite(value)) return { error: `is ${value}` };
    text = String(value);
  } else if (typeof value === "bigint") text = value.toString();
  else return { error: `is ${describe(value)}, not text or a number` };
  if (text === "") return { error: "is empty" };
  if (!integer) return { text };
  if (!/^[+-]?\d+$/.test(text)) return { error: `${JSON.stringify(text)} is not an integer` };
  return { text: BigInt(text).toString() };
}

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`);
}
