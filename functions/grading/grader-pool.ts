import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { GradeRequest } from "./grader-worker.ts";
import { DEFAULT_REWARD_SCALE, type GradeResult } from "./reward.ts";

export interface GraderPoolOptions {
  /** worker threads (default: cores - 1, at least 1, at most 8) */
  size?: number;
  /** hard bound per check, measured from dispatch; a worker past it is terminated and replaced (default 2000 ms) */
  checkTimeoutMs?: number;
  /** in-thread budget handed to each check, below the hard bound (default 1000 ms) */
  softTimeoutMs?: number;
  /** reward for a correct answer (default 5) */
  scale?: number;
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
  /** the worker posted "ready": its module is loaded, so check timers measure grading only */
  ready: boolean;
  task?: Task;
  timer?: NodeJS.Timeout;
}

const WORKER_URL = new URL("./grader-worker-entry.mjs", import.meta.url);

/** workers that crash this many times in a row (e.g. cannot load) stop being replaced */
const MAX_CRASH_STREAK = 5;
/** a worker that has not loaded its module by then counts as crashed */
const WORKER_STARTUP_MS = 30_000;

/**
 * Grades responses in worker threads so a pathological check can never block the caller's event
 * loop: each check has a hard timeout after which its worker is terminated and replaced, and the
 * check resolves as `timeout` with reward 0. Results never reject for grading reasons.
 */
export class GraderPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private readonly checkTimeoutMs: number;
  private readonly softTimeoutMs: number;
  private readonly scale: number;
  private readonly workerUrl: URL;
  private nextId = 0;
  private closed = false;
  private crashStreak = 0;

  constructor(options: GraderPoolOptions = {}) {
    const size = options.size ?? Math.min(8, Math.max(1, availableParallelism() - 1));
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`GraderPool size must be a positive integer, got ${size}`);
    this.checkTimeoutMs = options.checkTimeoutMs ?? 2000;
    this.softTimeoutMs = options.softTimeoutMs ?? Math.min(1000, this.checkTimeoutMs / 2);
    this.scale = options.scale ?? DEFAULT_REWARD_SCALE;
    this.workerUrl = options.workerUrl ?? WORKER_URL;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  /** grades one response; resolves with the same result as gradeResponse, or a timeout result */
  grade(gold: string, response: string, scale: number = this.scale): Promise<GradeResult> {
    if (this.closed) return Promise.reject(new Error("GraderPool is closed"));
    if (typeof gold !== "string" || typeof response !== "string") {
      return Promise.resolve({
        reward: 0,
        equal: false,
        extracted: null,
        reason: "parse_error",
        detail: "gold and response must be strings",
      });
    }
    return new Promise<GradeResult>((resolve, reject) => {
      const request: GradeRequest = { id: this.nextId++, gold, response, scale, timeoutMs: this.softTimeoutMs };
      this.queue.push({ request, resolve, reject });
      this.pump();
    });
  }

  /** terminates every worker; checks still queued or running reject */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const error = new Error("GraderPool closed before the check finished");
    for (const task of this.queue.splice(0)) task.reject(error);
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.timer) clearTimeout(slot.timer);
        slot.task?.reject(error);
        delete slot.task;
        await slot.worker.terminate();
      }),
    );
  }

  private spawn(): Slot {
    // the worker module is TypeScript: its JavaScript entry loads it through tsx's API
    const worker = new Worker(this.workerUrl);
    worker.unref();
    const slot: Slot = { worker, ready: false };
    const startup = setTimeout(() => {
      if (slot.ready) return;
      this.crashStreak++;
      this.replace(slot, { detail: `worker not ready after ${WORKER_STARTUP_MS} ms`, reason: "parse_error" });
    }, WORKER_STARTUP_MS);
    startup.unref();
    slot.worker.on("message", (message: { ready?: true; id?: number; result?: GradeResult; error?: string }) => {
      if (message.ready) {
        clearTimeout(startup);
        slot.ready = true;
        this.pump();
        return;
      }
      const task = slot.task;
      if (!task || task.request.id !== message.id) return;
      this.crashStreak = 0;
      this.finish(slot);
      if (message.result) task.resolve(message.result);
      else task.reject(new Error(message.error ?? "grader worker sent no result"));
      this.pump();
    });
    slot.worker.on("error", (error) => {
      this.crashStreak++;
      this.replace(slot, { detail: `worker crashed: ${error.message}`, reason: "parse_error" });
    });
    slot.worker.on("exit", () => {
      if (!this.closed && this.slots.includes(slot)) this.replace(slot, { detail: "worker exited", reason: "parse_error" });
    });
    return slot;
  }

  private finish(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    delete slot.timer;
    delete slot.task;
    slot.worker.unref();
  }

  /** ends the slot's running check with `outcome` and puts a fresh worker in its place */
  private replace(slot: Slot, outcome: { reason: "timeout" | "parse_error"; detail: string }): void {
    const index = this.slots.indexOf(slot);
    if (index < 0) return;
    const task = slot.task;
    this.finish(slot);
    void slot.worker.terminate();
    if (this.closed) return;
    if (this.crashStreak >= MAX_CRASH_STREAK) {
      // workers cannot start: fail loudly instead of respawning forever
      this.slots.splice(index, 1);
      task?.reject(new Error(`grader workers keep crashing: ${outcome.detail}`));
      if (this.slots.length === 0) {
        for (const queued of this.queue.splice(0)) queued.reject(new Error(`grader workers keep crashing: ${outcome.detail}`));
      }
      return;
    }
    this.slots[index] = this.spawn();
    task?.resolve({ reward: 0, equal: false, extracted: null, reason: outcome.reason, detail: outcome.detail });
    this.pump();
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.task || !slot.ready) continue;
      const task = this.queue.shift()!;
      slot.task = task;
      slot.worker.ref();
      slot.timer = setTimeout(
        () => this.replace(slot, { reason: "timeout", detail: `check exceeded ${this.checkTimeoutMs} ms` }),
        this.checkTimeoutMs,
      );
      slot.worker.postMessage(task.request);
    }
  }
}
