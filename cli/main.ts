import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import { UsageError } from "./args.ts";
import { type CliIO, type Command, type CommandDefinition, limitLines, processIO } from "./io.ts";

/** Every `questa` subcommand; each module is loaded only when its command runs. */
const commands: Record<string, Command> = {
  run: {
    summary: "run a QuestA training: questa run FILE [--baseline] [--seed N] [--kafka BROKERS --s3 URL]",
    load: async () => (await import("./run-command.ts")).runCommand,
  },
  function: {
    summary:
      "run one function of a run against Kafka and S3 (the pods' entrypoint): questa function NAME --config FILE",
    load: async () => (await import("./function-command.ts")).functionCommand,
  },
  operator: {
    summary: "run the QuestATraining operator (the chart's entrypoint): questa operator [--setting=value]",
    load: async () => (await import("./operator-command.ts")).operatorCommand,
  },
  validate: {
    summary: "validate QuestATraining files: questa validate FILE...",
    load: async () => (await import("./validate-command.ts")).validateCommand,
  },
  crd: {
    summary: "print the QuestATraining CustomResourceDefinition: questa crd [--json]",
    load: async () => (await import("./crd-command.ts")).crdCommand,
  },
  grade: {
    summary: "grade answers: questa grade --gold G --response R | questa grade FILE.jsonl",
    load: async () => (await import("./grade-command.ts")).gradeCommand,
  },
  model: {
    summary:
      "models: questa model inspect LOCATION | export CHECKPOINT DIR | generate LOCATION --prompt T | fetch NAME",
    load: async () => (await import("./model-command.ts")).modelCommand,
  },
  report: {
    summary: "a run's plots as one HTML file: questa report RUN_DIR [--vs OTHER_RUN_DIR] [--out FILE]",
    load: async () => (await import("./report-command.ts")).reportCommand,
  },
  events: {
    summary: "print a local run's events as JSON lines: questa events DIR [--type T] [--follow]",
    load: async () => (await import("./events-command.ts")).eventsCommand,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    "usage: questa <command> [args]    questa help <command>    questa --version",
    "",
    "commands:",
    ...lines,
    "",
    "`questa <command> --help` (or -h) prints a command's help. --debug (anywhere) prints the stack",
    "trace of an internal error. Exit codes: 0 done, 1 invalid input or the command failed,",
    "2 the command line is wrong (usage), 130 stopped by Ctrl-C (run).",
    "",
  ].join("\n");
}

export function version(): string {
  const pkg = z
    .object({ version: z.string() })
    .parse(JSON.parse(readFileSync(join(import.meta.dirname, "..", "package.json"), "utf8")));
  return pkg.version;
}

/** the "usage:" lines at the top of a command's help */
function synopsis(help: string): string {
  const end = help.indexOf("\n\n");
  return end === -1 ? help : `${help.slice(0, end)}\n`;
}

/** the arguments before `--`, where --help and --debug are looked for */
function optionPart(args: readonly string[]): readonly string[] {
  const end = args.indexOf("--");
  return end === -1 ? args : args.slice(0, end);
}

/**
 * Runs `questa ARGS`. One convention for every command: `--help`/`-h` and `questa help CMD` print
 * the help on stdout (exit 0); a wrong command line prints the reason and the usage on stderr
 * (exit 2); invalid input exits 1 with one line per problem; an internal error says so in one line
 * and points to --debug, which prints its stack trace. No stack trace reaches the user otherwise.
 */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const debug = optionPart(argv).includes("--debug") || Boolean(io.env.QUESTA_DEBUG);
  const debugAt = optionPart(argv).indexOf("--debug");
  const args = debugAt === -1 ? argv : argv.filter((_, i) => i !== debugAt);
  const [name, ...rest] = args;
  if (name === "--version" || name === "-V") {
    io.stdout(`questa ${version()}\n`);
    return 0;
  }
  if (name === "--help" || name === "-h" || (name === "help" && rest.length === 0)) {
    io.stdout(usage());
    return 0;
  }
  if (name === undefined) {
    io.stderr(`questa: give a command\n\n${usage()}`);
    return 2;
  }
  if (name.startsWith("-")) {
    io.stderr(`questa: ${name}: unknown option before the command\n\n${usage()}`);
    return 2;
  }
  const helpFor = name === "help" ? rest[0] : undefined;
  if (name === "help" && rest.length > 1) {
    io.stderr(`questa help: give one command\n\n${usage()}`);
    return 2;
  }
  const commandName = helpFor ?? name;
  const command = commands[commandName];
  if (!command) {
    io.stderr(`questa: unknown command ${JSON.stringify(commandName)}\n\n${usage()}`);
    return 2;
  }
  let definition: CommandDefinition | undefined;
  try {
    definition = await command.load();
    const wantsHelp = helpFor !== undefined || optionPart(rest).some((a) => a === "--help" || a === "-h");
    if (wantsHelp) {
      io.stdout(definition.help);
      return 0;
    }
    return await definition.run(rest, io);
  } catch (error) {
    return reportError(error, `questa ${commandName}`, definition, io, debug);
  }
}

function reportError(
  error: unknown,
  prefix: string,
  definition: CommandDefinition | undefined,
  io: CliIO,
  debug: boolean,
): number {
  if (error instanceof UsageError) {
    io.stderr(
      `${prefix}: ${error.message}\n${definition ? synopsis(definition.help) : ""}(${prefix} --help for more)\n`,
    );
    return 2;
  }
  if (error instanceof InputError) {
    if (error.issues.length === 1) io.stderr(`${prefix}: ${formatInputIssue(error.issues[0]!)}\n`);
    else {
      io.stderr(`${prefix}: ${error.issues.length} problems\n`);
      for (const line of limitLines(error.issues.map(formatInputIssue))) io.stderr(`  ${line}\n`);
    }
    if (debug && error.stack) io.stderr(`${error.stack}\n`);
    return 1;
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  io.stderr(
    `${prefix}: internal error: ${message.split("\n")[0]}\n` +
      (debug
        ? `${error instanceof Error ? (error.stack ?? "") : ""}\n`
        : "  this is a bug in questa, not in your input; run the command again with --debug for its stack trace\n"),
  );
  return 1;
}
