import type { CliIO } from "./io.ts";

/** A CliIO that records output, for command tests. */
export function captureIO(cwd: string, interrupted: Promise<void> = new Promise(() => {})) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIO = {
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    cwd,
    env: {},
    interrupted,
    isTTY: false,
  };
  return { io, stdout: () => out.join(""), stderr: () => err.join("") };
}
