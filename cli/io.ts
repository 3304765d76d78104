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

export interface Command {
  summary: string;
  load: () => Promise<CommandRun>;
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
