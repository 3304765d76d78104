/**
 * The augmented set of one curriculum stage in the object store:
 *
 *     <runPrefix>/augmented/stage-<i>/questions-00000.jsonl   one AugmentedLine per line
 *     <runPrefix>/augmented/stage-<i>/rejections.jsonl        every row that did not become a question
 *     <runPrefix>/augmented/stage-<i>/manifest.json           sha256 of each, counts, parameters, report
 *
 * Keys and bytes are deterministic (no timestamps, inputs in order), and the manifest is written
 * last: a stage is visible once its manifest exists, and rewriting after a crash gives the same bytes.
 */
import { DeadLetterError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { parseStoredJson } from "../runtime/stored-json.ts";
import {
  type AugmentedLine,
  AugmentedLineSchema,
  type AugmentManifest,
  AugmentManifestSchema,
  type Rejection,
} from "./schema.ts";

export function stagePrefix(runPrefix: string, stage: number): string {
  return `${runPrefix}/augmented/stage-${stage}`;
}

export function manifestKey(runPrefix: string, stage: number): string {
  return `${stagePrefix(runPrefix, stage)}/manifest.json`;
}

export interface StageShardInput {
  runPrefix: string;
  stage: number;
  questions: readonly AugmentedLine[];
  rejections: readonly Rejection[];
  /** questions per shard object */
  shardSize: number;
  manifest: Omit<AugmentManifest, "version" | "stage" | "shards" | "rejections">;
}

/** Writes the shards, the rejections and then the manifest; returns the manifest and its key. */
export async function writeStageShards(
  store: ObjectStore,
  input: StageShardInput,
): Promise<{ manifest: AugmentManifest; key: string; sha256: string; size: number }> {
  const prefix = stagePrefix(input.runPrefix, input.stage);
  const shards: AugmentManifest["shards"] = [];
  for (
    let start = 0, index = 0;
    start < input.questions.length || index === 0;
    start += input.shardSize, index++
  ) {
    const slice = input.questions.slice(start, start + input.shardSize);
    const key = `${prefix}/questions-${String(index).padStart(5, "0")}.jsonl`;
    const { info } = await store.put(key, jsonLines(slice), { contentType: "application/x-ndjson" });
    shards.push({ key, sha256: info.sha256, size: info.size, count: slice.length });
  }
  const rejectionsKey = `${prefix}/rejections.jsonl`;
  const rejections = await store.put(rejectionsKey, jsonLines(input.rejections), {
    contentType: "application/x-ndjson",
  });
  const manifest: AugmentManifest = {
    version: 1,
    stage: input.stage,
    ...input.manifest,
    shards,
    rejections: {
      key: rejectionsKey,
      sha256: rejections.info.sha256,
      size: rejections.info.size,
      count: input.rejections.length,
    },
  };
  const key = manifestKey(input.runPrefix, input.stage);
  const put = await store.put(key, `${JSON.stringify(manifest, null, 2)}\n`, {
    contentType: "application/json",
  });
  return { manifest, key, sha256: put.info.sha256, size: put.info.size };
}

/** The stage's manifest, or `undefined` when the stage has not been written. */
export async function readStageManifest(
  store: ObjectStore,
  runPrefix: string,
  stage: number,
): Promise<{ manifest: AugmentManifest; sha256: string } | undefined> {
  const key = manifestKey(runPrefix, stage);
  const bytes = await store.get(key);
  if (bytes === undefined) return undefined;
  const manifest = parseStoredJson(bytes, key, AugmentManifestSchema, "corrupt_augment_manifest", notJson);
  const info = await store.head(key);
  return { manifest, sha256: info?.sha256 ?? "" };
}

/** Every question of a written stage, checked against the manifest's sha256 sums. */
export async function readStageQuestions(
  store: ObjectStore,
  manifest: AugmentManifest,
): Promise<AugmentedLine[]> {
  const questions: AugmentedLine[] = [];
  for (const shard of manifest.shards) {
    const bytes = await store.get(shard.key);
    const info = await store.head(shard.key);
    if (bytes === undefined || info === undefined || info.sha256 !== shard.sha256) {
      throw new DeadLetterError(
        "augment_shard_mismatch",
        `${shard.key} is missing or does not match its manifest`,
      );
    }
    const text = new TextDecoder().decode(bytes);
    for (const line of text.split("\n")) {
      if (line === "") continue;
      questions.push(parseStoredJson(line, shard.key, AugmentedLineSchema, "corrupt_augment_shard", notJson));
    }
  }
  return questions;
}

function jsonLines(rows: readonly unknown[]): string {
  let out = "";
  for (const row of rows) out += `${JSON.stringify(row)}\n`;
  return out;
}

/** the code of an augment object that is not JSON at all */
const notJson = "corrupt_augment_object";
