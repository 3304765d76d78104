/**
 * The learn function's process (a pod in the cluster, `questa function learn`), started by the
 * shared start-up (openFunctionProcess). It also owns the run's start: the initial checkpoint (warm start or
 * copy, once) and the start events (once, behind a marker object).
 */

import { learnFunction } from "../learn/handler.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import {
  type FunctionMainOptions,
  type FunctionProcess,
  openFunctionProcess,
  whileStarting,
} from "./function-process.ts";
import {
  engineSettings,
  ensureInitialCheckpoint,
  openLearner,
  publishStartEvents,
} from "./function-services.ts";
import { OnnxLearnerEngine } from "./onnx-adapters.ts";

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
  const engine = new OnnxLearnerEngine(engineSettings(spec));
  try {
    // every start-up step waits out an object store or broker that is down (whileStarting)
    const { initial, learner } = await whileStarting(
      proc.settings,
      async () => {
        const initial = await ensureInitialCheckpoint({
          spec,
          store,
          keys,
          open: proc.open,
          ...(proc.settings.QUESTA_CACHE_DIR === undefined
            ? {}
            : { cacheDir: proc.settings.QUESTA_CACHE_DIR }),
          onWarmStart: (progress, cached) => {
            if (cached || progress.step === progress.steps)
              logger.info({ ...progress, cached }, "warm start done");
          },
        });
        const { learner } = await openLearner({ run, spec, store, keys, engine });
        return { initial, learner };
      },
      { logger },
    );
    const published = await whileStarting(
      proc.settings,
      () =>
        publishStartEvents({
          bus,
          store,
          keys,
          run,
          topicPrefix: proc.topicPrefix,
          learner,
          initial,
          source: "learn",
          ensureTopics: true,
        }),
      { logger },
    );
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
