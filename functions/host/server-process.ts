/**
 * A server as a child process that cannot outlive this one: it runs under a tiny shell watchdog
 * that reads its stdin (a pipe from this process) and, when the pipe closes, stops the server
 * (TERM, KILL after 10 s). The pipe closes on stop() and also when this process dies, SIGKILL
 * included, which plain child processes would otherwise outlive. The test servers (Kafka, MinIO,
 * the kube servers, vLLM) and the local vLLM server of `questa run` run this way.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";

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

// background jobs of a non-interactive sh read /dev/null, hence the explicit fd 3. With
// QUESTA_WATCHDOG_GROUP set the watchdog leads a process group of its own (spawned detached) that
// holds the server and whatever it starts: once the server is gone, the group is killed too, so
// helpers the server leaves behind when it is killed (vLLM's engine and worker processes) go with it.
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
  '  if [ -n "$QUESTA_WATCHDOG_GROUP" ]; then kill -KILL 0; fi',
  ") >/dev/null 2>&1 &",
  "exec 3<&-",
  "wait $server",
].join("\n");

/** how to kill each running server at once: its watchdog, or its whole process group */
const liveServers = new Map<ChildProcess, () => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // a normal exit closes the pipes too; this makes the kill immediate
  process.once("exit", () => {
    for (const kill of liveServers.values()) kill();
  });
}

/** resolves once process group `pgid` is empty; what is still there after 5 s is killed */
async function groupGone(pgid: number): Promise<void> {
  for (let waited = 0; waited < 5_000; waited += 20) {
    try {
      process.kill(-pgid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
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
  /**
   * the server and every process it starts in a process group of their own, killed as a whole once
   * the server is gone (also when it exits by itself); a terminal's Ctrl-C does not reach them
   */
  processGroup?: boolean;
}): ServerProcess {
  installExitHook();
  const log = createWriteStream(options.logFile);
  const group = options.processGroup ?? false;
  const child = spawn("sh", ["-c", watchdogScript, "watchdog", options.command, ...options.args], {
    cwd: options.cwd,
    env: {
      ...options.env,
      QUESTA_WATCHDOG_CLEANUP: options.cleanupDir ?? "",
      QUESTA_WATCHDOG_GROUP: group ? "1" : "",
    },
    stdio: ["pipe", "pipe", "pipe"],
    detached: group,
  });
  liveServers.set(child, () => {
    try {
      if (group && child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      else child.kill("SIGKILL");
    } catch {
      // already gone
    }
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  // a write to a watchdog that is gone is no error of ours
  child.stdin?.on("error", () => {});
  // the server is gone (the watchdog's shell exits with it): the watchdog kills what it left in
  // its group, which may hold the output pipes open until then
  if (group) child.once("exit", () => child.stdin?.end());
  let stopping = false;
  const closed = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      liveServers.delete(child);
      // the log flushed first, so that the early-exit error's tail holds the server's last words
      log.end(() => resolve(code));
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
      // the watchdog's last kill (of the group, itself included) comes a moment after the server
      // is gone: stopped means no process of the group is left
      if (group && child.pid !== undefined) await groupGone(child.pid);
    },
  };
}
