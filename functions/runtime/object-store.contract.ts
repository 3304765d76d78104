import { describe, expect, it } from "vitest";
import { DeadLetterError, InputError } from "./errors.ts";
import type { ObjectStore } from "./object-store.ts";
import { sha256Hex } from "./sha256.ts";

/**
 * The behaviour every `ObjectStore` promises, as one vitest suite: each implementation's tests call
 * `describeObjectStoreContract` with a factory, so a new backend passes by running the same suite.
 * Keys stay clear of what one backend cannot hold (a key that is also a "directory" of others).
 */
export interface ObjectStoreFixture {
  /** an empty store of its own (a fresh directory, bucket or map) */
  store: ObjectStore;
  /**
   * changes the stored bytes of `key` behind the store's back, as bit rot or a tampering hand would,
   * leaving the store's record of its sha256 as it was; needed unless `outsideBytes: false`
   */
  corrupt?: (key: string) => Promise<void>;
}

const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? undefined : new TextDecoder().decode(bytes);

export function describeObjectStoreContract(
  name: string,
  makeStore: () => Promise<ObjectStoreFixture>,
  options: {
    concurrentWriters?: number;
    /** false for a store held in memory: nothing outside it can corrupt its bytes */
    outsideBytes?: boolean;
  } = {},
): void {
  // S3 requests are slower than files: its suite can race fewer writers and still race
  const writers = options.concurrentWriters ?? 12;

  describe(`ObjectStore contract: ${name}`, () => {
    it("puts, gets, heads and deletes text, binary and empty objects", async () => {
      const { store } = await makeStore();
      const put = await store.put("runs/r1/a.json", '{"a":1}', { contentType: "application/json" });
      expect(put).toEqual({
        created: true,
        info: { key: "runs/r1/a.json", size: 7, sha256: sha256Hex('{"a":1}') },
      });
      const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
      await store.put("runs/r1/b.bin", binary);
      await store.put("runs/r1/empty", new Uint8Array(0));

      expect(text(await store.get("runs/r1/a.json"))).toBe('{"a":1}');
      expect(await store.get("runs/r1/b.bin")).toEqual(binary);
      expect(await store.get("runs/r1/empty")).toEqual(new Uint8Array(0));
      expect(await store.head("runs/r1/a.json")).toEqual(put.info);
      expect(await store.head("runs/r1/b.bin")).toEqual({
        key: "runs/r1/b.bin",
        size: 256,
        sha256: sha256Hex(binary),
      });

      await store.delete("runs/r1/b.bin");
      expect(await store.get("runs/r1/b.bin")).toBeUndefined();
      expect(await store.head("runs/r1/b.bin")).toBeUndefined();
      expect((await store.list("runs/")).map((o) => o.key)).toEqual(["runs/r1/a.json", "runs/r1/empty"]);
    });

    it("answers missing keys with undefined and deletes them as a no-op", async () => {
      const { store } = await makeStore();
      expect(await store.get("never/written")).toBeUndefined();
      expect(await store.head("never/written")).toBeUndefined();
      await store.delete("never/written");
      expect(await store.list("never/")).toEqual([]);
      expect(await store.list("")).toEqual([]);
    });

    it("keeps its own copy: changing the bytes put or got does not change the object", async () => {
      const { store } = await makeStore();
      const body = Uint8Array.from([1, 2, 3]);
      await store.put("copy", body);
      body[0] = 9;
      const got = await store.get("copy");
      expect(got).toEqual(Uint8Array.from([1, 2, 3]));
      if (got) got[1] = 9;
      expect(await store.get("copy")).toEqual(Uint8Array.from([1, 2, 3]));
    });

    it("lists by prefix, sorted, with sizes and sums; a prefix may end mid-segment", async () => {
      const { store } = await makeStore();
      for (const key of ["b/2", "a/1", "a/sub/3", "ab/4", "c"]) await store.put(key, key);
      expect((await store.list("")).map((o) => o.key)).toEqual(["a/1", "a/sub/3", "ab/4", "b/2", "c"]);
      expect((await store.list("a/")).map((o) => o.key)).toEqual(["a/1", "a/sub/3"]);
      expect((await store.list("a")).map((o) => o.key)).toEqual(["a/1", "a/sub/3", "ab/4"]);
      expect((await store.list("a/s")).map((o) => o.key)).toEqual(["a/sub/3"]);
      expect(await store.list("zzz/")).toEqual([]);
      expect(await store.list("b/")).toEqual([{ key: "b/2", size: 3, sha256: sha256Hex("b/2") }]);
    });

    it("overwrites by default; a conditional put keeps the first object and reports it", async () => {
      const { store } = await makeStore();
      await store.put("data", "v1");
      const second = await store.put("data", "v2");
      expect(second).toEqual({ created: true, info: { key: "data", size: 2, sha256: sha256Hex("v2") } });
      expect(text(await store.get("data"))).toBe("v2");
      expect(await store.head("data")).toEqual(second.info);

      const first = await store.put("manifest.json", "first", { ifAbsent: true });
      expect(first.created).toBe(true);
      expect(await store.put("manifest.json", "second", { ifAbsent: true })).toEqual({
        created: false,
        info: first.info,
      });
      expect(text(await store.get("manifest.json"))).toBe("first");
      // once deleted, the key is free for a conditional put again
      await store.delete("manifest.json");
      expect((await store.put("manifest.json", "third", { ifAbsent: true })).created).toBe(true);
      expect(text(await store.get("manifest.json"))).toBe("third");
    });

    it("concurrent writers and readers of one key: each sees one writer's whole body, and the sum matches", async () => {
      const { store } = await makeStore();
      await store.put("race/data", "old");
      const bodies = Array.from({ length: writers }, (_, i) => `writer-${i};`.repeat(2000));
      // readers racing the writers see one whole version, never a mix or a false integrity error
      const [, read] = await Promise.all([
        Promise.all(bodies.map((body) => store.put("race/data", body))),
        Promise.all(bodies.map(() => store.get("race/data"))),
      ]);
      for (const seen of read) expect(["old", ...bodies]).toContain(text(seen));
      const stored = text(await store.get("race/data"));
      expect(bodies).toContain(stored);
      expect(await store.head("race/data")).toEqual({
        key: "race/data",
        size: stored?.length,
        sha256: sha256Hex(stored ?? ""),
      });
      expect((await store.list("race/")).map((o) => o.key)).toEqual(["race/data"]);
    });

    it("concurrent conditional writers of one key: exactly one wins and every writer learns its object", async () => {
      const { store } = await makeStore();
      const results = await Promise.all(
        Array.from({ length: writers }, (_, i) =>
          store.put("race/manifest.json", `writer ${i}`, { ifAbsent: true }),
        ),
      );
      const winner = results.findIndex((r) => r.created);
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(text(await store.get("race/manifest.json"))).toBe(`writer ${winner}`);
      for (const r of results) expect(r.info).toEqual(results[winner]?.info);
    });

    it("rejects keys that are not relative paths, before touching anything", async () => {
      const { store } = await makeStore();
      for (const key of ["", "../escape", "/absolute", "a//b", "a/./b", "a/../../x", "a\\b"]) {
        await expect(store.put(key, "x"), key).rejects.toBeInstanceOf(InputError);
        await expect(store.get(key), key).rejects.toBeInstanceOf(InputError);
        await expect(store.head(key), key).rejects.toBeInstanceOf(InputError);
        await expect(store.delete(key), key).rejects.toBeInstanceOf(InputError);
      }
      expect(await store.list("")).toEqual([]);
    });

    it("names each object with a URI of its own", async () => {
      const { store } = await makeStore();
      const a = store.uri("runs/r1/a.json");
      expect(a).toMatch(/^[a-z][a-z0-9+.-]*:\/\//);
      expect(a).not.toBe(store.uri("runs/r1/b.json"));
      expect(store.uri("runs/r1/a.json")).toBe(a);
    });

    // only a store whose bytes live outside the process can have them changed behind its back
    if (options.outsideBytes !== false) {
      it("refuses corrupted bytes with a DeadLetterError instead of returning them", async () => {
        const { store, corrupt } = await makeStore();
        if (!corrupt)
          throw new Error(`${name}: the fixture must offer corrupt() (or pass outsideBytes: false)`);
        await store.put("rollouts/shard-0", "honest bytes, all of them");
        await store.put("rollouts/shard-1", "untouched");
        await corrupt("rollouts/shard-0");
        const read = store.get("rollouts/shard-0");
        await expect(read).rejects.toBeInstanceOf(DeadLetterError);
        await expect(read).rejects.toMatchObject({ code: "object_integrity" });
        await expect(read).rejects.toThrow(/failed its integrity check.*tampered or corrupted/);
        // the neighbour is read as before
        expect(text(await store.get("rollouts/shard-1"))).toBe("untouched");
      });
    }
  });
}
