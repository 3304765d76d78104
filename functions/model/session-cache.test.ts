import { describe, expect, it, vi } from "vitest";
import { GraphBuilder } from "./graph/graph-builder.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import { GraphSession } from "./ort-backend.ts";
import { SessionCache } from "./session-cache.ts";

const model = (() => {
  const b = new GraphBuilder("float32");
  b.output(b.neg(b.input("x", "float32", [1])), "y");
  return toOnnxModel(b);
})();

describe("SessionCache", () => {
  it("keeps at most maxEntries idle sessions, releasing the least recently used, never one in use", async () => {
    const cache = new SessionCache(2);
    let created = 0;
    const create = () => {
      created++;
      return GraphSession.create(model, { threads: 1 });
    };
    const held = await cache.acquire("a", create);
    for (const key of ["b", "c", "d"]) (await cache.acquire(key, create)).release();
    // "a" is in use and survives; of b, c, d only the most recent idle one fits (eviction is async)
    await vi.waitFor(() => expect(cache.size).toBe(2));
    const out = await held.session.run({ x: { dtype: "float32", data: Float32Array.of(2), dims: [1] } });
    expect(Array.from(out.y!.data as Float32Array)).toEqual([-2]);
    held.release();
    (await cache.acquire("d", create)).release();
    expect(created).toBe(4);
    (await cache.acquire("b", create)).release();
    expect(created).toBe(5);
    await cache.clear();
    expect(cache.size).toBe(0);
  });
});
