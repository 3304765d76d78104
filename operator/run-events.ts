import type { Bus, Consumer } from "../functions/runtime/bus.ts";
import { parseBinaryMessage } from "../functions/runtime/cloudevents.ts";
import { foldRunEvent, type RunProgress } from "./run-progress.ts";

export interface RunEventSource {
  bus: Bus;
  /** the run's status, checkpoints and evaluations topics */
  topics: readonly string[];
  groupId: string;
  /** progress already recorded in `.status` (the fold resumes from it) */
  seed: RunProgress;
}

interface Tracked {
  progress: RunProgress;
  consumer: Consumer;
}

/**
 * Consumes each run's result topics and keeps the folded progress per run key; calls `onChange` with
 * the key whenever an event changes it, so the controller reconciles and writes the status.
 */
export class RunEventTracker {
  readonly #runs = new Map<string, Tracked>();
  readonly #onChange: (key: string) => void;
  readonly #onError: (key: string, error: unknown) => void;

  constructor(onChange: (key: string) => void, onError: (key: string, error: unknown) => void = () => {}) {
    this.#onChange = onChange;
    this.#onError = onError;
  }

  /** starts consuming the run's events if not already; returns the progress folded so far */
  async ensure(key: string, source: RunEventSource): Promise<RunProgress> {
    const tracked = this.#runs.get(key);
    if (tracked) return tracked.progress;
    const consumer = source.bus.consumer({
      groupId: source.groupId,
      topics: source.topics,
      fromBeginning: true,
      // never committed: a committed offset would vouch for progress that reaches `.status` only at
      // the next reconcile, and a leader that dies in between (or hands over gracefully, which
      // commits) would leave its successor past events nobody wrote down; the run then stayed
      // Running at its last written step. Every tracker replays the run's events instead (the fold
      // is monotonic and starts from `.status`).
      commitOffsets: false,
    });
    const entry: Tracked = { progress: source.seed, consumer };
    this.#runs.set(key, entry);
    consumer.done.catch((error: unknown) => {
      // a consumer that stopped on an error is dropped; the next reconcile starts a fresh one
      if (this.#runs.get(key) === entry) this.#runs.delete(key);
      this.#onError(key, error);
    });
    try {
      await consumer.run(async (message) => {
        const parsed = parseBinaryMessage(message);
        if (!parsed.ok) return; // not ours to dead-letter: the producer's runtime validated it
        const next = foldRunEvent(entry.progress, parsed.value);
        if (next !== entry.progress) {
          entry.progress = next;
          this.#onChange(key);
        }
      });
    } catch (error) {
      // could not join: the next reconcile tries again with a fresh consumer
      if (this.#runs.get(key) === entry) this.#runs.delete(key);
      await consumer.stop().catch(() => {});
      throw error;
    }
    return entry.progress;
  }

  /** true while a consumer of the run's events exists (joining or joined) */
  tracking(key: string): boolean {
    return this.#runs.has(key);
  }

  progress(key: string): RunProgress | undefined {
    return this.#runs.get(key)?.progress;
  }

  async stop(key: string): Promise<void> {
    const tracked = this.#runs.get(key);
    if (!tracked) return;
    this.#runs.delete(key);
    await tracked.consumer.stop();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#runs.keys()].map((key) => this.stop(key)));
  }
}
