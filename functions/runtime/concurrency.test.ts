import { describe, expect, it } from "vitest";
import { mapConcurrently } from "./concurrency.ts";

/** a promise settled by hand */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("mapConcurrently", () => {
  it("keeps at most `limit` calls in flight and returns results in item order", async () => {
    const gates = Array.from({ length: 5 }, () => deferred<void>());
    const started: number[] = [];
    let running = 0;
    let peak = 0;
    const result = mapConcurrently([10, 20, 30, 40, 50], 2, async (item, index) => {
      started.push(index);
      running++;
      peak = Math.max(peak, running);
      await gates[index]!.promise;
      running--;
      return item + index;
    });
    await Promise.resolve();
    expect(started).toEqual([0, 1]);
    // finishing out of order: item 1 first lets item 2 start
    gates[1]!.resolve();
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const gate of gates) gate.resolve();
    expect(await result).toEqual([10, 21, 32, 43, 54]);
    expect(peak).toBe(2);
  });

  it("starts nothing more after a failure and throws the first error", async () => {
    const started: number[] = [];
    await expect(
      mapConcurrently([0, 1, 2, 3], 1, async (item) => {
        started.push(item);
        if (item === 1) throw new Error("boom");
        return item;
      }),
    ).rejects.toThrow("boom");
    expect(started).toEqual([0, 1]);
    expect(await mapConcurrently([], 3, async () => 1)).toEqual([]);
    await expect(mapConcurrently([1], 0, async () => 1)).rejects.toThrow(RangeError);
  });
});
