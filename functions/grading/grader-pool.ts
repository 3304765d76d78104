import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { DEFAULT_REWARD_MODE, type GradingMode } from "../contracts/grading-mode.ts";
import {
  type GradeRequest,
  IDLE,
  PROGRESS_CURRENT,
  PROGRESS_STARTED_MS,
  PROGRESS_WORDS,
} from "./grader-worker.ts";
import { DEFAULT_REWARD_SCALE, type GradeResult } from "./reward.ts";

export interface GraderPoolOptions {
  /** worker threads (default: cores - 1, at least 1, at most 8) */
  size?: number;
  /** hard bound per check, measured from its start; a worker past it is terminated and replaced (default 2000 ms) */
  checkTimeoutMs?: number;
  /** in-thread budget handed to each check, below the hard bound (default 1000 ms) */
  softTimeoutMs?: number;
  /** reward for a correct answer (default 5) */
  scale?: number;
  /** strict (default, the RL reward) or lenient, for checks that do not name one */
  mode?: GradingMode;
  /** most checks sent to a worker in one message (default 64) */
  maxBatch?: number;
  /** worker entry module (default: the grading worker); tests pass a fixture */
  workerUrl?: URL;
}

interface Task {
  request: GradeRequest;
  resolve: (result: GradeResult) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  /** shared words the worker updates as it starts each check (see grader-worker.ts) */
  progress: Int32Array;
  base: number;
  /** the worker posted "ready": its module is loaded, so check timers measure grading only */
  ready: boolean;
  /** checks sent and not answered yet, in the order the worker runs them */
  inFlight: Task[];
}

interface WorkerMessage {
  ready?: true;
  results?: Array<{ id: number; result: GradeResult }>;
  error?: string;
}

const WORKER_URL = new URL("./grader-worker-entry.mjs", import.meta.url);

/** workers that crash this many times in a row (e.g. cannot load) stop being replaced */
const MAX_CRASH_STREAK = 5;
/** a worker that has not loaded its module by then counts as crashed */
const WORKER_STARTUP_MS = 30_000;

/**
 * Grades responses in worker threads so a pathological check can never block the caller's event
 * loop: each check has a hard timeout from the moment its worker reaches it, after which the
 * worker is terminated and replaced and the check resolves as `timeout` with reward 0 (checks
 * queued behind it are re-sent). Results never reject for grading reasons.
 */
