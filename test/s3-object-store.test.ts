import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeadObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, inject, it } from "vitest";
import { DeadLetterError, InputError, RetryableError } from "../functions/runtime/errors.ts";
import { S3ObjectStore, type S3StoreConfigInput } from "../functions/runtime/s3-object-store.ts";
import { sha256Hex } from "../functions/runtime/sha256.ts";

// Integration tests of S3ObjectStore against the real MinIO started by test/infra/kafka-s3-setup.ts.
// Every test uses its own bucket.

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

describe("S3ObjectStore against MinIO", () => {
  it("puts, gets, heads, lists and deletes under a key prefix", async () => {
    const store = await newStore({ prefix: "runs/" });
    const put = await store.put("a/b/one.json", '{"x":1}', { contentType: "application/json" });
    expect(put).toEqual({
      created: true,
      info: { key: "a/b/one.json", size: 7, sha256: sha256Hex('{"x":1}') },
    });
    await store.put("a/two.bin", Uint8Array.from([0, 1, 2, 255]));
    await store.put("a/b/zero", new Uint8Array(0));
    await store.put("c/other", "x");

    expect(decoder.decode(await store.get("a/b/one.json"))).toBe('{"x":1}');
    expect(await store.get("a/two.bin")).toEqual(Uint8Array.from([0, 1, 2, 255]));
    expect(await store.get("a/b/zero")).toEqual(new Uint8Array(0));
    expect(await store.head("a/two.bin")).toEqual({
      key: "a/two.bin",
      size: 4,
      sha256: sha256Hex(Uint8Array.from([0, 1, 2, 255])),
    });
    expect((await store.list("a/")).map((o) => o.key)).toEqual(["a/b/one.json", "a/b/zero", "a/two.bin"]);
    expect((await store.list("")).map((o) => o.key)).toEqual([
      "a/b/one.json",
      "a/b/zero",
      "a/two.bin",
      "c/other",
    ]);
    expect(store.uri("a/two.bin")).toBe(`s3://${store.config.bucket}/runs/a/two.bin`);

    await store.delete("a/two.bin");
    await store.delete("a/two.bin");
    expect(await store.get("a/two.bin")).toBeUndefined();
    expect(await store.head("a/two.bin")).toBeUndefined();
    expect(await store.get("never/written")).toBeUndefined();
  });

  it("overwrites by default and keeps the first object on a conditional put", async () => {
    const store = await newStore();
    await store.put("data", "v1");
    expect((await store.put("data", "v2")).created).toBe(true);
    expect(decoder.decode(await store.get("data"))).toBe("v2");

    const first = await store.put("manifest.json", "first", { ifAbsent: true });
    const second = await store.put("manifest.json", "second", { ifAbsent: true });
    expect(first.created).toBe(true);
    expect(second).toEqual({ created: false, info: first.info });
    expect(decoder.decode(await store.get("manifest.json"))).toBe("first");

    // racing writers of one manifest: exactly one wins, and the stored bytes are the winner's
    const racers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => store.put("race/manifest.json", `writer ${i}`, { ifAbsent: true })),
    );
    const winners = racers.filter((r) => r.created);
    expect(winners).toHaveLength(1);
    expect(decoder.decode(await store.get("race/manifest.json"))).toBe(
      `writer ${racers.findIndex((r) => r.created)}`,
    );
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

  it("refuses a tampered object and one without its sha256", async () => {
    const store = await newStore();
    const original = await store.put("rollouts/shard-0", "honest bytes");
    // rewrite the bytes behind the store's back, keeping the old checksum metadata
    await store.client.send(
      new PutObjectCommand({
        Bucket: store.config.bucket,
        Key: "rollouts/shard-0",
        Body: "forged bytes",
        Metadata: { sha256: original.info.sha256 },
      }),
    );
    const tampered = store.get("rollouts/shard-0");
    await expect(tampered).rejects.toBeInstanceOf(DeadLetterError);
    await expect(tampered).rejects.toMatchObject({ code: "object_integrity" });
    await expect(tampered).rejects.toThrow(/failed its integrity check.*tampered or corrupted/);

    await store.client.send(
      new PutObjectCommand({ Bucket: store.config.bucket, Key: "uploaded/by-hand.txt", Body: "plain" }),
    );
    await expect(store.get("uploaded/by-hand.txt")).rejects.toThrow(/has no sha256 metadata/);
    const lenient = new S3ObjectStore({ ...store.config, verify: "if-present" });
    stores.push(lenient);
    expect(decoder.decode(await lenient.get("uploaded/by-hand.txt"))).toBe("plain");
    expect(await lenient.head("uploaded/by-hand.txt")).toEqual({
      key: "uploaded/by-hand.txt",
      size: 5,
      sha256: sha256Hex("plain"),
    });
  });

  it("rejects keys that are not relative paths", async () => {
    const store = await newStore();
    await expect(store.put("../escape", "x")).rejects.toBeInstanceOf(InputError);
    await expect(store.get("/absolute")).rejects.toBeInstanceOf(InputError);
    await expect(store.head("a//b")).rejects.toBeInstanceOf(InputError);
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
