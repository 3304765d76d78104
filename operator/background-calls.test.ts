import { describe, expect, it } from "vitest";
import { BackgroundCalls, CallTimeoutError } from "./background-calls.ts";
import type { Timers } from "./work-queue.ts";

class ManualTimers implements Timers {
  readonly pending = new Map<number, () => void>();
  #next = 0;
  setTimeout(callback: () => void): unknown {
    this.#next += 1;
    this.pending.set(this.#next, callback);
    return this.#next;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  fireAll(): void {
    for (const [id, callback] of [...this.pending]) {
      this.pending.delete(id);
      callback();
    }
  }
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("BackgroundCalls", () => {
  it("starts a call, says pending, hands out its result once and tells the run", async () => {
    const settled: string[] = [];
    const calls = new BackgroundCalls({ onSettled: (key) => settled.push(key), timers: new ManualTimers() });
    const answer = deferred<number>();
    let started = 0;
    const call = () => {
      started++;
      return answer.promise;
    };
    expect(calls.take("ns/a", "lag", call, { timeoutMs: 10 }).state).toBe("pending");
    expect(calls.take("ns/a", "lag", call, { timeoutMs: 10 }).state).toBe("pending");
    expect(started).toBe(1);
    answer.resolve(7);
    await flush();
    expect(settled).toEqual(["ns/a"]);
    expect(calls.take("ns/a", "lag", call, { timeoutMs: 10 })).toEqual({ state: "done", value: 7 });
    // taken: the next take starts a fresh call
    expect(calls.take("ns/a", "lag", call, { timeoutMs: 10 }).state).toBe("pending");
    expect(started).toBe(2);
  });

  it("a call that never answers times out with its signal aborted, and is not started twice", async () => {
    const timers = new ManualTimers();
    const calls = new BackgroundCalls({ onSettled: () => {}, timers });
    let signal: AbortSignal | undefined;
    let started = 0;
    const hang = (s: AbortSignal) => {
      started++;
      signal = s;
      return new Promise<never>(() => {});
    };
    calls.take("ns/slow", "cleanup", hang, { timeoutMs: 1000 });
    await flush();
    timers.fireAll();
    const outcome = calls.take("ns/slow", "cleanup", hang, { timeoutMs: 1000 });
    expect(outcome.state).toBe("failed");
    expect(outcome.state === "failed" && outcome.error).toBeInstanceOf(CallTimeoutError);
    expect(signal?.aborted).toBe(true);
    // the hung call still runs: no second one piles up behind it
    expect(calls.take("ns/slow", "cleanup", hang, { timeoutMs: 1000 }).state).toBe("pending");
    expect(started).toBe(1);
    expect(calls.running).toBe(1);
    // another run's calls are independent of it
    expect(calls.take("ns/fast", "cleanup", async () => "ok", { timeoutMs: 1000 }).state).toBe("pending");
    await flush();
    expect(calls.take("ns/fast", "cleanup", async () => "ok", { timeoutMs: 1000 })).toEqual({
      state: "done",
      value: "ok",
    });
  });

  it("reports a rejection as failed and forgets a deleted run's calls", async () => {
    const calls = new BackgroundCalls({ onSettled: () => {}, timers: new ManualTimers() });
    const boom = new Error("refused");
    calls.take(
      "ns/a",
      "topics",
      async () => {
        throw boom;
      },
      { timeoutMs: 10 },
    );
    await flush();
    expect(calls.take("ns/a", "topics", async () => 1, { timeoutMs: 10 })).toEqual({
      state: "failed",
      error: boom,
    });
    let signal: AbortSignal | undefined;
    calls.take(
      "ns/a",
      "events",
      (s) => {
        signal = s;
        return new Promise(() => {});
      },
      { timeoutMs: 10 },
    );
    await flush();
    calls.forgetRun("ns/a");
    expect(signal?.aborted).toBe(true);
    expect(calls.has("ns/a", "events")).toBe(false);
  });
});
