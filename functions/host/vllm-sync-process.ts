/**
 * The weight sync's process (`questa function vllm-sync`): a sidecar beside each vLLM server of a
 * run (rollout.engine vllm), sharing the volume the server reads models from. It keeps its server
 * on the learner's newest policy (functions/host/vllm-weight-sync.ts): on every checkpoint.published
 * and, every few seconds, from the learner's stored progress and the server's own version (a
 * restarted server is back on the initial model and gets the newest policy again).
 *
 * Every server must see every checkpoint, so each sidecar consumes with a consumer group of its
 * own: QUESTA_CONSUMER_GROUP (or `<topic prefix>.vllm-sync`) with the pod's host name appended.
 */
import { hostname } from "node:os";
import { Counter, Gauge, Histogram } from "prom-client";
import { z } from "zod";
import { schemaInputError } from "../runtime/errors.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import { type FunctionMainOptions, openFunctionProcess, processShutdown } from "./function-process.ts";
import { repeatInBackground } from "./periodic-task.ts";
import { VllmHttpServer } from "./vllm-api.ts";
import { servedStep, VllmWeightSync, vllmSyncFunction } from "./vllm-weight-sync.ts";

const VllmSyncEnvSchema = z.object({
  QUESTA_VLLM_URL: z
    .url()
    .describe("base URL of the server this sidecar keeps in step, e.g. http://127.0.0.1:8000"),
  QUESTA_VLLM_MODEL_DIR: z
    .string()
    .min(1)
    .describe("directory the server reads models from; each policy version is written to a new folder in it"),
  /** how often the learner's progress and the server's version are checked */
  QUESTA_VLLM_SYNC_INTERVAL_MS: z.coerce.number().int().min(100).default(2000),
});

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = VllmSyncEnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw schemaInputError("invalid_environment", parsed.error, {
      hint: "the operator sets it on the vLLM server's sync sidecar",
    });
  }
  const settings = parsed.data;
  const shutdown = options.shutdown ?? processShutdown();
  const proc = await openFunctionProcess("vllm-sync", env);
  const { store, keys, logger } = proc;
  const server = new VllmHttpServer(settings.QUESTA_VLLM_URL);
  let reloads: Counter | undefined;
  let reloadSeconds: Histogram | undefined;
  const sync = new VllmWeightSync({
    endpoints: async () => [server],
    modelDir: settings.QUESTA_VLLM_MODEL_DIR,
    store,
    keys,
    logger,
    onReload: ({ seconds }) => {
      reloads?.inc();
      reloadSeconds?.observe(seconds);
    },
  });
  try {
    const groupBase = proc.bindOptions.groupId ?? `${proc.topicPrefix}.vllm-sync`;
    const runner = bindFunction(vllmSyncFunction, {
      ...proc.bindOptions,
      groupId: `${groupBase}.${hostname()}`,
      services: { sync },
    });
    const registers = [runner.metrics.registry];
    reloads = new Counter({
      name: "questa_vllm_weight_reloads_total",
      help: "policy versions loaded into the vLLM server",
      registers,
    });
    reloadSeconds = new Histogram({
      name: "questa_vllm_weight_reload_seconds",
      help: "pause, reload, tag and resume of one policy version",
      buckets: [0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    });
    new Gauge({
      name: "questa_vllm_served_policy_step",
      help: "learner step of the weights the vLLM server serves (-1: it did not answer)",
      registers,
      async collect() {
        this.set(servedStep(await server.weightVersion().catch(() => "unknown")));
      },
    });
    // following fails while the server starts or the store is down: said once, and once when it works again
    const follower = repeatInBackground(() => sync.reconcile(), {
      intervalMs: settings.QUESTA_VLLM_SYNC_INTERVAL_MS,
      logger,
      failing: "weight sync failed; trying again",
      recovered: "weight sync works again",
    });
    try {
      return await serveFunction(runner, {
        port: proc.settings.QUESTA_METRICS_PORT,
        host: proc.settings.QUESTA_METRICS_HOST,
        ...options,
        shutdown,
      });
    } finally {
      await follower.stop();
    }
  } finally {
    await proc.close();
  }
}
