import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { z } from "zod";
import { DeadLetterError, InputError, RetryableError, schemaInputError, UnavailableError } from "./errors.ts";
import { assertObjectKey } from "./object-key.ts";
import type { ObjectInfo, ObjectStore, PutOptions, PutResult } from "./object-store.ts";
import { sha256Hex } from "./sha256.ts";

/**
 * The S3 implementation of `ObjectStore` (the only module that imports @aws-sdk/*). Works with AWS
 * and with S3-compatible servers such as MinIO (path-style addressing at a custom endpoint).
 *
 * Integrity: every object carries the sha256 of its bytes as user metadata (`x-amz-meta-sha256`),
 * written by `put` and checked by `get`; bytes that do not match are refused with a
 * `DeadLetterError` (code `object_integrity`). Large bodies go up as multipart uploads.
 */

const mib = 1024 * 1024;
const sha256MetadataKey = "sha256";

export const S3StoreConfigSchema = z.object({
  bucket: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "must be an S3 bucket name (3-63 of a-z, 0-9, '.', '-')"),
  /** prepended to every key, e.g. `runs/`; empty = the bucket's root */
  prefix: z
    .string()
    .regex(/^([^/].*\/)?$/, "must be empty or a relative path ending in /")
    .default(""),
  /** e.g. `http://minio.questa.svc:9000`; omitted = AWS */
  endpoint: z.url().optional(),
  region: z.string().min(1).default("us-east-1"),
  /** bucket in the path instead of the host name; default: true when `endpoint` is set (MinIO) */
  forcePathStyle: z.boolean().optional(),
  /**
   * omitted = the SDK's chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, ...);
   * `secretDir` = a mounted secret with files AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
   * optionally AWS_SESSION_TOKEN, re-read every few minutes so rotation needs no restart
   */
  credentials: z
    .union([
      z.object({
        accessKeyId: z.string().min(1),
        secretAccessKey: z.string().min(1),
        sessionToken: z.string().min(1).optional(),
      }),
      z.object({ secretDir: z.string().min(1) }),
    ])
    .optional(),
  /** bodies larger than this go up in parts of this size (S3's minimum part is 5 MiB) */
  partSizeBytes: z
    .number()
    .int()
    .min(5 * mib)
    .default(16 * mib),
  /** parts uploaded in parallel */
  uploadConcurrency: z.number().int().positive().default(4),
  /** attempts per request, with exponential backoff and jitter between them */
  maxAttempts: z.number().int().positive().default(5),
  /**
   * "required": an object without sha256 metadata is refused (everything we wrote has it);
   * "if-present": such objects (e.g. a dataset uploaded by hand) are read unchecked
   */
  verify: z.enum(["required", "if-present"]).default("required"),
  /** PEM file of the CA that signed an https endpoint's certificate (a private CA); omitted = system CAs */
  caFile: z.string().min(1).optional(),
  /** longest wait for a connection to the endpoint */
  connectionTimeoutMs: z.number().int().positive().default(10_000),
  /** longest wait for a response's headers, and longest silence while its body streams */
  requestTimeoutMs: z.number().int().positive().default(120_000),
  /** larger objects are refused before their bytes are read (a Node buffer holds at most 4 GiB) */
  maxObjectBytes: z
    .number()
    .int()
    .positive()
    .default(4 * 1024 * mib),
});
export type S3StoreConfig = z.infer<typeof S3StoreConfigSchema>;
export type S3StoreConfigInput = z.input<typeof S3StoreConfigSchema>;

export function parseS3StoreConfig(input: unknown): S3StoreConfig {
  const parsed = S3StoreConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw schemaInputError("invalid_s3_config", parsed.error);
}

/**
 * Reads the store config from `QUESTA_S3_*` variables (what the operator sets on pods): BUCKET,
 * PREFIX, ENDPOINT, REGION, FORCE_PATH_STYLE ("true"/"false"), SECRET_DIR, CA_FILE (a private CA's
 * PEM), MAX_OBJECT_BYTES. Without SECRET_DIR the
 * credentials come from the SDK's own chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...).
 */
