import { join } from "node:path";
import type { ObjectRef } from "../contracts/events.ts";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import { manifestRef } from "../learn/checkpoint-folders.ts";
import { readCheckpointManifest } from "../model/checkpoint.ts";
import { syntheticDifficulties } from "../questa/synthetic-task.ts";
import { FsObjectStore } from "../runtime/fs-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import type { EngineSettings } from "./onnx-adapters.ts";
import { type WarmStartProgress, warmStart } from "./warm-start.ts";

/** bump when warm-start training changes, so old cached policies are not reused */
const WARM_START_VERSION = 5;

/** Everything the warm-started policy depends on; equal keys give the same policy. */
export function warmStartCacheKey(spec: QuestATrainingSpec): string {
  return sha256Hex(
    JSON.stringify({
      version: WARM_START_VERSION,
      // the warm start trains on the built-in easy problems: a change of the task is a new policy
      easyTask: syntheticDifficulties.easy,
      seed: spec.seed,
      architecture: spec.model.architecture,
      warmStart: spec.model.warmStart,
      template: spec.augmentation.template,
      unhintedTemplate: spec.augmentation.unhintedTemplate,
      minPrefixChars: spec.augmentation.minPrefixChars,
    }),
  ).slice(0, 32);
}

async function copyFolder(
  from: ObjectStore,
  fromFolder: string,
  to: ObjectStore,
  toFolder: string,
): Promise<void> {
  const infos = await from.list(`${fromFolder}/`);
  // the manifest last: the copy becomes visible only when complete
  infos.sort((a, b) => Number(a.key.endsWith("/manifest.json")) - Number(b.key.endsWith("/manifest.json")));
  for (const info of infos) {
    const body = await from.get(info.key);
    if (body === undefined) throw new Error(`${info.key} vanished while copying`);
    await to.put(`${toFolder}/${info.key.slice(fromFolder.length + 1)}`, body);
  }
}

/**
 * The warm start, reused across runs with the same settings (the QuestA and baseline arms of a
 * seed, a rerun after deleting a run): the policy is cached under `<cacheDir>/warm-start/<key>/`.
 */
export async function cachedWarmStart(options: {
  spec: QuestATrainingSpec;
  store: ObjectStore;
  folder: string;
  engine: EngineSettings;
  signal?: AbortSignal;
  cacheDir?: string;
  onProgress?: (progress: WarmStartProgress, cached: boolean) => void;
}): Promise<ObjectRef> {
  const { spec, store, folder } = options;
  const cache =
    options.cacheDir === undefined ? undefined : new FsObjectStore(join(options.cacheDir, "warm-start"));
  const key = warmStartCacheKey(spec);
  if (cache && (await manifestRef(cache, key))) {
    await copyFolder(cache, key, store, folder);
    const { metadata } = await readCheckpointManifest(store, folder);
    // a warm start that stops at a skill accuracy trains fewer steps than its most
    const steps = Number(metadata.steps ?? spec.model.warmStart.steps);
    const skill =
      metadata.skillAccuracy === undefined ? {} : { skillAccuracy: Number(metadata.skillAccuracy) };
    options.onProgress?.(
      { step: steps, steps, loss: Number.NaN, tokenAccuracy: Number.NaN, ...skill, finished: true },
      true,
    );
    const ref = await manifestRef(store, folder);
    if (ref) return ref;
  }
  const ref = await warmStart({
    spec,
    store,
    folder,
    engine: options.engine,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (progress) => options.onProgress?.(progress, false),
  });
  if (cache) await copyFolder(store, folder, cache, key);
  return ref;
}
