/** Where a CLI command writes; passed in so commands are testable without a process. */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** current directory that relative paths resolve against */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** resolves when the user asks to stop (Ctrl-C, SIGTERM) */
  interrupted: Promise<void>;
  isTTY: boolean;
}

export type CommandRun = (args: string[], io: CliIO) => Promise<number>;

/** A command: its help (the "usage:" lines, a blank line, then the rest) and how it runs. */
export interface CommandDefinition {
  help: string;
  /** throws UsageError for a wrong command line (exit 2), InputError for invalid input (exit 1) */
  run: CommandRun;
}

export interface Command {
  summary: string;
  load: () => Promise<CommandDefinition>;
}

export function processIO(): CliIO {
  const interrupted = new Promise<void>((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    cwd: process.cwd(),
    env: process.env,
    interrupted,
    isTTY: Boolean(process.stdout.isTTY),
  };
}

/** how many problems one file or document prints before "... and N more" */
export const MAX_PRINTED_ISSUES = 20;

/** the first MAX_PRINTED_ISSUES lines and "... and N more" */
export function limitLines(lines: readonly string[], max = MAX_PRINTED_ISSUES): string[] {
  if (lines.length <= max) return [...lines];
  return [...lines.slice(0, max), `... and ${lines.length - max} more`];
}
