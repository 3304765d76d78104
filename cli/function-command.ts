import { resolve } from "node:path";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import { parseArgs, UsageError } from "./args.ts";
import type { CommandDefinition, CommandRun } from "./io.ts";

/** what `main` of a function process looks like (functions/host/<name>-process.ts) */
type FunctionMain = (
  env: Record<string, string | undefined>,
  options?: { shutdown?: Promise<unknown> },
) => Promise<number>;

/** Each function's process entry, loaded only when that function runs. */
const FUNCTION_MAINS: Record<string, () => Promise<FunctionMain>> = {
  augment: async () => (await import("../functions/host/augment-process.ts")).main,
  rollout: async () => (await import("../functions/host/rollout-process.ts")).main,
  learn: async () => (await import("../functions/host/learn-process.ts")).main,
  evaluate: async () => (await import("../functions/host/evaluate-process.ts")).main,
  // the weight sync beside each vLLM server (rollout.engine vllm); not one of the run's four functions
  "vllm-sync": async () => (await import("../functions/host/vllm-sync-process.ts")).main,
};

export const FUNCTION_NAMES = Object.keys(FUNCTION_MAINS);

const USAGE = `usage: questa function <${FUNCTION_NAMES.join("|")}> --config FILE [--brokers B] [--s3-endpoint URL] [--bucket NAME]

  --config FILE       the run's training.yaml (a QuestATraining; the operator mounts /etc/questa/training.yaml)
  --brokers B         Kafka brokers host:port[,host:port] (default QUESTA_KAFKA_BROKERS)
  --s3-endpoint URL   S3-compatible endpoint, e.g. http://minio:9000 (default QUESTA_S3_ENDPOINT; unset = AWS)
  --bucket NAME       bucket of the run's objects (default QUESTA_S3_BUCKET)
Runs one function of a run against Kafka and S3 until SIGTERM (then drains). The other settings
come from the environment the operator sets on function pods: QUESTA_RUN, QUESTA_TOPIC_PREFIX,
QUESTA_CONSUMER_GROUP, QUESTA_METRICS_PORT, QUESTA_KAFKA_*, QUESTA_S3_*, AWS_ACCESS_KEY_ID, ...
`;

/** `questa function NAME --config FILE`: the function container's entrypoint. */
const runFunction: CommandRun = async (args, io) => {
  const parsed = parseArgs(args, {
    values: ["config", "brokers", "s3-endpoint", "bucket"],
    positionals: { min: 1, max: 1, what: `a function name (${FUNCTION_NAMES.join(", ")})` },
  });
  const name = parsed.positionals[0] as string;
  const load = FUNCTION_MAINS[name];
  if (load === undefined) {
    throw new UsageError(
      `unknown function ${JSON.stringify(name)}; expected one of ${FUNCTION_NAMES.join(", ")}`,
    );
  }
  const config = parsed.options.get("config");
  if (config === undefined) throw new UsageError("--config FILE is required");
  // flags win over the environment; the functions read only the environment
  const overrides: Record<string, string> = { QUESTA_CONFIG: resolve(io.cwd, config), QUESTA_FUNCTION: name };
  const brokers = parsed.options.get("brokers");
  if (brokers !== undefined) overrides.QUESTA_KAFKA_BROKERS = brokers;
  const endpoint = parsed.options.get("s3-endpoint");
  if (endpoint !== undefined) overrides.QUESTA_S3_ENDPOINT = endpoint;
  const bucket = parsed.options.get("bucket");
  if (bucket !== undefined) overrides.QUESTA_S3_BUCKET = bucket;
  const main = await load();
  try {
    return await main({ ...io.env, ...overrides }, { shutdown: io.interrupted });
  } catch (error) {
    if (error instanceof InputError) {
      io.stderr(`questa function ${name}: cannot start (${error.code})\n`);
      for (const issue of error.issues) io.stderr(`  ${formatInputIssue(issue)}\n`);
      return 2;
    }
    throw error;
  }
};

export const functionCommand: CommandDefinition = { help: USAGE, run: runFunction };
