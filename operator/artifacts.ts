import type { ObjectStore } from "../functions/runtime/object-store.ts";

/** Deletes a run's objects: everything under the run's recorded key prefix, nothing else. */
export interface ArtifactStore {
  /** deletes every object whose key starts with `root` (a prefix ending in /); returns how many */
  deleteUnder(root: string, signal: AbortSignal): Promise<number>;
}

/** Where a run's objects are, as recorded in `status.owned.objectStores`, with the spec's client settings. */
export interface ArtifactLocation {
  endpoint?: string | undefined;
  bucket: string;
  region: string;
  forcePathStyle: boolean;
}

/** The operator may delete there (admin allow-list), or says why not. */
export type ArtifactAccess = { store: ArtifactStore } | { refused: string };

/** An ArtifactStore over one of our ObjectStores whose keys are bucket keys (no store prefix). */
export function objectStoreArtifacts(store: ObjectStore): ArtifactStore {
  return {
    async deleteUnder(root, signal) {
      let deleted = 0;
      for (const object of await store.list(root)) {
        signal.throwIfAborted();
        await store.delete(object.key);
        deleted++;
      }
      return deleted;
    },
  };
}
