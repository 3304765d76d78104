import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { parseS3StoreConfig } from "../runtime/s3-object-store.ts";
import { datasetOpener } from "./dataset-opener.ts";

const dir = mkdtempSync(join(tmpdir(), "questa-opener-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("datasetOpener", () => {
  it("in a cluster (object store only) refuses local paths without reading them", async () => {
    const secret = join(dir, "AWS_SECRET_ACCESS_KEY");
    writeFileSync(secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    const open = datasetOpener(parseS3StoreConfig({ bucket: "runs" }), { localFiles: false });
    for (const uri of [secret, `file://${secret}`, "relative/train.jsonl"]) {
      const error = await open(uri).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InputError);
      expect((error as InputError).code).toBe("local_path_refused");
      expect((error as InputError).message).not.toContain("EXAMPLEKEY");
    }
  });

  it("on the user's own machine reads local files, after checking their size", async () => {
    const small = join(dir, "small.jsonl");
    writeFileSync(small, '{"problem":"1+1","answer":"2"}\n');
    const big = join(dir, "big.jsonl");
    writeFileSync(big, "x".repeat(4096));
    const open = datasetOpener(parseS3StoreConfig({ bucket: "runs", maxObjectBytes: 1024 }), {
      localFiles: true,
    });
    expect(new TextDecoder().decode(await open(small))).toContain("1+1");
    expect(await open(join(dir, "missing.jsonl"))).toBeUndefined();
    const error = await open(big).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((error as InputError).code).toBe("file_too_large");
    expect((error as InputError).message).toContain("is 4096 bytes, over the limit of 1024");
  });
});
