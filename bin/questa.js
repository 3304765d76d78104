#!/usr/bin/env node
// Entry of the `questa` CLI. Installs dependencies on a fresh clone, then runs the TypeScript
// sources through tsx so there is no build step between a checkout and a run.
import { ensureInstall } from "../scripts/ensure-install.mjs";

// an error nothing awaited (a stray rejected promise) is still one line, never a raw trace
const debug = process.argv.includes("--debug") || Boolean(process.env.QUESTA_DEBUG);
for (const event of ["uncaughtException", "unhandledRejection"]) {
  process.on(event, (error) => {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    process.stderr.write(
      `questa: internal error: ${message.split("\n")[0]}\n` +
        (debug && error instanceof Error
          ? `${error.stack}\n`
          : "  this is a bug in questa, not in your input; run the command again with --debug for its stack trace\n"),
    );
    process.exit(1);
  });
}

ensureInstall();
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../cli/main.ts");
const code = await main(process.argv.slice(2));
// exit when the command is done: a client socket left behind (a Kafka connection after broker
// restarts) must not keep a finished run's process alive; the output is flushed first
await Promise.all(
  [process.stdout, process.stderr].map(
    (stream) => new Promise((resolveFlush) => stream.write("", resolveFlush)),
  ),
);
process.exit(code);
