import { startHealthServer } from "./health-server.ts";
import type { FunctionRunner } from "./runner.ts";

export interface ServeOptions {
  /** health and metrics port; default 0 (a free port) */
  port?: number;
  /** default 127.0.0.1 */
  host?: string;
  /** resolves when the process should drain and exit; default SIGTERM or SIGINT */
  shutdown?: Promise<unknown>;
  /** told the health server's URL once it listens */
  onListening?: (url: string) => void;
}

/**
 * Runs a bound function as a process does: health server up, consumer started, then waits for the
 * shutdown signal (drain, exit 0) or a consumer failure (exit 1). `main.ts` of each function calls
 * this and passes the result to `process.exitCode`.
 */
export async function serveFunction<Services>(
  runner: FunctionRunner<Services>,
  options: ServeOptions = {},
): Promise<number> {
  const server = await startHealthServer({
    registry: runner.metrics.registry,
    isReady: () => runner.ready(),
    ...(options.host === undefined ? {} : { host: options.host }),
    ...(options.port === undefined ? {} : { port: options.port }),
  });
  options.onListening?.(server.url);
  const shutdown = options.shutdown ?? processShutdown();
  try {
    try {
      await runner.start();
    } catch (error) {
      await runner.stop();
      throw error;
    }
    const outcome = await Promise.race([
      shutdown.then(() => "shutdown" as const),
      runner.done.then(
        () => "stopped" as const,
        () => "failed" as const,
      ),
    ]);
    if (outcome === "shutdown") await runner.stop();
    return outcome === "failed" ? 1 : 0;
  } finally {
    await server.close();
  }
}

function processShutdown(): Promise<void> {
  return new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
  });
}
