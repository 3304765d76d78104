import type { Logger } from "../runtime/logger.ts";

export interface PeriodicTask {
  /** no more runs; resolves once the one in progress (if any) settled */
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs` in the background, never two at once (a slow run skips ticks).
 * A failing task is logged once when it starts failing (`failing`) and once when it works again
 * (`recovered`, with how long it failed), not at every tick: the followers of the learner's
 * progress and of the vLLM servers fail for minutes while a store or a server restarts.
 */
export function repeatInBackground(
  task: () => Promise<unknown>,
  options: { intervalMs: number; logger: Logger; failing: string; recovered: string },
): PeriodicTask {
  const { logger } = options;
  let failingSince: number | undefined;
  let running: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (running) return;
    running = task().then(
      () => {
        if (failingSince === undefined) return;
        logger.info({ seconds: Math.round((Date.now() - failingSince) / 1000) }, options.recovered);
        failingSince = undefined;
      },
      (error: unknown) => {
        if (failingSince !== undefined) return;
        failingSince = Date.now();
        logger.warn({ err: error }, options.failing);
      },
    );
    void running.finally(() => {
      running = undefined;
    });
  }, options.intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
