import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import { UsageError } from "./args.ts";
import type { CommandDefinition, CommandRun } from "./io.ts";

const USAGE = `usage: questa operator [--SETTING=VALUE ...]

Runs the QuestATraining operator (what the Helm chart's Deployment runs) until SIGTERM.
Settings come from the environment or --setting=value flags, e.g.
  --operator-image=IMAGE     function image when a run names none (QUESTA_OPERATOR_IMAGE, required)
  --watch-namespace=NS       watch one namespace (QUESTA_WATCH_NAMESPACE; default all)
  --leader-elect=false       run without a Lease (QUESTA_LEADER_ELECT)
  --metrics-port=8080        health and metrics (QUESTA_METRICS_PORT)
Kafka defaults for runs that name no brokers: QUESTA_KAFKA_*; the cluster: KUBECONFIG or in-cluster.
`;

/** `questa operator`: the control plane's entrypoint (operator/main.ts). */
const runOperator: CommandRun = async (args, io) => {
  // operator/main.ts reads --name=value pairs; anything else would be ignored there, so refuse it here
  const bad = args.filter((arg) => !/^--[a-z-]+=.*$/.test(arg));
  if (bad.length > 0) {
    throw new UsageError(`expected --setting=value, got ${bad.map((a) => JSON.stringify(a)).join(", ")}`);
  }
  const { main, parseOperatorConfig } = await import("../operator/main.ts");
  try {
    // checked first so a mistake is reported before anything connects
    parseOperatorConfig(io.env, args);
  } catch (error) {
    if (error instanceof InputError) {
      io.stderr(`questa operator: invalid settings\n`);
      for (const issue of error.issues) io.stderr(`  ${formatInputIssue(issue)}\n`);
      return 2;
    }
    throw error;
  }
  await main({ ...io.env }, args);
  // the operator now runs on its servers and watches; it exits on SIGTERM after releasing its lease
  await io.interrupted;
  return 0;
};

export const operatorCommand: CommandDefinition = { help: USAGE, run: runOperator };
