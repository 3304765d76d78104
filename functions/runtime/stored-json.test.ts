import { describe, expect, it } from "vitest";
import { z } from "zod";
import { DeadLetterError } from "./errors.ts";
import { MemoryObjectStore } from "./memory-object-store.ts";
import { parseStoredJson, readStoredJson } from "./stored-json.ts";

const Schema = z.object({ n: z.int() });

describe("stored JSON", () => {
  it("reads a valid object, and nothing where there is none", async () => {
    const store = new MemoryObjectStore();
    await store.put("a.json", '{"n":1}');
    expect(await readStoredJson(store, "a.json", Schema, "corrupt_a")).toEqual({ n: 1 });
    expect(await readStoredJson(store, "missing.json", Schema, "corrupt_a")).toBeUndefined();
  });

  it("refuses bytes that fail the schema or are no JSON with a DeadLetterError naming the key", () => {
    const invalid = () => parseStoredJson('{"n":"x"}', "a.json", Schema, "corrupt_a");
    expect(invalid).toThrow(DeadLetterError);
    expect(invalid).toThrow(/^a\.json: /);
    expect(invalid).toThrow(expect.objectContaining({ code: "corrupt_a" }));
    const garbage = () =>
      parseStoredJson(new TextEncoder().encode("{"), "a.json", Schema, "corrupt_a", "not_json");
    expect(garbage).toThrow("a.json is not JSON");
    expect(garbage).toThrow(expect.objectContaining({ code: "not_json" }));
  });
});