export class GraderPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private readonly checkTimeoutMs: number;
  private readonly softTimeoutMs: number;
  private readonly scale: number;
  private readonly mode: GradingMode;
  private readonly maxBatch: number;
  private readonly workerUrl: URL;
  private nextId = 0;
  private closed = false;
  private crashStreak = 0;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(options: GraderPoolOptions = {}) {
    const size = options.size ?? Math.min(8, Math.max(1, availableParallelism() - 1));
    if (!Number.isInteger(size) || size < 1)
      throw new RangeError(`GraderPool size must be a positive integer, got ${size}`);
    this.checkTimeoutMs = options.checkTimeoutMs ?? 2000;
    this.softTimeoutMs = options.softTimeoutMs ?? Math.min(1000, this.checkTimeoutMs / 2);
    this.scale = options.scale ?? DEFAULT_REWARD_SCALE;
    this.mode = options.mode ?? DEFAULT_REWARD_MODE;
    this.maxBatch = Math.max(1, options.maxBatch ?? 64);
    this.workerUrl = options.workerUrl ?? WORKER_URL;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /**
   * grades one response; resolves with the same result as gradeResponse, or a timeout result.
   * `options` may be the scale alone, as before modes existed.
   */
  grade(
    gold: string,
    response: string,
    options: number | { scale?: number; mode?: GradingMode } = {},
  ): Promise<GradeResult> {
    const scale = typeof options === "number" ? options : (options.scale ?? this.scale);
    const mode = typeof options === "number" ? this.mode : (options.mode ?? this.mode);
    if (this.closed) return Promise.reject(new Error("GraderPool is closed"));
    if (typeof gold !== "string" || typeof response !== "string") {
      return Promise.resolve({
        reward: 0,
        equal: false,
        extracted: null,
        reason: "parse_error",
        mode,
        detail: "gold and response must be strings",
      });
    }
    return new Promise<GradeResult>((resolve, reject) => {
      const request: GradeRequest = {
        id: this.nextId,
        gold,
        response,
        scale,
        mode,
        timeoutMs: this.softTimeoutMs,
      };
      this.nextId = (this.nextId + 1) % 0x7fffffff;
      this.queue.push({ request, resolve, reject });
      if (this.queue.length === 1) {
        this.holdProcess(true);
        queueMicrotask(() => this.pump());
      }
    });
  }

  /** terminates every worker; checks still queued or running reject */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.watchdog) clearInterval(this.watchdog);
    const error = new Error("GraderPool closed before the check finished");
    for (const task of this.queue.splice(0)) task.reject(error);
    await Promise.all(
      this.slots.map(async (slot) => {
        for (const task of slot.inFlight.splice(0)) task.reject(error);
        await slot.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    // the worker module is TypeScript: its JavaScript entry loads it through tsx's API
    const progress = new SharedArrayBuffer(PROGRESS_WORDS * Int32Array.BYTES_PER_ELEMENT);
    const base = Date.now();
    // execArgv: [] so flags of the parent (--input-type, --eval) cannot break the worker's start
    const worker = new Worker(this.workerUrl, { workerData: { progress, base }, execArgv: [] });
    worker.unref();
    const slot: Slot = { worker, progress: new Int32Array(progress), base, ready: false, inFlight: [] };
    Atomics.store(slot.progress, PROGRESS_CURRENT, IDLE);
    const startup = setTimeout(() => {
      if (slot.ready) return;
      this.crashStreak++;
      this.replace(slot, { detail: `worker not ready after ${WORKER_STARTUP_MS} ms`, reason: "parse_error" });
    }, WORKER_STARTUP_MS);
    startup.unref();
    worker.on("message", (message: WorkerMessage) => this.onMessage(slot, message, startup));
    worker.on("error", (error) => {
      this.crashStreak++;
      this.replace(slot, { detail: `worker crashed: ${error.message}`, reason: "parse_error" });
    });
    worker.on("exit", () => {
      if (!this.closed && this.slots.includes(slot))
        this.replace(slot, { detail: "worker exited", reason: "parse_error" });
    });
    return slot;
  }

  private onMessage(slot: Slot, message: WorkerMessage, startup: NodeJS.Timeout): void {
    if (message.ready) {
      clearTimeout(startup);
      slot.ready = true;
      this.pump();
      return;
    }
    if (message.error) {
      const task = slot.inFlight.shift();
      task?.reject(new Error(message.error));
    }
    for (const { id, result } of message.results ?? []) {
      const task = slot.inFlight[0];
      if (!task || task.request.id !== id) continue;
      slot.inFlight.shift();
      this.crashStreak = 0;
      task.resolve(result);
    }
    if (slot.inFlight.length === 0) {
      this.pump();
      if (this.queue.length === 0 && this.slots.every((x) => x.inFlight.length === 0))
        this.holdProcess(false);
    }
  }

  /** workers keep the process alive exactly while checks are queued or running */
  private holdProcess(hold: boolean): void {
    for (const slot of this.slots) {
      if (hold) slot.worker.ref();
      else slot.worker.unref();
    }
  }

  /** one interval for the pool while any check runs: kills a worker whose current check is over time */
  private ensureWatchdog(): void {
    if (this.watchdog) return;
    const period = Math.max(5, Math.min(250, this.checkTimeoutMs / 4));
    this.watchdog = setInterval(() => {
      let busy = false;
      for (const slot of [...this.slots]) {
        if (slot.inFlight.length === 0) continue;
        busy = true;
        const current = Atomics.load(slot.progress, PROGRESS_CURRENT);
        if (current === IDLE) continue;
        const startedAt = slot.base + Atomics.load(slot.progress, PROGRESS_STARTED_MS);
        if (Date.now() - startedAt > this.checkTimeoutMs) {
          this.replace(
            slot,
            { reason: "timeout", detail: `check exceeded ${this.checkTimeoutMs} ms` },
            current,
          );
        }
      }
      if (!busy && this.watchdog) {
        clearInterval(this.watchdog);
        this.watchdog = undefined;
      }
    }, period);
    this.watchdog.unref();
  }

  /**
   * Ends the slot's running check (`currentId`, else the first unanswered one) with `outcome`,
   * re-queues the rest of its batch and replaces the worker.
   */
  private replace(
    slot: Slot,
    outcome: { reason: "timeout" | "parse_error"; detail: string },
    currentId?: number,
  ): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    const tasks = slot.inFlight.splice(0);
    const at =
      currentId === undefined
        ? 0
        : Math.max(
            0,
            tasks.findIndex((t) => t.request.id === currentId),
          );
    const [current] = tasks.splice(at, 1);
    this.queue.unshift(...tasks);
    void slot.worker.terminate();
    if (this.closed) return;
    if (this.crashStreak >= MAX_CRASH_STREAK) {
      // workers cannot start: fail loudly instead of respawning forever
      const error = new Error(`grader workers keep crashing: ${outcome.detail}`);
      this.slots.splice(index, 1);
      current?.reject(error);
      if (this.slots.length === 0) for (const queued of this.queue.splice(0)) queued.reject(error);
      return;
    }
    this.slots[index] = this.spawn();
    if (this.queue.length > 0) this.holdProcess(true);
    current?.resolve({
      reward: 0,
      equal: false,
      extracted: null,
      reason: outcome.reason,
      mode: current.request.mode,
      detail: outcome.detail,
    });
    this.pump();
  }

  private pump(): void {
    if (this.closed) return;
    const idle = this.slots.filter((s) => s.ready && s.inFlight.length === 0);
    for (const [n, slot] of idle.entries()) {
      if (this.queue.length === 0) return;
      // share the queue evenly among idle workers, in batches of at most maxBatch
      const take = Math.min(this.maxBatch, Math.ceil(this.queue.length / (idle.length - n)));
      const batch = this.queue.splice(0, take);
      slot.inFlight = batch;
      slot.worker.postMessage({ batch: batch.map((t) => t.request) });
      this.ensureWatchdog();
    }
  }
}