export function s3StoreConfigFromEnv(env: Record<string, string | undefined>): S3StoreConfig {
  const get = (name: string) => {
    const value = env[`QUESTA_S3_${name}`]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const pathStyle = get("FORCE_PATH_STYLE");
  const secretDir = get("SECRET_DIR");
  const maxObjectBytes = get("MAX_OBJECT_BYTES");
  const raw: Record<string, unknown> = {
    bucket: get("BUCKET"),
    prefix: get("PREFIX"),
    endpoint: get("ENDPOINT"),
    region: get("REGION"),
    forcePathStyle: pathStyle === undefined ? undefined : pathStyle === "true",
    credentials: secretDir === undefined ? undefined : { secretDir },
    caFile: get("CA_FILE"),
    maxObjectBytes: maxObjectBytes === undefined ? undefined : Number(maxObjectBytes),
  };
  return parseS3StoreConfig(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
}

/** a credentials provider reading a mounted secret directory (re-read after `refreshMs`) */
export function secretDirCredentials(
  dir: string,
  options: { readFile?: (path: string) => string; clock?: () => number; refreshMs?: number } = {},
) {
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, "utf8"));
  const clock = options.clock ?? Date.now;
  const refreshMs = options.refreshMs ?? 5 * 60_000;
  const read = (name: string, required: boolean): string | undefined => {
    try {
      return readFile(join(dir, name)).trim();
    } catch (error) {
      if (!required) return undefined;
      throw new InputError("invalid_s3_credentials", [
        {
          path: `credentials.secretDir`,
          message: `cannot read ${join(dir, name)}: ${error instanceof Error ? error.message : String(error)}`,
          hint: "mount a secret with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY there",
        },
      ]);
    }
  };
  return async () => {
    const sessionToken = read("AWS_SESSION_TOKEN", false);
    return {
      accessKeyId: read("AWS_ACCESS_KEY_ID", true) ?? "",
      secretAccessKey: read("AWS_SECRET_ACCESS_KEY", true) ?? "",
      ...(sessionToken ? { sessionToken } : {}),
      // the SDK asks again shortly before this, which picks up a rotated secret
      expiration: new Date(clock() + refreshMs),
    };
  };
}

// ---------------------------------------------------------------------------------------------
// errors

const transientNames = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "InternalError",
  "ServiceUnavailable",
  "XMinioServerNotInitialized",
  "XMinioStorageFull",
  "TimeoutError",
  "AbortError",
]);
const transientCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

function httpStatus(error: unknown): number | undefined {
  const metadata = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata;
  return typeof metadata?.httpStatusCode === "number" ? metadata.httpStatusCode : undefined;
}

/**
 * Says what the caller should do with an S3 SDK error (after the SDK's own retries): network
 * failures, throttling and 5xx become `UnavailableError`; anything else (access denied, missing
 * bucket, bugs) is returned unchanged.
 */
export function classifyS3Error(error: unknown, operation: string): unknown {
  if (!(error instanceof Error)) return error;
  if (error instanceof RetryableError || error instanceof DeadLetterError || error instanceof InputError)
    return error;
  const status = httpStatus(error);
  const code = (error as { code?: unknown }).code;
  const transient =
    transientNames.has(error.name) ||
    (typeof code === "string" && transientCodes.has(code)) ||
    (status !== undefined && (status >= 500 || status === 429 || status === 408));
  if (!transient) return error;
  return new UnavailableError("s3_unavailable", `s3 ${operation}: ${error.name}: ${error.message}`, {
    cause: error,
  });
}

function isNotFound(error: unknown): boolean {
  return (
    error instanceof Error &&
    (error.name === "NoSuchKey" || error.name === "NotFound" || httpStatus(error) === 404)
  );
}

function isPreconditionFailed(error: unknown): boolean {
  return error instanceof Error && (error.name === "PreconditionFailed" || httpStatus(error) === 412);
}

// ---------------------------------------------------------------------------------------------
// store

export interface S3ObjectStoreOptions {
  /** an SDK client to reuse (tests, custom middleware); built from the config otherwise */
  client?: S3Client;
}

export class S3ObjectStore implements ObjectStore {
  /** the underlying SDK client, for operations the interface does not cover */
  readonly client: S3Client;
  readonly config: S3StoreConfig;

  constructor(config: S3StoreConfigInput | S3StoreConfig, options: S3ObjectStoreOptions = {}) {
    this.config = parseS3StoreConfig(config);
    this.client = options.client ?? new S3Client(s3ClientConfig(this.config));
  }

