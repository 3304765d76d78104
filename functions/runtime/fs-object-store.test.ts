import { mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "./errors.ts";
import { FsObjectStore } from "./fs-object-store.ts";
import { sha256Hex } from "./sha256.ts";

describe("FsObjectStore", () => {
  let root: string;
  let store: FsObjectStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "questa-store-"));
    store = new FsObjectStore(root);
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("puts, gets, heads and deletes objects as plain files", async () => {
    const put = await store.put("runs/r1/a.json", '{"a":1}');
    expect(put).toEqual({
      created: true,
      info: { key: "runs/r1/a.json", size: 7, sha256: sha256Hex('{"a":1}') },
    });
    expect(new TextDecoder().decode(await store.get("runs/r1/a.json"))).toBe('{"a":1}');
    expect(await readFile(join(root, "runs/r1/a.json"), "utf8")).toBe('{"a":1}');
    expect(await store.head("runs/r1/a.json")).toEqual(put.info);
    expect(fileURLToPath(store.uri("runs/r1/a.json"))).toBe(join(root, "runs/r1/a.json"));
    await store.delete("runs/r1/a.json");
    expect(await store.get("runs/r1/a.json")).toBeUndefined();
    expect(await store.head("runs/r1/a.json")).toBeUndefined();
    await store.delete("runs/r1/a.json"); // deleting a missing key is fine
    expect(await readdir(root)).toEqual([".questa"]); // empty directories pruned
  });

  it("overwrites atomically and leaves no temp files behind", async () => {
    await store.put("k", "old");
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.put("k", `value-${i}`.repeat(1000))));
    const body = new TextDecoder().decode(await store.get("k"));
    expect(body).toMatch(/^(value-\d+)\1*$/);
    expect((await store.head("k"))?.sha256).toBe(sha256Hex(body));
    expect(await readdir(join(root, ".questa", "tmp"))).toEqual([]);
  });

  it("ifAbsent writes exactly once under concurrency", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.put("once/k", `writer-${i}`, { ifAbsent: true })),
    );
    const winners = results.filter((r) => r.created);
    expect(winners).toHaveLength(1);
    const stored = new TextDecoder().decode(await store.get("once/k"));
    for (const r of results) expect(r.info.sha256).toBe(sha256Hex(stored));
  });

  it("lists recursively by prefix, sorted, with sizes and sums", async () => {
    for (const key of ["b/2", "a/1", "a/sub/3", "ab/4", "c"]) await store.put(key, key);
    expect((await store.list("")).map((i) => i.key)).toEqual(["a/1", "a/sub/3", "ab/4", "b/2", "c"]);
    expect((await store.list("a/")).map((i) => i.key)).toEqual(["a/1", "a/sub/3"]);
    expect((await store.list("a")).map((i) => i.key)).toEqual(["a/1", "a/sub/3", "ab/4"]);
    expect((await store.list("a/s")).map((i) => i.key)).toEqual(["a/sub/3"]);
    expect(await store.list("zzz/")).toEqual([]);
    expect((await store.list("b/"))[0]).toEqual({ key: "b/2", size: 3, sha256: sha256Hex("b/2") });
  });

  it("recomputes the sum when a file changes behind its back", async () => {
    await store.put("x", "first");
    await writeFile(join(root, "x"), "edited by hand");
    expect((await store.head("x"))?.sha256).toBe(sha256Hex("edited by hand"));
  });

  it("rejects keys and prefixes that would escape the root", async () => {
    for (const key of ["../x", "/etc/passwd", "a/../../x", "a\\b", "a//b", ".questa/tmp/x", ""]) {
      await expect(store.put(key, "x")).rejects.toBeInstanceOf(InputError);
      await expect(store.get(key)).rejects.toBeInstanceOf(InputError);
    }
    await expect(store.list("../")).rejects.toBeInstanceOf(InputError);
    await expect(store.list("/abs")).rejects.toBeInstanceOf(InputError);
    await expect(store.list("a/..")).rejects.toBeInstanceOf(InputError);
  });

  it("does not follow symlinks out of the root when listing", async () => {
    const outside = await mkdtemp(join(tmpdir(), "questa-outside-"));
    try {
      await writeFile(join(outside, "secret"), "s");
      await symlink(outside, join(root, "link"));
      await store.put("real", "r");
      expect((await store.list("")).map((i) => i.key)).toEqual(["real"]);
      expect(await store.list("link/")).toEqual([]);
    } finally {
      await rm(outside, { recursive: true, force: true });
    }
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
