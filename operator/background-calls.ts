import { realTimers, type Timers } from "./work-queue.ts";

/** No answer within the call's time budget: its AbortSignal has fired. */
export class CallTimeoutError extends Error {
  override readonly name = "CallTimeoutError";
}

export type CallOutcome<T> =
  | { state: "pending"; sinceMs: number }
  | { state: "done"; value: T }
  | { state: "failed"; error: unknown };

interface Entry {
  startedAt: number;
  /** the first of: the call's own result, its timeout */
  settled: boolean;
  /** the settled outcome until `take` hands it out */
  outcome?: { state: "done"; value: unknown } | { state: "failed"; error: unknown } | undefined;
  /** the call itself is still running (it may outlive its timeout when it ignores the signal) */
  running: boolean;
  abort: AbortController;
}

export interface BackgroundCallsOptions {
  /** told the run key when a call that asked for it settles, so the run is reconciled again */
  onSettled: (runKey: string) => void;
  now?: () => number;
  timers?: Timers;
}

/**
 * Calls to systems a run names (its Kafka brokers, its object store) run here, off the reconcile
 * workers: a reconcile starts a call and takes its outcome on a later pass, so a call that hangs
 * holds up its own run only, never the queue. Every call gets an AbortSignal that fires after its
 * time budget; the outcome is then a `CallTimeoutError` even if the call ignores the signal, and no
 * second call of the same id starts until the first has really ended.
 */
export class BackgroundCalls {
  readonly #entries = new Map<string, Entry>();
  readonly #onSettled: (runKey: string) => void;
  readonly #now: () => number;
  readonly #timers: Timers;

  constructor(options: BackgroundCallsOptions) {
    this.#onSettled = options.onSettled;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? realTimers;
  }

  /**
   * The settled outcome of the run's call `id` (taken: the next `take` starts a new call), or
   * "pending" after starting it when it is not running yet.
   */
  take<T>(
    runKey: string,
    id: string,
    call: (signal: AbortSignal) => Promise<T>,
    options: { timeoutMs: number; notify?: boolean },
  ): CallOutcome<T> {
    const key = `${runKey}\n${id}`;
    const entry = this.#entries.get(key);
    if (entry?.outcome) {
      const outcome = entry.outcome;
      entry.outcome = undefined;
      if (!entry.running) this.#entries.delete(key);
      return outcome as CallOutcome<T>;
    }
    if (entry) return { state: "pending", sinceMs: entry.startedAt };
    const started: Entry = {
      startedAt: this.#now(),
      settled: false,
      running: true,
      abort: new AbortController(),
    };
    this.#entries.set(key, started);
    const settle = (outcome: NonNullable<Entry["outcome"]>) => {
      if (started.settled || this.#entries.get(key) !== started) return;
      started.settled = true;
      started.outcome = outcome;
      if (options.notify !== false) this.#onSettled(runKey);
    };
    const timer = this.#timers.setTimeout(() => {
      started.abort.abort(new CallTimeoutError(`${id}: no answer within ${options.timeoutMs} ms`));
      settle({ state: "failed", error: started.abort.signal.reason });
    }, options.timeoutMs);
    const finish = (outcome: NonNullable<Entry["outcome"]>) => {
      this.#timers.clearTimeout(timer);
      settle(outcome);
      started.running = false;
      // a timed-out call whose outcome was taken already: nothing is left to hand out
      if (started.outcome === undefined && this.#entries.get(key) === started) this.#entries.delete(key);
    };
    let running: Promise<T>;
    try {
      running = Promise.resolve(call(started.abort.signal));
    } catch (error) {
      running = Promise.reject(error);
    }
    running.then(
      (value) => finish({ state: "done", value }),
      (error: unknown) => finish({ state: "failed", error }),
    );
    return { state: "pending", sinceMs: started.startedAt };
  }

  /** true while the run's call `id` runs or its outcome waits to be taken */
  has(runKey: string, id: string): boolean {
    return this.#entries.has(`${runKey}\n${id}`);
  }

  /** aborts and forgets every call of the run (it was deleted) */
  forgetRun(runKey: string): void {
    for (const [key, entry] of this.#entries) {
      if (!key.startsWith(`${runKey}\n`)) continue;
      entry.abort.abort(new CallTimeoutError("the run is gone"));
      this.#entries.delete(key);
    }
  }

  /** calls still running, timed out or not (for tests and metrics) */
  get running(): number {
    let count = 0;
    for (const entry of this.#entries.values()) if (entry.running) count++;
    return count;
  }
}
