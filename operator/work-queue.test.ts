import { describe, expect, it } from "vitest";
import { type Timers, WorkQueue } from "./work-queue.ts";

class ManualTimers implements Timers {
  now = 0;
  readonly pending: { at: number; callback: () => void; id: number }[] = [];
  #next = 0;
  setTimeout(callback: () => void, ms: number): unknown {
    this.#next += 1;
    const id = this.#next;
    this.pending.push({ at: this.now + ms, callback, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    const index = this.pending.findIndex((p) => p.id === handle);
    if (index >= 0) this.pending.splice(index, 1);
  }
  advance(ms: number): void {
    this.now += ms;
    for (const due of this.pending.filter((p) => p.at <= this.now)) {
      this.clearTimeout(due.id);
      due.callback();
    }
  }
}

describe("WorkQueue", () => {
  it("deduplicates keys and hands them out in order", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    queue.add("b");
    queue.add("a");
    expect(queue.depth).toBe(2);
    expect(await queue.get()).toBe("a");
    expect(await queue.get()).toBe("b");
  });

  it("never hands one key to two workers; a key added while in flight comes back after done", async () => {
    const queue = new WorkQueue();
    queue.add("a");
    const key = await queue.get();
    queue.add("a");
    expect(queue.depth).toBe(0);
    queue.done(key!);
    expect(queue.depth).toBe(1);
    expect(await queue.get()).toBe("a");
  });

  it("wakes a waiting worker", async () => {
    const queue = new WorkQueue();
    const waiting = queue.get();
    queue.add("x");
    expect(await waiting).toBe("x");
  });

  it("backs off failing keys exponentially up to the cap, and forget resets it", () => {
    const timers = new ManualTimers();
    const queue = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000, timers });
    expect([1, 2, 3, 4, 5].map(() => queue.addRateLimited("k"))).toEqual([100, 200, 400, 800, 1000]);
    expect(queue.failures("k")).toBe(5);
    queue.forget("k");
    expect(queue.addRateLimited("k")).toBe(100);
  });

  it("delayed keys arrive when their time comes; the earliest pending delay wins", () => {
    const timers = new ManualTimers();
    const queue = new WorkQueue({ timers });
    queue.addAfter("k", 500, 0);
    queue.addAfter("k", 200, 0);
    queue.addAfter("k", 900, 0);
    expect(timers.pending).toHaveLength(1);
    timers.advance(199);
    expect(queue.depth).toBe(0);
    timers.advance(1);
    expect(queue.depth).toBe(1);
  });

  it("shutDown releases waiting workers and drops delayed keys", async () => {
    const timers = new ManualTimers();
    const queue = new WorkQueue({ timers });
    const waiting = queue.get();
    queue.addAfter("k", 100, 0);
    queue.shutDown();
    expect(await waiting).toBeUndefined();
    expect(timers.pending).toHaveLength(0);
    queue.add("z");
    expect(queue.depth).toBe(0);
  });
});
