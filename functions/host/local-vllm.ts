/**
 * The local vLLM server's life: started, waited for (its /health) with progress for the user,
 * started again when it dies mid-run, stopped at the end. A server that keeps dying soon after its
 * start fails the run. The processes themselves come in as a parameter (vllm-process.ts starts
 * real ones; the unit tests fake them), and so do the clock and the health probe.
 */
import type { ServerProcess } from "./server-process.ts";

export interface LocalVllmOptions {
  /** starts server process number `start` (1 for the first) on the same port and folder */
  launch: (start: number) => ServerProcess;
  /** whether the server answers /health now */
  healthy: () => Promise<boolean>;
  /** a line for the user */
  say: (text: string) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** aborts the first start (Ctrl-C while the server loads) */
  signal?: AbortSignal;
  /** how long a start may take before it counts as failed; default 15 minutes */
  startTimeoutMs?: number;
  /** a "still starting" line this often; default 15 s */
  progressEveryMs?: number;
  /** starts in a row that die before being healthy for `healthyRunMs`, before the run fails; default 3 */
  maxRestarts?: number;
  /** a server that answered this long was not crash-looping; default 60 s */
  healthyRunMs?: number;
}

export interface LocalVllmStats {
  /** seconds from the first launch to its first healthy answer */
  startSeconds: number;
  restarts: number;
}

const POLL_MS = 250;

/** The local server did not start, or keeps dying: the run stops (its state is safe; a rerun resumes). */
export class LocalVllmFailed extends Error {
  override readonly name = "LocalVllmFailed";
}

/** See the module comment. */
export class LocalVllm {
  readonly #o: LocalVllmOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #process: ServerProcess;
  #starts = 1;
  #restarts = 0;
  #quickDeaths = 0;
  #startSeconds = 0;
  #stopping = false;
  #fail: (error: Error) => void = () => {};
  /** settles (never rejects) when the server keeps dying: the run should stop */
  readonly failed: Promise<Error>;

  private constructor(options: LocalVllmOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.failed = new Promise((resolve) => {
      this.#fail = resolve;
    });
    this.#process = options.launch(1);
  }

  /** launches the server and waits until it is healthy; a failed start stops it and throws */
  static async start(options: LocalVllmOptions): Promise<LocalVllm> {
    const server = new LocalVllm(options);
    const started = server.#now();
    try {
      await server.#untilHealthy(server.#process, options.signal);
    } catch (error) {
      await server.stop();
      if (options.signal?.aborted) throw error;
      throw new LocalVllmFailed(
        `vLLM: the local server did not start: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    }
    server.#startSeconds = (server.#now() - started) / 1000;
    options.say(`vLLM: the server is ready (${Math.round(server.#startSeconds)} s)`);
    server.#supervise(server.#process, server.#now());
    return server;
  }

  get stats(): LocalVllmStats {
    return { startSeconds: this.#startSeconds, restarts: this.#restarts };
  }

  /** the current process's log */
  get logFile(): string {
    return this.#process.logFile;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#process.stop();
  }

  /** polls /health until it answers, telling the user every so often; throws when the process exits */
  async #untilHealthy(process: ServerProcess, signal?: AbortSignal): Promise<void> {
    const started = this.#now();
    const timeoutMs = this.#o.startTimeoutMs ?? 15 * 60_000;
    const everyMs = this.#o.progressEveryMs ?? 15_000;
    let told = started;
    let exited: Error | undefined;
    process.exited.catch((error: unknown) => {
      exited = error instanceof Error ? error : new Error(String(error));
    });
    for (;;) {
      if (exited) throw exited;
      signal?.throwIfAborted();
      if (this.#stopping) throw new Error("vLLM: stopped while starting");
      if (await this.#o.healthy().catch(() => false)) return;
      const now = this.#now();
      if (now - started > timeoutMs) {
        throw new Error(
          `vLLM: the server did not answer /health within ${Math.round(timeoutMs / 1000)} s; log: ${process.logFile}`,
        );
      }
      if (now - told >= everyMs) {
        told = now;
        this.#o.say(`vLLM: still starting (${Math.round((now - started) / 1000)} s)`);
      }
      await this.#sleep(POLL_MS);
    }
  }

  /** when `process` dies unasked, starts the next one (after a pause that grows with quick deaths) */
  #supervise(process: ServerProcess, healthySince: number): void {
    process.exited.catch(async (error: unknown) => {
      if (this.#stopping) return;
      const ranMs = this.#now() - healthySince;
      if (ranMs >= (this.#o.healthyRunMs ?? 60_000)) this.#quickDeaths = 0;
      this.#quickDeaths++;
      const why = (error instanceof Error ? error.message : String(error)).split("\n")[0];
      if (this.#quickDeaths > (this.#o.maxRestarts ?? 3)) {
        this.#fail(
          new LocalVllmFailed(
            `vLLM: the local server keeps exiting (${why}); gave up after ${this.#restarts} restart(s); log: ${process.logFile}`,
          ),
        );
        return;
      }
      this.#o.say(`vLLM: the server exited (${why}); starting it again`);
      await this.#sleep(Math.min(30_000, 1000 * 2 ** (this.#quickDeaths - 1)));
      if (this.#stopping) return;
      this.#restarts++;
      const next = this.#o.launch(++this.#starts);
      this.#process = next;
      try {
        await this.#untilHealthy(next);
      } catch {
        // a start that hangs is stopped; either way its exit counts as a quick death below
        await next.stop();
        if (!this.#stopping) this.#supervise(next, this.#now());
        return;
      }
      this.#o.say(`vLLM: the server is back (start ${this.#starts})`);
      this.#supervise(next, this.#now());
    });
  }
}
