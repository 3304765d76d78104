import { readFile } from "node:fs/promises";
import type { BuiltinDatasetName } from "../contracts/questatraining.ts";
import type { DatasetMappingName } from "./dataset-readers.ts";

/**
 * The datasets that ship with questa, in the repository's and the image's `datasets/` folder (each
 * with its SOURCE.md: origin, sha256, licence): a resource names one with `builtin:` instead of a
 * URI, and its format and field mapping come from here.
 */
export const BUILTIN_DATASETS: Readonly<
  Record<BuiltinDatasetName, { path: string; format: "jsonl" | "json"; mapping: DatasetMappingName }>
> = {
  aime24: { path: "aime24/test.jsonl", format: "jsonl", mapping: "aime24" },
  aime25: { path: "aime25/test.jsonl", format: "jsonl", mapping: "aime25" },
  "hmmt-feb-2025": { path: "hmmt_feb_2025/test.jsonl", format: "jsonl", mapping: "hmmt-feb-2025" },
  "math-500": { path: "math500/test.jsonl", format: "jsonl", mapping: "math-500" },
  "deepscaler-aime": { path: "train-sample/aime.json", format: "json", mapping: "deepscaler-aime" },
};

const DATASETS_DIR = new URL("../../datasets/", import.meta.url);

export function isBuiltinDataset(name: string): name is BuiltinDatasetName {
  return Object.hasOwn(BUILTIN_DATASETS, name);
}

/** the shipped file's bytes (part of the installation, so also readable in a pod) */
export async function readBuiltinDataset(name: BuiltinDatasetName): Promise<Uint8Array> {
  return new Uint8Array(await readFile(new URL(BUILTIN_DATASETS[name].path, DATASETS_DIR)));
}
