import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { logTail, type ServerProcess, startServer } from "../../functions/host/server-process.ts";

/**
 * Process plumbing shared by the Kafka and S3 test servers: caches outside the repo, free ports on
 * loopback, and child processes that die with the test run even when it is killed (no orphans:
 * functions/host/server-process.ts).
 */

/** where downloaded jars and built binaries live between runs (never inside the repo) */
export function questaCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.QUESTA_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "questa");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** a port that was free on 127.0.0.1 a moment ago (the OS picks it) */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port on 127.0.0.1"))));
    });
  });
}

/** fails with an install hint when a tool the test servers need is not on PATH */
export function requireTool(command: string, versionArgs: readonly string[], installHint: string): void {
  const probe = spawnSync(command, versionArgs, { stdio: "ignore" });
  if (probe.error || probe.status !== 0) {
    throw new Error(`test servers need \`${command}\`, which is not usable here; ${installHint}`);
  }
}

/** runs a command to completion, logging to a file; throws with the log's tail when it fails */
export async function runLogged(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; logFile: string; timeoutMs: number; what: string },
): Promise<void> {
  const log = createWriteStream(options.logFile);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (exitCode) => resolve(exitCode));
  }).finally(() => clearTimeout(timer));
  await new Promise<void>((resolve) => log.end(resolve));
  if (code !== 0) {
    throw new Error(
      `${options.what} failed (exit ${code ?? "killed"}); full log: ${options.logFile}\n${logTail(options.logFile)}`,
    );
  }
}

// the watchdog that ties each server to this process (no orphans) is shared with `questa run`'s
// local vLLM server
export { logTail, type ServerProcess, startServer };

/** polls until `probe` resolves true; rejects on timeout or when the server exits */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; server: ServerProcess },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  const ready = (async () => {
    while (Date.now() < deadline) {
      if (await probe().catch(() => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(
      `${what} not ready after ${options.timeoutMs} ms; log: ${options.server.logFile}\n${logTail(options.server.logFile)}`,
    );
  })();
  await Promise.race([ready, options.server.exited]);
}

export async function portAccepts(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(1000);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}
