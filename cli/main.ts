import { type CliIO, type Command, processIO } from "./io.ts";

/** Every `questa` subcommand; each module is loaded only when its command runs. */
const commands: Record<string, Command> = {
  run: {
    summary: "run a QuestA training: questa run FILE [--baseline] [--seed N] [--kafka BROKERS --s3 URL]",
    load: async () => (await import("./run-command.ts")).runRun,
  },
  function: {
    summary:
      "run one function of a run against Kafka and S3 (the pods' entrypoint): questa function NAME --config FILE",
    load: async () => (await import("./function-command.ts")).runFunction,
  },
  operator: {
    summary: "run the QuestATraining operator (the chart's entrypoint): questa operator [--setting=value]",
    load: async () => (await import("./operator-command.ts")).runOperator,
  },
  validate: {
    summary: "validate QuestATraining files: questa validate FILE...",
    load: async () => (await import("./validate-command.ts")).runValidate,
  },
  crd: {
    summary: "print the QuestATraining CustomResourceDefinition",
    load: async () => (await import("./crd-command.ts")).runCrd,
  },
  grade: {
    summary: "grade answers: questa grade --gold G --response R | questa grade FILE.jsonl",
    load: async () => (await import("./grade-command.ts")).runGrade,
  },
  model: {
    summary:
      "models: questa model inspect LOCATION | export CHECKPOINT DIR | generate LOCATION --prompt T | fetch NAME",
    load: async () => (await import("./model-command.ts")).runModel,
  },
  events: {
    summary: "print a local run's events as JSON lines: questa events DIR [--type T] [--follow]",
    load: async () => (await import("./events-command.ts")).runEvents,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: questa <command> [args]\n\ncommands:\n${lines.join("\n")}\n`;
}

export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout(usage());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    io.stderr(`questa: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  const run = await command.load();
  return run(rest, io);
}
