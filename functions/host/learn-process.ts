/**
 * The learn function's process (a pod in the cluster, `questa function learn`), started by the
 * shared start-up (openFunctionProcess). It also owns the run's start: the initial checkpoint (warm start or
 * copy, once) and the start events (once, behind a marker object). With learner.engine torch every
 * learner pod runs this: the one whose torchrun has global rank 0 is the learner, the others node
 * agents (functions/host/learner-engines.ts).
 */

import { Registry } from "prom-client";
import { learnFunction } from "../learn/handler.ts";
import { startHealthServer } from "../runtime/health-server.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import {
  type FunctionMainOptions,
  type FunctionProcess,
  openFunctionProcess,
  processShutdown,
  whileStarting,
} from "./function-process.ts";
import { ensureInitialCheckpoint, openLearner, publishStartEvents } from "./function-services.ts";
import { startLearnerNode } from "./learner-engines.ts";
import { serveTorchNodeAgent } from "./torch-learner-engine.ts";

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const proc = await openFunctionProcess("learn", env);
  try {
    return await serveLearn(proc, options, env);
  } finally {
    await proc.close();
  }
}

async function serveLearn(
  proc: FunctionProcess,
  options: FunctionMainOptions,
  env: Record<string, string | undefined>,
): Promise<number> {
  const { store, keys, run, bus, logger } = proc;
  const spec = proc.resource.spec;
  // a torch learner starts torchrun first: which node drives it is known once rank 0 says so. Its
  // rendezvous waits for every learner pod (one may still be scheduled or pulling its image):
  // behind a health server that is alive, so that the kubelet's liveness probe leaves it be
  const started = await whileStarting(
    proc.settings,
    () => startLearnerNode({ spec, run, env, install: false, logger }),
    { logger },
  );
  if (started.role === "agent") {
    logger.info(
      { node: started.node.ready.node },
      "torch learner node agent: moving this node's checkpoint files",
    );
    // alive and ready while its torchrun lives (the pod's probes; it consumes no topic)
    const health = await startHealthServer({
      registry: new Registry(),
      isReady: () => true,
      host: proc.settings.QUESTA_METRICS_HOST,
      port: proc.settings.QUESTA_METRICS_PORT,
    });
    options.onListening?.(health.url);
    try {
      return await serveTorchNodeAgent(started.node, store, logger);
    } finally {
      await health.close();
    }
  }
  const engine = started.engine;
  let engineStopped: Error | undefined;
  const stopped = started.stopped.then((error) => {
    engineStopped = error;
    logger.error(
      { reason: error.message },
      "the learner's engine stopped; exiting so that the learner restarts",
    );
  });
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
    const code = await serveFunction(runner, {
      port: proc.settings.QUESTA_METRICS_PORT,
      host: proc.settings.QUESTA_METRICS_HOST,
      ...options,
      shutdown: Promise.race([options.shutdown ?? processShutdown(), stopped]),
    });
    return engineStopped ? 1 : code;
  } finally {
    await engine.dispose();
  }
}
