import { open, readdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeEach, describe, expect, it } from "vitest";
import { testTempDir } from "../../test/temp-dir.ts";
import { InputError } from "./errors.ts";
import { FsObjectStore } from "./fs-object-store.ts";
import { describeObjectStoreContract } from "./object-store.contract.ts";
import { sha256Hex } from "./sha256.ts";

describeObjectStoreContract("FsObjectStore", async () => {
  const root = testTempDir("questa-store-");
  return {
    store: new FsObjectStore(root),
    // bit rot: other bytes of the same length, in place; the sum's record is pointed at the file as
    // it now is (an mtime cannot be put back to the nanosecond), so the file looks unchanged
    corrupt: async (key) => {
      const path = join(root, ...key.split("/"));
      const handle = await open(path, "r+");
      try {
        const bytes = await handle.readFile();
        bytes[0] = (bytes[0] ?? 0) ^ 0xff;
        await handle.write(bytes, 0, bytes.byteLength, 0);
      } finally {
        await handle.close();
      }
      await rerecordIdentity(root, key);
    },
  };
});

/** points the checksum sidecar of `key` at the file as it is now, keeping the recorded sum */
async function rerecordIdentity(root: string, key: string): Promise<void> {
  const sidecarPath = join(root, ".questa", "sha256", `${sha256Hex(key)}.json`);
  const sidecar = JSON.parse(await readFile(sidecarPath, "utf8"));
  const now = await stat(join(root, ...key.split("/")), { bigint: true });
  await writeFile(
    sidecarPath,
    JSON.stringify({
      ...sidecar,
      ino: String(now.ino),
      mtimeNs: String(now.mtimeNs),
      size: Number(now.size),
    }),
  );
}

// what only a directory store does: objects are plain files, temp files and empty folders go away,
// a file edited by hand is a new object, and no key or link leads out of the root
describe("FsObjectStore", () => {
  let root: string;
  let store: FsObjectStore;
  beforeEach(() => {
    root = testTempDir("questa-store-");
    store = new FsObjectStore(root);
  });

  it("keeps objects as plain files at their keys and prunes emptied folders", async () => {
    await store.put("runs/r1/a.json", '{"a":1}');
    expect(await readFile(join(root, "runs/r1/a.json"), "utf8")).toBe('{"a":1}');
    expect(fileURLToPath(store.uri("runs/r1/a.json"))).toBe(join(root, "runs/r1/a.json"));
    await store.delete("runs/r1/a.json");
    expect(await readdir(root)).toEqual([".questa"]);
  });

  it("leaves no temp files behind after concurrent overwrites", async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put("k", `value-${i}`.repeat(1000))));
    expect(await readdir(join(root, ".questa", "tmp"))).toEqual([]);
  });

  it("takes a file edited by hand as a new object: its sum is recomputed, its bytes are no corruption", async () => {
    await store.put("x", "first");
    await writeFile(join(root, "x"), "edited by hand");
    expect(new TextDecoder().decode(await store.get("x"))).toBe("edited by hand");
    expect((await store.head("x"))?.sha256).toBe(sha256Hex("edited by hand"));
  });

  it("keeps its own .questa/ folder out of reach and refuses prefixes that would escape the root", async () => {
    await expect(store.put(".questa/tmp/x", "x")).rejects.toBeInstanceOf(InputError);
    await expect(store.get(".questa/tmp/x")).rejects.toBeInstanceOf(InputError);
    await expect(store.list("../")).rejects.toBeInstanceOf(InputError);
    await expect(store.list("/abs")).rejects.toBeInstanceOf(InputError);
    await expect(store.list("a/..")).rejects.toBeInstanceOf(InputError);
  });

  it("does not follow symlinks out of the root when listing", async () => {
    const outside = testTempDir("questa-outside-");
    await writeFile(join(outside, "secret"), "s");
    await symlink(outside, join(root, "link"));
    await store.put("real", "r");
    expect((await store.list("")).map((i) => i.key)).toEqual(["real"]);
    expect(await store.list("link/")).toEqual([]);
  });

  it("reports a key that collides with a directory of other keys", async () => {
    await store.put("a/b/c", "x");
    await expect(store.put("a/b", "y")).rejects.toMatchObject({ code: "object_key_conflict" });
    await expect(store.put("a/b", "y", { ifAbsent: true })).rejects.toMatchObject({
      code: "object_key_conflict",
    });
    await expect(store.put("a/b/c/d", "y")).rejects.toMatchObject({ code: "object_key_conflict" });
    expect(await store.get("a/b")).toBeUndefined();
    await store.delete("a/b"); // a "directory" is no object: no-op
    expect(await store.get("a/b/c")).toBeDefined();
  });
});
