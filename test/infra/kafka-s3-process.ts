import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * Process plumbing shared by the Kafka and S3 test servers: caches outside the repo, free ports on
 * loopback, and child processes that die with the test run even when it is killed (no orphans).
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

export function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

export interface ServerProcess {
  readonly name: string;
  readonly logFile: string;
  /** rejects when the process exits before stop() was called */
  readonly exited: Promise<never>;
  stop(): Promise<void>;
}

// the server runs under a tiny shell watchdog: the watchdog reads its stdin (a pipe from this
// process) and, when the pipe closes, stops the server (TERM, KILL after 10 s) and deletes its work
// directory. The pipe closes on stop() and also when the test run dies, SIGKILL included, which
// plain child processes would otherwise outlive.
// (background jobs of a non-interactive sh read /dev/null, hence the explicit fd 3)
const watchdogScript = [
  "exec 3<&0",
  '"$@" 3<&- </dev/null &',
  "server=$!",
  "(",
  "  cat <&3",
  "  kill -TERM $server",
  "  i=0",
  "  while kill -0 $server && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
  "  kill -KILL $server",
  '  if [ -n "$QUESTA_WATCHDOG_CLEANUP" ]; then rm -rf "$QUESTA_WATCHDOG_CLEANUP"; fi',
  ") >/dev/null 2>&1 &",
  "exec 3<&-",
  "wait $server",
].join("\n");

const liveServers = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // a normal exit closes the pipes too; this makes the kill immediate
  process.once("exit", () => {
    for (const child of liveServers) child.kill("SIGKILL");
  });
}

export function startServer(options: {
  name: string;
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  logFile: string;
  /** deleted by the watchdog once the server is gone */
  cleanupDir?: string;
}): ServerProcess {
  installExitHook();
  const log = createWriteStream(options.logFile);
  const child = spawn("sh", ["-c", watchdogScript, "watchdog", options.command, ...options.args], {
    cwd: options.cwd,
    env: { ...options.env, QUESTA_WATCHDOG_CLEANUP: options.cleanupDir ?? "" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  liveServers.add(child);
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  let stopping = false;
  const closed = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      liveServers.delete(child);
      log.end();
      resolve(code);
    });
  });
  const exited = closed.then((code): never => {
    throw new Error(
      stopping
        ? `${options.name} stopped`
        : `${options.name} exited early (code ${code}); log: ${options.logFile}\n${logTail(options.logFile)}`,
    );
  });
  // callers race `exited` against readiness; an unobserved rejection must not crash the run
  exited.catch(() => {});
  return {
    name: options.name,
    logFile: options.logFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      // closing stdin makes the watchdog send SIGTERM, then SIGKILL after 10 s
      child.stdin?.end();
      const forced = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await closed;
      clearTimeout(forced);
    },
  };
}

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