  #key(key: string): string {
    return this.config.prefix + assertObjectKey(key);
  }

  #where(key: string): string {
    return `s3://${this.config.bucket}/${this.config.prefix}${key}`;
  }

  uri(key: string): string {
    return this.#where(assertObjectKey(key));
  }

  /** creates the bucket if it does not exist (the operator and tests call this once) */
  async ensureBucket(): Promise<void> {
    const Bucket = this.config.bucket;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }));
      return;
    } catch (error) {
      if (!isNotFound(error)) throw classifyS3Error(error, `head bucket ${Bucket}`);
    }
    try {
      await this.client.send(new CreateBucketCommand({ Bucket }));
    } catch (error) {
      // a concurrent creator won: the bucket exists, which is all we need
      if (error instanceof Error && error.name === "BucketAlreadyOwnedByYou") return;
      throw classifyS3Error(error, `create bucket ${Bucket}`);
    }
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    const Key = this.#key(key);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const info: ObjectInfo = { key, size: bytes.byteLength, sha256: sha256Hex(bytes) };
    const params = {
      Bucket: this.config.bucket,
      Key,
      Metadata: { [sha256MetadataKey]: info.sha256 },
      ContentLength: bytes.byteLength,
      ...(options.contentType ? { ContentType: options.contentType } : {}),
      // S3 conditional write: the server refuses (412) when the key exists, so two writers of
      // a manifest cannot both win
      ...(options.ifAbsent ? { IfNoneMatch: "*" } : {}),
    };
    try {
      if (bytes.byteLength <= this.config.partSizeBytes) {
        await this.client.send(new PutObjectCommand({ ...params, Body: bytes }));
      } else {
        // skip the upload when it would be refused anyway
        if (options.ifAbsent) {
          const existing = await this.head(key);
          if (existing) return { created: false, info: existing };
        }
        const upload = new Upload({
          client: this.client,
          params: { ...params, Body: bytes },
          partSize: this.config.partSizeBytes,
          queueSize: this.config.uploadConcurrency,
          leavePartsOnError: false,
        });
        await upload.done();
      }
    } catch (error) {
      if (options.ifAbsent && isPreconditionFailed(error)) {
        const existing = await this.head(key);
        if (existing) return { created: false, info: existing };
        // the winner was deleted in between; a retry writes ours
        throw new RetryableError("s3_conflict", `${this.#where(key)} changed during a conditional put`, {
          cause: error,
        });
      }
      throw classifyS3Error(error, `put ${this.#where(key)}`);
    }
    return { created: true, info };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const Key = this.#key(key);
    let bytes: Uint8Array;
    let metadata: Record<string, string> | undefined;
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key }));
      if (!response.Body) throw new Error(`${this.#where(key)}: S3 returned no body`);
      const cap = this.config.maxObjectBytes;
      // the size is checked before the bytes are read: an oversized object never fills the heap
      if (response.ContentLength !== undefined && response.ContentLength > cap) {
        (response.Body as { destroy?: () => void }).destroy?.();
        throw this.#tooLarge(key, response.ContentLength);
      }
      bytes = await readCapped(response.Body as AsyncIterable<Uint8Array>, cap, () =>
        this.#tooLarge(key, undefined),
      );
      metadata = response.Metadata;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw classifyS3Error(error, `get ${this.#where(key)}`);
    }
    const expected = metadata?.[sha256MetadataKey];
    if (expected === undefined) {
      if (this.config.verify === "if-present") return bytes;
      throw new DeadLetterError(
        "object_integrity",
        `${this.#where(key)} has no sha256 metadata, so its bytes cannot be verified (not written by questa's store; set verify: "if-present" to read such objects)`,
      );
    }
    const actual = sha256Hex(bytes);
    if (actual !== expected) {
      throw new DeadLetterError(
        "object_integrity",
        `${this.#where(key)} failed its integrity check: metadata says sha256 ${expected}, the ${bytes.byteLength} bytes read hash to ${actual} (tampered or corrupted)`,
      );
    }
    return bytes;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const Key = this.#key(key);
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key }));
      const sha256 = response.Metadata?.[sha256MetadataKey];
      if (sha256 !== undefined) return { key, size: response.ContentLength ?? 0, sha256 };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw classifyS3Error(error, `head ${this.#where(key)}`);
    }
    // no metadata: the bytes themselves tell (or `get` refuses them)
    const bytes = await this.get(key);
    return bytes === undefined ? undefined : { key, size: bytes.byteLength, sha256: sha256Hex(bytes) };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      try {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.config.bucket,
            Prefix: this.config.prefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key !== undefined) keys.push(object.Key.slice(this.config.prefix.length));
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } catch (error) {
        throw classifyS3Error(error, `list ${this.#where(prefix)}`);
      }
    } while (token);
    // listings carry no user metadata: the sha256 comes from a HEAD per object, a few at a time
    const infos: ObjectInfo[] = [];
    for (let i = 0; i < keys.length; i += 16) {
      const heads = await Promise.all(keys.slice(i, i + 16).map((key) => this.head(key)));
      for (const info of heads) if (info) infos.push(info);
    }
    return infos.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  #tooLarge(key: string, size: number | undefined): DeadLetterError {
    return new DeadLetterError(
      "object_too_large",
      `${this.#where(key)} is ${size === undefined ? "larger than" : `${size} bytes, over`} the store's limit of ${this.config.maxObjectBytes} bytes (maxObjectBytes, QUESTA_S3_MAX_OBJECT_BYTES)`,
    );
  }

  /**
   * Deletes every object whose key starts with `prefix` (under the store's own prefix), a page of
   * keys at a time: listing reads no object and no metadata. Returns how many were deleted.
   */
  async deleteUnder(prefix: string, options: { signal?: AbortSignal } = {}): Promise<number> {
    if (prefix !== "" && !prefix.endsWith("/")) {
      throw new InputError("invalid_object_key", [
        {
          path: "prefix",
          message: `${JSON.stringify(prefix)} does not end in /`,
          hint: "pass a folder: a/b/",
        },
      ]);
    }
    if (prefix !== "") assertObjectKey(prefix.slice(0, -1));
    const send = { ...(options.signal ? { abortSignal: options.signal } : {}) };
    let deleted = 0;
    let token: string | undefined;
    do {
      try {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.config.bucket,
            Prefix: this.config.prefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          send,
        );
        const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
        if (keys.length > 0) {
          const result = await this.client.send(
            new DeleteObjectsCommand({ Bucket: this.config.bucket, Delete: { Objects: keys, Quiet: true } }),
            send,
          );
          const failed = result.Errors ?? [];
          if (failed.length > 0) {
            throw new Error(
              `could not delete ${failed.length} objects, e.g. ${failed[0]?.Key}: ${failed[0]?.Code} ${failed[0]?.Message}`,
            );
          }
          deleted += keys.length;
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } catch (error) {
        throw classifyS3Error(error, `delete under ${this.#where(prefix)}`);
      }
    } while (token);
    return deleted;
  }

  async delete(key: string): Promise<void> {
    const Key = this.#key(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.config.bucket, Key }));
    } catch (error) {
      if (isNotFound(error)) return;
      throw classifyS3Error(error, `delete ${this.#where(key)}`);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

/** SDK client settings for a validated config */
export function s3ClientConfig(config: S3StoreConfig): S3ClientConfig {
  const credentials =
    config.credentials === undefined
      ? undefined
      : "secretDir" in config.credentials
        ? secretDirCredentials(config.credentials.secretDir)
        : {
            accessKeyId: config.credentials.accessKeyId,
            secretAccessKey: config.credentials.secretAccessKey,
            ...(config.credentials.sessionToken ? { sessionToken: config.credentials.sessionToken } : {}),
          };
  return {
    region: config.region,
    // bounded waits: a store that never answers fails the call instead of holding it forever
    requestHandler: {
      connectionTimeout: config.connectionTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      throwOnRequestTimeout: true,
      socketTimeout: config.requestTimeoutMs,
      ...(config.caFile ? { httpsAgent: { ca: readCaFile(config.caFile), keepAlive: true } } : {}),
    },
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
    maxAttempts: config.maxAttempts,
    retryMode: "standard",
    ...(credentials ? { credentials } : {}),
  };
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new InputError("invalid_s3_config", [
      {
        path: "caFile",
        message: `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
        hint: "mount the Secret named by storage.caSecretRef (key ca.crt) there",
      },
    ]);
  }
}

/** the stream's bytes, or `tooLarge()` thrown as soon as more than `cap` bytes have arrived */
async function readCapped(
  body: AsyncIterable<Uint8Array>,
  cap: number,
  tooLarge: () => Error,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.byteLength;
    if (size > cap) {
      (body as { destroy?: () => void }).destroy?.();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  const joined = Buffer.concat(chunks, size);
  // a plain Uint8Array view of the same memory (callers compare and hash it; no copy)
  return new Uint8Array(joined.buffer, joined.byteOffset, joined.byteLength);
}
