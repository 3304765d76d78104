/** Timers enter as a parameter so tests can drive the queue without waiting. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms);
    handle.unref?.();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export interface WorkQueueOptions {
  /** first retry delay of a failing key; doubles per consecutive failure */
  baseDelayMs?: number;
  maxDelayMs?: number;
  timers?: Timers;
}

/**
 * A per-key work queue in the manner of client-go's: a key is queued at most once, never handed to two
 * workers at the same time (a key added while it is being processed is queued again when it is done),
 * and failing keys come back after an exponential per-key backoff until `forget` resets it.
 */
export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #delayed = new Map<string, { handle: unknown; at: number }>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #timers: Timers;
  #closed = false;

  constructor(options: WorkQueueOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 100;
    this.#maxDelayMs = options.maxDelayMs ?? 300_000;
    this.#timers = options.timers ?? realTimers;
  }

  /** keys waiting to be processed (excludes delayed and in-flight keys) */
  get depth(): number {
    return this.#queue.length;
  }

  add(key: string): void {
    if (this.#closed) return;
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#queued.delete(key);
      this.#processing.add(key);
      waiter(key);
      return;
    }
    this.#queue.push(key);
  }

  /** adds the key after `ms`; an earlier pending delay for the same key wins */
  addAfter(key: string, ms: number, now = Date.now()): void {
    if (this.#closed) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const at = now + ms;
    const pending = this.#delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) this.#timers.clearTimeout(pending.handle);
    const handle = this.#timers.setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    this.#delayed.set(key, { handle, at });
  }

  /** requeues after the key's backoff (base × 2^failures, capped) and counts a failure */
  addRateLimited(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    const delay = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** failures);
    this.addAfter(key, delay);
    return delay;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** the next key to process, waiting for one; undefined once the queue is shut down */
  async get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      return key;
    }
    if (this.#closed) return undefined;
    return await new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** marks the key as processed; if it was added meanwhile it goes back in the queue */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  shutDown(): void {
    this.#closed = true;
    for (const { handle } of this.#delayed.values()) this.#timers.clearTimeout(handle);
    this.#delayed.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }
}
