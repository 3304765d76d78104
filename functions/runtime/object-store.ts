/**
 * The object store every function writes through: a filesystem directory locally, S3 in a cluster.
 * Keys are `/`-separated relative paths (no leading `/`, no `..` segments).
 */
export interface ObjectInfo {
  key: string;
  size: number;
  /** lowercase hex sha256 of the object's bytes */
  sha256: string;
}

export interface PutOptions {
  /** write only if no object exists at the key; returns `{ created: false }` instead of overwriting */
  ifAbsent?: boolean;
  contentType?: string;
}

export interface PutResult {
  created: boolean;
  info: ObjectInfo;
}

export interface ObjectStore {
  /** atomic: readers see the whole old object or the whole new one, never a partial write */
  put(key: string, body: Uint8Array | string, options?: PutOptions): Promise<PutResult>;
  /** the object's bytes, or `undefined` if it does not exist */
  get(key: string): Promise<Uint8Array | undefined>;
  /** size and sha256, or `undefined` if it does not exist */
  head(key: string): Promise<ObjectInfo | undefined>;
  /** keys starting with `prefix`, sorted ascending */
  list(prefix: string): Promise<ObjectInfo[]>;
  delete(key: string): Promise<void>;
  /** a URI naming the object for claim-check events (`file://...`, `s3://bucket/...`) */
  uri(key: string): string;
}
