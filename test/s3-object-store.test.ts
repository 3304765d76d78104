import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, inject, it } from "vitest";
import { DeadLetterError, RetryableError } from "../functions/runtime/errors.ts";
import { describeObjectStoreContract } from "../functions/runtime/object-store.contract.ts";
import { S3ObjectStore, type S3StoreConfigInput } from "../functions/runtime/s3-object-store.ts";
import { sha256Hex } from "../functions/runtime/sha256.ts";

// Integration tests of S3ObjectStore against the real MinIO started by test/infra/kafka-s3-setup.ts:
// the ObjectStore contract every store passes, then what only S3 does. Every test uses its own bucket.

const s3 = inject("s3");
const stores: S3ObjectStore[] = [];
const tempDirs: string[] = [];

afterAll(() => {
  for (const store of stores) store.close();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function newStore(overrides: Partial<S3StoreConfigInput> = {}): Promise<S3ObjectStore> {
  const store = new S3ObjectStore({
    bucket: `questa-test-${randomBytes(4).toString("hex")}`,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    ...overrides,
  });
  stores.push(store);
  await store.ensureBucket();
  return store;
}

const decoder = new TextDecoder();

describeObjectStoreContract(
  "S3ObjectStore on MinIO",
  async () => {
    // under a prefix, so the contract also holds where keys are not the bucket's own
    const store = await newStore({ prefix: "runs/" });
    return {
      store,
      // rewrites the bytes behind the store's back, keeping the old checksum metadata
      corrupt: async (key) => {
        const Key = `${store.config.prefix}${key}`;
        const head = await store.client.send(new HeadObjectCommand({ Bucket: store.config.bucket, Key }));
        await store.client.send(
          new PutObjectCommand({
            Bucket: store.config.bucket,
            Key,
            Body: "forged bytes",
            Metadata: head.Metadata,
          }),
        );
      },
    };
  },
  { concurrentWriters: 6 },
);

describe("S3ObjectStore against MinIO", () => {
  it("keeps objects under its key prefix, named by s3:// URIs", async () => {
    const store = await newStore({ prefix: "runs/" });
    await store.put("a/two.bin", Uint8Array.from([0, 1, 2, 255]));
    const raw = await store.client.send(
      new HeadObjectCommand({ Bucket: store.config.bucket, Key: "runs/a/two.bin" }),
    );
    expect(raw.ContentLength).toBe(4);
    expect(raw.Metadata?.sha256).toBe(sha256Hex(Uint8Array.from([0, 1, 2, 255])));
    expect(store.uri("a/two.bin")).toBe(`s3://${store.config.bucket}/runs/a/two.bin`);
  });

  it("uploads, downloads and verifies a multipart object larger than 64 MiB", async () => {
    const store = await newStore();
    const body = randomBytes(64 * 1024 * 1024 + 12_345);
    const { created, info } = await store.put("big/weights.safetensors", body);
    expect(created).toBe(true);
    expect(await store.head("big/weights.safetensors")).toEqual(info);
    const read = await store.get("big/weights.safetensors");
    expect(read?.byteLength).toBe(body.byteLength);
    expect(Buffer.from(read ?? []).equals(body)).toBe(true);
    expect(info.sha256).toBe(sha256Hex(body));
    // a multipart ETag is "<md5 of part md5s>-<part count>": 16 MiB parts make 5
    const raw = await store.client.send(
      new HeadObjectCommand({ Bucket: store.config.bucket, Key: "big/weights.safetensors" }),
    );
    expect(raw.ETag).toMatch(/-5"$/);
    // a conditional put of a large body onto an existing key leaves it alone
    const again = await store.put("big/weights.safetensors", randomBytes(20 * 1024 * 1024), {
      ifAbsent: true,
    });
    expect(again).toEqual({ created: false, info });
  });

  it("refuses an object without its sha256 unless told to read such objects unchecked", async () => {
    const store = await newStore();
    await store.client.send(
      new PutObjectCommand({ Bucket: store.config.bucket, Key: "uploaded/by-hand.txt", Body: "plain" }),
    );
    const unchecked = store.get("uploaded/by-hand.txt");
    await expect(unchecked).rejects.toBeInstanceOf(DeadLetterError);
    await expect(unchecked).rejects.toThrow(/has no sha256 metadata/);
    const lenient = new S3ObjectStore({ ...store.config, verify: "if-present" });
    stores.push(lenient);
    expect(decoder.decode(await lenient.get("uploaded/by-hand.txt"))).toBe("plain");
    expect(await lenient.head("uploaded/by-hand.txt")).toEqual({
      key: "uploaded/by-hand.txt",
      size: 5,
      sha256: sha256Hex("plain"),
    });
  });

  it("reads credentials from a mounted secret directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-s3-secret-"));
    tempDirs.push(dir);
    writeFileSync(join(dir, "AWS_ACCESS_KEY_ID"), `${s3.accessKeyId}\n`);
    writeFileSync(join(dir, "AWS_SECRET_ACCESS_KEY"), `${s3.secretAccessKey}\n`);
    const store = await newStore({ credentials: { secretDir: dir } });
    await store.put("k", "from a secret");
    expect(decoder.decode(await store.get("k"))).toBe("from a secret");

    const emptyDir = mkdtempSync(join(tmpdir(), "questa-s3-nosecret-"));
    tempDirs.push(emptyDir);
    const unmounted = new S3ObjectStore({ ...store.config, credentials: { secretDir: emptyDir } });
    stores.push(unmounted);
    await expect(unmounted.get("k")).rejects.toThrow(/AWS_ACCESS_KEY_ID/);
  });

  it("turns an unreachable endpoint into a RetryableError after its retries", async () => {
    const store = new S3ObjectStore({
      bucket: "questa-nowhere",
      endpoint: "http://127.0.0.1:1",
      credentials: { accessKeyId: "x", secretAccessKey: "y" },
      maxAttempts: 2,
    });
    stores.push(store);
    await expect(store.get("k")).rejects.toBeInstanceOf(RetryableError);
  });
});
