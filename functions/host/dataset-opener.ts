import { readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { OpenDataset } from "../augment/dataset-source.ts";
import { InputError } from "../runtime/errors.ts";
import { S3ObjectStore, type S3StoreConfig } from "../runtime/s3-object-store.ts";

/** What a function may open besides its own store: object-store URIs only (a pod), or local files too. */
export interface DatasetOpenerOptions {
  /** false in a cluster: a local path would read the pod's own files (mounted secrets) */
  localFiles: boolean;
}

/**
 * `s3://bucket/key` through an S3 store on that bucket (hand-uploaded files carry no sha256); else a
 * local file when `localFiles`. Sizes are checked before bytes are read (the store's maxObjectBytes).
 */
export function datasetOpener(
  base: S3StoreConfig,
  options: DatasetOpenerOptions = { localFiles: true },
): OpenDataset {
  const buckets = new Map<string, S3ObjectStore>();
  return async (uri) => {
    const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (s3) {
      const [, bucket, key] = s3 as unknown as [string, string, string];
      let store = buckets.get(bucket);
      if (store === undefined) {
        store = new S3ObjectStore({ ...base, bucket, prefix: "", verify: "if-present" });
        buckets.set(bucket, store);
      }
      return store.get(key);
    }
    if (!options.localFiles) {
      throw new InputError("local_path_refused", [
        {
          path: "uri",
          message: `${JSON.stringify(uri)} is not an object-store URI; functions in a cluster read datasets and models from the object store only`,
          hint: "upload the file and give s3://BUCKET/KEY",
        },
      ]);
    }
    const path = uri.startsWith("file://") ? fileURLToPath(uri) : uri;
    try {
      const size = (await stat(path)).size;
      if (size > base.maxObjectBytes) {
        throw new InputError("file_too_large", [
          {
            path: "uri",
            message: `${path} is ${size} bytes, over the limit of ${base.maxObjectBytes}`,
            hint: "split the dataset, or raise QUESTA_S3_MAX_OBJECT_BYTES",
          },
        ]);
      }
      return new Uint8Array(await readFile(path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  };
}
