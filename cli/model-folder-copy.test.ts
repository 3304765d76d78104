import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../functions/runtime/errors.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { testTempDir } from "../test/temp-dir.ts";
import { main } from "./main.ts";
import { copyModelFolder } from "./model-folder-copy.ts";
import { captureIO } from "./test-io.ts";

const FIXTURES = join(import.meta.dirname, "..", "test", "fixtures", "hf");

function scratch(): string {
  return testTempDir("questa-copy-");
}

/** a fixture folder copied first: reading through FsObjectStore keeps sha256 sidecars beside it */
function fixture(name: string): string {
  const dir = scratch();
  cpSync(join(FIXTURES, name), dir, { recursive: true });
  return dir;
}

describe("copyModelFolder", () => {
  it("copies a sharded folder's files byte for byte, once", async () => {
    const source = fixture("tiny-qwen2-sharded");
    const names = readdirSync(source).sort();
    const dir = join(scratch(), "models", "initial");
    const result = await copyModelFolder(new FsObjectStore(source), source, dir);
    expect(readdirSync(dir).sort()).toEqual(names);
    expect(result).toMatchObject({ copied: true, files: names.length });
    for (const name of names) expect(readFileSync(join(dir, name))).toEqual(readFileSync(join(source, name)));
    // an init container that runs again finds the copy and leaves it
    expect(await copyModelFolder(new FsObjectStore(source), source, dir)).toEqual({
      copied: false,
      files: 0,
      bytes: 0,
    });
    // no partial copies are left beside it
    expect(readdirSync(join(dir, ".."))).toEqual(["initial"]);
  });

  it("copies into an empty directory, leaving out files a server does not read", async () => {
    const source = fixture("tiny-qwen2");
    writeFileSync(join(source, "pytorch_model.bin"), "pickled");
    mkdirSync(join(source, "original"));
    writeFileSync(join(source, "original", "consolidated.00.pth"), "x");
    const dir = scratch();
    await copyModelFolder(new FsObjectStore(source), source, dir);
    expect(readdirSync(dir).sort()).toEqual(readdirSync(join(FIXTURES, "tiny-qwen2")).sort());
  });

  it("refuses a folder without config, tokenizer or a shard the index lists, naming each, and writes nothing", async () => {
    const source = fixture("tiny-qwen2-sharded");
    const shard = readdirSync(source).find((n) => /-of-/.test(n))!;
    rmSync(join(source, shard));
    rmSync(join(source, "config.json"));
    rmSync(join(source, "tokenizer.json"));
    const parent = scratch();
    const error = await copyModelFolder(
      new FsObjectStore(source),
      "s3://models/qwen",
      join(parent, "initial"),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    const messages = (error as InputError).issues.map((i) => `${i.path}: ${i.message}`);
    expect(messages).toEqual([
      "s3://models/qwen: no config.json",
      "s3://models/qwen: no tokenizer.json (or tokenizer.model)",
      `s3://models/qwen: ${shard} is missing (listed in model.safetensors.index.json)`,
    ]);
    expect(readdirSync(parent)).toEqual([]);
  });

  it("refuses a destination that holds something else", async () => {
    const dir = scratch();
    writeFileSync(join(dir, "notes.txt"), "mine");
    const source = fixture("tiny-qwen2");
    await expect(copyModelFolder(new FsObjectStore(source), source, dir)).rejects.toThrow(
      /holds something else than a model folder/,
    );
  });
});

describe("questa model fetch LOCATION DIR", () => {
  it("needs the directory to copy into", async () => {
    const { io, stderr } = captureIO(scratch());
    expect(await main(["model", "fetch", "s3://models/qwen/"], io)).toBe(2);
    expect(stderr()).toContain("give the directory to copy the model folder into");
  });
});
