import type { ObjectRef } from "../contracts/events.ts";
import type { ObjectStore } from "../runtime/object-store.ts";

/** The claim check of a checkpoint folder's manifest, or `undefined` when the folder has none. */
export async function manifestRef(store: ObjectStore, folder: string): Promise<ObjectRef | undefined> {
  const info = await store.head(`${folder}/manifest.json`);
  return info ? { uri: store.uri(info.key), key: info.key, sha256: info.sha256, size: info.size } : undefined;
}

/**
 * Removes a checkpoint folder, manifest first: a checkpoint without its manifest is never loaded,
 * so no reader sees half of one.
 */
export async function removeCheckpointFolder(store: ObjectStore, folder: string): Promise<void> {
  const infos = await store.list(`${folder}/`);
  infos.sort((a, b) => Number(b.key.endsWith("manifest.json")) - Number(a.key.endsWith("manifest.json")));
  for (const info of infos) await store.delete(info.key);
}
