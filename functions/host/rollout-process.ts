/**
 * The rollout function's process (a pod in the cluster, `questa function rollout`), started by the
 * shared start-up (openFunctionProcess). It resumes from the learner's stored progress and keeps
 * following it (functions/contracts/learner-progress.ts).
 */

import { Gauge, type Registry } from "prom-client";
import { readLearnerProgress } from "../contracts/learner-progress.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import type { RolloutServices } from "../rollout/handler.ts";
import { rolloutFunction } from "../rollout/handler.ts";
import type { Logger } from "../runtime/logger.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import {
  type FunctionMainOptions,
  openFunctionProcess,
  processShutdown,
  whileStarting,
} from "./function-process.ts";
import { createRolloutSampler, initialCheckpointRef, rolloutServices } from "./function-services.ts";
import { repeatInBackground } from "./periodic-task.ts";
import { VllmPolicySampler } from "./vllm-policy-sampler.ts";

/** how often the learner's stored progress is read */
const FOLLOW_INTERVAL_MS = 1000;

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const shutdown = options.shutdown ?? processShutdown();
  let stopping = false;
  void shutdown.then(() => {
    stopping = true;
  });
  // every partition of the questions topic at once: concurrent questions share the sampler's
  // decode batch (each partition still one question at a time, committed in order)
  const proc = await openFunctionProcess("rollout", env, {
    partitionsConsumedConcurrently: (spec) => spec.kafka.partitions,
  });
  const { store, keys, logger } = proc;
  const spec = proc.resource.spec;
  try {
    // the learn process makes the initial policy; rollouts wait for it rather than fail, and wait
    // out an object store that is down (whileStarting)
    const sampler = createRolloutSampler(spec, env, logger);
    const services = await whileStarting(
      proc.settings,
      async () => {
        while (!(await initialCheckpointRef(store, keys))) {
          if (stopping) return undefined;
          logger.info("waiting for the initial checkpoint (the learn function writes it)");
          await Promise.race([shutdown, sleep(FOLLOW_INTERVAL_MS)]);
        }
        return rolloutServices({
          spec,
          store,
          keys,
          sampler,
          progress: await readLearnerProgress(store, keys),
        });
      },
      { logger },
    );
    if (services === undefined) {
      await sampler.dispose();
      return 0;
    }
    // reading the learner's progress fails while the store is down: said once, and once when it works again
    const follower = repeatInBackground(() => followLearner(services, store, keys), {
      intervalMs: FOLLOW_INTERVAL_MS,
      logger,
      failing: "could not read the learner's progress; trying again every second",
      recovered: "reading the learner's progress works again",
    });
    try {
      const runner = bindFunction(rolloutFunction, { ...proc.bindOptions, services });
      if (sampler instanceof VllmPolicySampler)
        registerVllmLag(runner.metrics.registry, sampler, services.gate);
      return await serveFunction(runner, {
        port: proc.settings.QUESTA_METRICS_PORT,
        host: proc.settings.QUESTA_METRICS_HOST,
        ...options,
        shutdown,
      });
    } finally {
      await follower.stop();
      await services.sampler.dispose();
    }
  } finally {
    await proc.close();
  }
}

/**
 * Keeps up with the learner from its stored state, not only from checkpoint events: while the
 * staleness gate holds a question, a Kafka consumer fetches nothing else, so the checkpoint event
 * that would open the gate could never arrive.
 */
export async function followLearner(
  services: RolloutServices,
  store: ObjectStore,
  keys: RunKeys,
  logger?: Logger,
) {
  const progress = await readLearnerProgress(store, keys);
  // the vLLM sampler's load waits for its servers to reload: open the gate first, or the questions
  // it holds meanwhile keep the learner waiting for groups. The onnx sampler loads in a moment:
  // load first, so that no question is sampled by a policy the opened gate already counts as too old
  const gateFirst = services.sampler instanceof VllmPolicySampler;
  if (gateFirst) observe(services, progress);
  if (progress.step > services.sampler.version) {
    await services.sampler.load(store, keys.policy(progress.step), progress.step);
    logger?.info({ step: progress.step }, "loaded the learner's newest policy");
  }
  if (!gateFirst) observe(services, progress);
}

function observe(services: RolloutServices, progress: { step: number; stage: number }): void {
  services.gate.observeLearner(progress.step);
  services.stage.current = Math.max(services.stage.current, progress.stage);
}

/**
 * How far each vLLM server lags the learner, in policy versions, as Prometheus sees it (the
 * run's status shows the same lag as the steps' staleness: a group carries the version its server
 * served). Scraping asks every server for its version.
 */
function registerVllmLag(
  registry: Registry,
  sampler: VllmPolicySampler,
  gate: { readonly learnerVersion: number },
): void {
  new Gauge({
    name: "questa_vllm_server_policy_lag",
    help: "learner versions the vLLM server's weights are behind (-1: the server did not answer)",
    labelNames: ["server"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { url, step } of await sampler.pollServerWeights()) {
        this.set({ server: url }, step < 0 ? -1 : Math.max(0, gate.learnerVersion - step));
      }
    },
  });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
