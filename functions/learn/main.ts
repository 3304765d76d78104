/**
 * The learn function's process (a pod in the cluster): the only place that reads the environment
 * and builds clients for it. It also owns the run's start: the initial checkpoint (warm start or
 * copy, once) and the start events (once, behind a marker object).
 */
import {
  type FunctionMainOptions,
  type FunctionProcess,
  openFunctionProcess,
  whileStarting,
} from "../pipeline/function-process.ts";
import { ensureInitialCheckpoint, openLearner, publishStartEvents } from "../pipeline/function-services.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import { learnFunction } from "./handler.ts";

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const proc = await openFunctionProcess("learn", env);
  try {
    return await serveLearn(proc, options);
  } finally {
    await proc.close();
  }
}

async function serveLearn(proc: FunctionProcess, options: FunctionMainOptions): Promise<number> {
  const { store, keys, run, bus, logger } = proc;
  const spec = proc.resource.spec;
  const initial = await whileStarting(proc.settings, () =>
    ensureInitialCheckpoint({
      spec,
      store,
      keys,
      open: proc.open,
      ...(proc.settings.QUESTA_CACHE_DIR === undefined ? {} : { cacheDir: proc.settings.QUESTA_CACHE_DIR }),
      onWarmStart: (progress, cached) => {
        if (cached || progress.step === progress.steps)
          logger.info({ ...progress, cached }, "warm start done");
      },
    }),
  );
  const { learner, engine } = await openLearner({ run, spec, store, keys });
  try {
    const published = await publishStartEvents({
      bus,
      store,
      keys,
      run,
      topicPrefix: proc.topicPrefix,
      learner,
      initial,
      source: "learn",
      ensureTopics: true,
    });
    logger.info(
      { step: learner.step, pending: learner.pendingCount, announced: published },
      "learner opened",
    );
    const runner = bindFunction(learnFunction, { ...proc.bindOptions, services: { learner } });
    return await serveFunction(runner, {
      port: proc.settings.QUESTA_METRICS_PORT,
      host: proc.settings.QUESTA_METRICS_HOST,
      ...options,
    });
  } finally {
    await engine.dispose();
  }
}
