import type { DatasetMappingName } from "../questa/dataset-readers.ts";
import { type DatasetReadResult, type FieldMapping, parseDataset } from "../questa/dataset-readers.ts";
import type { MathRecord } from "../questa/record.ts";
import { generateSyntheticProblems } from "../questa/synthetic-task.ts";
import { InputError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import type { DatasetSource } from "./schema.ts";

/** Bytes of a dataset file by its URI, or `undefined` when there is none. */
export type OpenDataset = (uri: string) => Promise<Uint8Array | undefined>;

/** The default opener: the URI is a key of the run's object store. */
export function storeDatasetOpener(store: ObjectStore): OpenDataset {
  return (uri) => store.get(uri);
}

/** Reads a dataset file, or generates the synthetic task's problems. */
export async function loadDatasetSource(
  source: DatasetSource,
  open: OpenDataset,
): Promise<DatasetReadResult> {
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
  if (source.uri === undefined) {
    throw new InputError("dataset_without_location", [
      { path: `datasets.${source.name}.uri`, message: "a dataset needs a uri or synthetic settings" },
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
  });
}
