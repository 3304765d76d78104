import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DeadLetterError, RetryableError } from "../functions/runtime/errors.ts";
import { S3ObjectStore, type S3StoreConfigInput } from "../functions/runtime/s3-object-store.ts";
import {
  type Endpoint,
  makeServerCertificate,
  startSilentEndpoint,
  startTlsProxy,
  type TlsPems,
} from "./infra/tls-endpoints.ts";

// What the operator and the functions may rely on from an object store they do not control: bounded
// waits, sizes checked before bytes are read, deletion of one prefix only, a private CA.

const s3 = inject("s3");
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const stores: S3ObjectStore[] = [];
const endpoints: Endpoint[] = [];
let dir: string;
let pems: TlsPems;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "questa-s3-bounds-"));
  pems = await makeServerCertificate(join(dir, "tls"));
});

afterAll(async () => {
  for (const store of stores) store.close();
  await Promise.all(endpoints.map((e) => e.close()));
  rmSync(dir, { recursive: true, force: true });
});

function store(config: Partial<S3StoreConfigInput>): S3ObjectStore {
  const created = new S3ObjectStore({
    bucket: `questa-bounds-${randomBytes(4).toString("hex")}`,
    endpoint: s3.endpoint,
    region: s3.region,
    credentials,
    ...config,
  });
  stores.push(created);
  return created;
}

describe("S3ObjectStore bounds", () => {
  it("deleteUnder removes one prefix's objects, a page at a time, and nothing beside it", async () => {
    const shared = store({});
    await shared.ensureBucket();
    for (let i = 0; i < 3; i++) await shared.put(`questa/namespaces/evil/demo/ckpt/${i}`, "x");
    await shared.put("questa/namespaces/ml/demo/ckpt/0", "victim");
    await shared.put("questa/namespaces/evil/demo-2/ckpt/0", "a sibling whose name extends demo");
    expect(await shared.deleteUnder("questa/namespaces/evil/demo/")).toBe(3);
    expect((await shared.list("")).map((o) => o.key)).toEqual([
      "questa/namespaces/evil/demo-2/ckpt/0",
      "questa/namespaces/ml/demo/ckpt/0",
    ]);
    await expect(shared.deleteUnder("questa/namespaces/evil/demo")).rejects.toThrow(/does not end in \//);
    await expect(shared.deleteUnder("../")).rejects.toThrow(/segment/);
  });

  it("refuses an object over its size limit before reading it, naming the limit", async () => {
    const writer = store({});
    await writer.ensureBucket();
    await writer.put("big.bin", new Uint8Array(64 * 1024));
    const capped = store({ bucket: writer.config.bucket, maxObjectBytes: 1024 });
    const error = await capped.get("big.bin").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DeadLetterError);
    expect((error as Error).message).toContain("is 65536 bytes, over the store's limit of 1024 bytes");
  });

  it("gives up on an endpoint that never answers, and stops at once when its call is aborted", async () => {
    const silent = await startSilentEndpoint();
    endpoints.push(silent);
    const hung = store({
      endpoint: silent.url,
      maxAttempts: 1,
      connectionTimeoutMs: 500,
      requestTimeoutMs: 500,
    });
    const started = Date.now();
    const error = await hung.list("runs/").then(
      () => undefined,
      (e: unknown) => e,
    );
    // a timeout is the store's fault, not the caller's: retry later
    expect(error).toBeInstanceOf(RetryableError);
    expect(silent.accepted()).toBeGreaterThan(0);
    // measured, not asserted: machines are noisy
    console.log(
      `[s3-bounds] silent endpoint: list failed after ${Date.now() - started} ms (timeouts 500 ms)`,
    );

    const patient = store({ endpoint: silent.url, maxAttempts: 1, requestTimeoutMs: 600_000 });
    const abort = new AbortController();
    const deleting = patient.deleteUnder("runs/", { signal: abort.signal }).then(
      () => undefined,
      (e: unknown) => e,
    );
    while (silent.open() === 0) await new Promise((r) => setTimeout(r, 10));
    abort.abort(new Error("the finalizer's budget ran out"));
    expect(await deleting).toBeInstanceOf(Error);
  });

  it("reaches an https endpoint signed by a private CA with caFile, and refuses it without", async () => {
    const proxy = await startTlsProxy(s3.endpoint, pems);
    endpoints.push(proxy);
    const trusted = store({ endpoint: proxy.url, caFile: pems.caFile });
    await trusted.ensureBucket();
    await trusted.put("over/tls.txt", "encrypted");
    expect(new TextDecoder().decode(await trusted.get("over/tls.txt"))).toBe("encrypted");

    const untrusted = store({ endpoint: proxy.url, bucket: trusted.config.bucket, maxAttempts: 1 });
    const error = await untrusted.get("over/tls.txt").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String((error as Error).message)).toMatch(/self[- ]signed|unable to verify|certificate/i);
  });
});
