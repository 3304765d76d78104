import type { DatasetRef } from "../contracts/questatraining.ts";
import { BUILTIN_DATASETS, isBuiltinDataset, readBuiltinDataset } from "../questa/builtin-datasets.ts";
import type { DatasetMappingName } from "../questa/dataset-readers.ts";
import { type DatasetReadResult, type FieldMapping, parseDataset } from "../questa/dataset-readers.ts";
import type { MathRecord } from "../questa/record.ts";
import { generateSyntheticProblems } from "../questa/synthetic-task.ts";
import { InputError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import type { DatasetSource } from "./schema.ts";

/** A spec's dataset reference as the readers take it (a built-in one brings its format and mapping). */
export function datasetSourceOf(ref: DatasetRef): DatasetSource {
  const builtin = ref.builtin === undefined ? undefined : BUILTIN_DATASETS[ref.builtin];
  return {
    name: ref.name,
    mapping: builtin && ref.mapping === "auto" ? builtin.mapping : ref.mapping,
    format: builtin ? builtin.format : ref.format,
    ...(ref.uri === undefined ? {} : { uri: ref.uri }),
    ...(ref.builtin === undefined ? {} : { builtin: ref.builtin }),
    ...(ref.synthetic === undefined ? {} : { synthetic: ref.synthetic }),
    ...(ref.where === undefined ? {} : { where: ref.where }),
    ...(ref.offset === undefined ? {} : { offset: ref.offset }),
    ...(ref.limit === undefined ? {} : { limit: ref.limit }),
  };
}

/** Bytes of a dataset file by its URI, or `undefined` when there is none. */
export type OpenDataset = (uri: string) => Promise<Uint8Array | undefined>;

/** The default opener: the URI is a key of the run's object store. */
export function storeDatasetOpener(store: ObjectStore): OpenDataset {
  return (uri) => store.get(uri);
}

/**
 * Reads a dataset file (keeping the rows `where` selects), or generates the synthetic task's
 * problems; `offset` and `limit` then slice the records.
 */
export async function loadDatasetSource(
  source: DatasetSource,
  open: OpenDataset,
): Promise<DatasetReadResult> {
  const read = await readDatasetSource(source, open);
  if (source.offset === undefined && source.limit === undefined) return read;
  const start = source.offset ?? 0;
  const records = read.records.slice(start, source.limit === undefined ? undefined : start + source.limit);
  return { ...read, records };
}

async function readDatasetSource(source: DatasetSource, open: OpenDataset): Promise<DatasetReadResult> {
  if (source.synthetic !== undefined) {
    const problems = generateSyntheticProblems({ ...source.synthetic, source: source.name });
    const records: MathRecord[] = problems.map(({ id, source: name, problem, answer, solution }) => ({
      id,
      source: name,
      problem,
      answer,
      solution,
    }));
    return { source: source.name, records, badRows: [], totalRows: records.length };
  }
  if (source.builtin !== undefined) {
    const { builtin } = source;
    if (!isBuiltinDataset(builtin)) {
      throw new InputError("dataset_unknown_builtin", [
        {
          path: `datasets.${source.name}.builtin`,
          message: `no dataset ships as ${JSON.stringify(builtin)}`,
          hint: `one of ${Object.keys(BUILTIN_DATASETS).join(", ")}`,
        },
      ]);
    }
    return parseDataset(await readBuiltinDataset(builtin), {
      source: source.name,
      mapping: (source.mapping ?? "auto") as FieldMapping | DatasetMappingName | "auto",
      name: `builtin:${builtin}`,
      format: BUILTIN_DATASETS[builtin].format,
      ...(source.where === undefined ? {} : { where: source.where }),
    });
  }
  if (source.uri === undefined) {
    throw new InputError("dataset_without_location", [
      {
        path: `datasets.${source.name}.uri`,
        message: "a dataset needs a uri, a builtin name or synthetic settings",
      },
    ]);
  }
  const bytes = await open(source.uri);
  if (bytes === undefined) {
    throw new InputError("dataset_not_found", [
      {
        path: `datasets.${source.name}.uri`,
        message: `nothing at ${JSON.stringify(source.uri)}`,
        hint: "upload the file or fix the uri",
      },
    ]);
  }
  return parseDataset(bytes, {
    source: source.name,
    mapping: (source.mapping ?? "auto") as FieldMapping | DatasetMappingName | "auto",
    name: source.uri,
    ...(source.format === undefined ? {} : { format: source.format }),
    ...(source.where === undefined ? {} : { where: source.where }),
  });
}

/**
 * A read that kept no record is the spec's mistake, not the file's alone: the error names the
 * dataset's field (`path`) and, when `where`, `offset` or `limit` narrowed it, says so.
 */
export function requireRecords(read: DatasetReadResult, source: DatasetSource, path: string): void {
  if (read.records.length > 0) return;
  const examples = read.badRows.slice(0, 3).map((bad) => `${bad.unit} ${bad.row}: ${bad.reason}`);
  const narrowed = [
    source.where === undefined ? undefined : `where ${JSON.stringify(source.where)}`,
    source.offset === undefined ? undefined : `offset ${source.offset}`,
    source.limit === undefined ? undefined : `limit ${source.limit}`,
  ].filter((part) => part !== undefined);
  throw new InputError("dataset_unusable", [
    {
      path,
      message: `${source.name} has no usable records in ${read.totalRows} rows${examples.length > 0 ? ` (${examples.join("; ")})` : ""}${narrowed.length > 0 ? ` after ${narrowed.join(", ")}` : ""}`,
      hint:
        narrowed.length > 0
          ? "check the field names and values of where (compared as text) and that offset is below the rows it keeps"
          : "check its format and mapping",
    },
  ]);
}
