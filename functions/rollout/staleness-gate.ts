/**
 * Bounded off-policyness (AReaL's `max_head_offpolicyness`): rollouts may lag the learner by at
 * most `maxStaleness` policy versions. A learner at version v consumes `promptsPerStep` accepted
 * groups per step, so the groups produced so far must not exceed
 * `(v + maxStaleness + 1) * promptsPerStep`; past that, every further group would be trained on
 * by a learner more than `maxStaleness` versions ahead of the policy that generated it. The rollout
 * function waits on this gate instead of producing stale data (its consumption pauses meanwhile).
 */
export interface StalenessGateOptions {
  maxStaleness: number;
  promptsPerStep: number;
  /** accepted groups already produced (after a restart: counted from the rollout log) */
  produced?: number;
  /** newest learner version known (after a restart: from the latest status event) */
  learnerVersion?: number;
}

export class StalenessGate {
  readonly #maxStaleness: number;
  readonly #promptsPerStep: number;
  #produced: number;
  #learnerVersion: number;
  /** capacity held by questions being sampled now (see reserve) */
  #reserved = 0;
  #waiters: (() => void)[] = [];

  constructor(options: StalenessGateOptions) {
    this.#maxStaleness = options.maxStaleness;
    this.#promptsPerStep = options.promptsPerStep;
    this.#produced = options.produced ?? 0;
    this.#learnerVersion = options.learnerVersion ?? 0;
  }

  get produced(): number {
    return this.#produced;
  }

  get learnerVersion(): number {
    return this.#learnerVersion;
  }

  /** groups that may still be produced before the learner advances (less those reserved) */
  get capacity(): number {
    return Math.max(
      0,
      (this.#learnerVersion + this.#maxStaleness + 1) * this.#promptsPerStep -
        this.#produced -
        this.#reserved,
    );
  }

  /** questions waiting for capacity now */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** the oldest policy version a rollout may be generated with now */
  get oldestAllowedVersion(): number {
    return Math.max(0, this.#learnerVersion - this.#maxStaleness);
  }

  /** resolves when one more group may be produced; rejects when `signal` aborts */
  async waitForCapacity(signal?: AbortSignal): Promise<void> {
    while (this.capacity <= 0) await this.#wait(signal);
  }

  /**
   * Waits for capacity and holds one group of it until the returned release is called (after
   * `recordProduced` when the group counts): questions sampled concurrently cannot overshoot the
   * bound together. Release on every path, also when sampling fails.
   */
  async reserve(signal?: AbortSignal): Promise<() => void> {
    // the check and the hold happen in one synchronous step
    while (this.capacity <= 0) await this.#wait(signal);
    this.#reserved++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#reserved--;
      this.#wake();
    };
  }

  #wait(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal?.reason ?? new Error("aborted"));
      this.#waiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  /** an accepted group was produced */
  recordProduced(count = 1): void {
    this.#produced += count;
  }

  /** the learner reached `version` (older or repeated reports are ignored) */
  observeLearner(version: number): void {
    if (version <= this.#learnerVersion) return;
    this.#learnerVersion = version;
    this.#wake();
  }
}
