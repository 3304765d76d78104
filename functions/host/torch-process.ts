/**
 * The torch learner's processes: finding its Python (QUESTA_TORCH_PYTHON, or the cached venv of
 * `scripts/install-reference-venv.sh --kind learner`), installing that venv for embedded runs, and
 * running `torchrun` with line-based pipes. The only module of questa that starts processes for the
 * learner.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { InputError } from "../runtime/errors.ts";

const root = join(import.meta.dirname, "..", "..");
/** the Python package torchrun starts (torch-learner/questa_torch_learner) */
export const TORCH_LEARNER_PACKAGE_DIR = join(root, "torch-learner");
/** the generated JSON Schemas the Python side validates requests against */
export const SCHEMAS_DIR = join(root, "manifests", "schemas");
const INSTALL_SCRIPT = join(root, "scripts", "install-reference-venv.sh");
const LOCK_FILE = join(root, "scripts", "reference", "requirements-learner.lock");
const INSTALL_COMMAND = "scripts/install-reference-venv.sh --kind learner";

/** where `install-reference-venv.sh --kind KIND` puts a venv: keyed by its lock file's hash */
export function referenceVenvDir(cacheDir: string, kind: string, lockBytes: Uint8Array): string {
  const hash = createHash("sha256").update(lockBytes).digest("hex").slice(0, 12);
  return join(cacheDir, `venv-${kind}-${hash}`);
}

/** where install-reference-venv.sh puts the learner's venv */
export function learnerVenvDir(cacheDir: string, lockBytes: Uint8Array): string {
  return referenceVenvDir(cacheDir, "learner", lockBytes);
}

/** the cache of venvs and warm starts: QUESTA_CACHE_DIR, default ~/.cache/questa */
export function questaCacheDir(env: Record<string, string | undefined>): string {
  return env.QUESTA_CACHE_DIR || join(homedir(), ".cache", "questa");
}

/**
 * The Python that runs the torch learner: QUESTA_TORCH_PYTHON, else the cached venv. When that is
 * missing, `install` (embedded runs) installs it, telling `say` first; otherwise an InputError
 * names the script that installs it.
 */
export async function resolveTorchPython(options: {
  env: Record<string, string | undefined>;
  install: boolean;
  say?: (message: string) => void;
}): Promise<string> {
  const { env } = options;
  if (env.QUESTA_TORCH_PYTHON) return env.QUESTA_TORCH_PYTHON;
  const cacheDir = questaCacheDir(env);
  const missing = (why: string) =>
    new InputError("torch_learner.no_python", [
      {
        path: "spec.learner.engine",
        message: `learner.engine torch needs PyTorch: ${why}`,
        hint: `run ${INSTALL_COMMAND} (PyTorch 2.13 and transformers from PyPI, once) or set QUESTA_TORCH_PYTHON to a python with questa's learner requirements`,
      },
    ]);
  if (!existsSync(LOCK_FILE)) throw missing(`${LOCK_FILE} is not in this installation`);
  const venv = learnerVenvDir(cacheDir, readFileSync(LOCK_FILE));
  const python = join(venv, "bin", "python");
  if (existsSync(join(venv, ".complete"))) return python;
  if (!options.install) throw missing(`no venv at ${venv}`);
  options.say?.(
    `installing the torch learner's Python (PyTorch, transformers) into ${venv} with ${INSTALL_COMMAND}; once, a few minutes`,
  );
  await new Promise<void>((resolve, reject) => {
    execFile(
      INSTALL_SCRIPT,
      ["--kind", "learner"],
      { env: { ...process.env, QUESTA_CACHE_DIR: cacheDir }, maxBuffer: 16 << 20 },
      (error, _stdout, stderr) => {
        if (error)
          reject(missing(`${INSTALL_COMMAND} failed: ${stderr.trim().split("\n").slice(-5).join(" | ")}`));
        else resolve();
      },
    );
  });
  return python;
}

/** a TCP port free on 127.0.0.1 right now (the single-node rendezvous) */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** a running torchrun: lines in on stdin, lines out of stdout, stderr lines to the log */
export interface TorchrunProcess {
  readonly pid: number | undefined;
  writeLine(line: string): void;
  /** stdin closed: local rank 0 reads the end of input and stops every rank */
  endInput(): void;
  readonly exited: Promise<ExitStatus>;
  /** the last lines torchrun and its processes wrote to stderr, for error messages */
  recentLog(): string[];
  /** SIGTERM to torchrun and its processes (their own process group), SIGKILL after `graceMs` */
  kill(graceMs?: number): Promise<ExitStatus>;
}

const RECENT_LOG_LINES = 40;
/** how long after torchrun's exit its output streams may take to deliver their last lines */
const STREAMS_GRACE_MS = 5_000;

export function startTorchrun(options: {
  python: string;
  args: readonly string[];
  env: Record<string, string>;
  cwd: string;
  onLine: (line: string) => void;
  onLog: (line: string) => void;
}): TorchrunProcess {
  // its own process group, so that stopping it stops its workers too
  const child: ChildProcess = spawn(options.python, [...options.args], {
    cwd: options.cwd,
    env: options.env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  const recent: string[] = [];
  createInterface({ input: child.stdout! }).on("line", options.onLine);
  createInterface({ input: child.stderr! }).on("line", (line) => {
    recent.push(line);
    if (recent.length > RECENT_LOG_LINES) recent.shift();
    options.onLog(line);
  });
  // a write after torchrun died is reported by `exited`, not as an unhandled stream error
  child.stdin!.on("error", () => {});
  const exited = new Promise<ExitStatus>((resolve) => {
    // "exit" can come before the last stderr lines are read (the traceback that says why): wait
    // for the streams to close too, but not for long, since a worker that outlives torchrun holds them
    child.once("exit", (code, signal) => {
      const status = { code, signal };
      const timer = setTimeout(() => resolve(status), STREAMS_GRACE_MS);
      child.once("close", () => {
        clearTimeout(timer);
        resolve(status);
      });
    });
    child.once("error", (error) => {
      recent.push(`cannot start ${options.python}: ${error.message}`);
      resolve({ code: 127, signal: null });
    });
  });
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (!running || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  return {
    pid: child.pid,
    writeLine: (line) => {
      if (running && child.stdin!.writable) child.stdin!.write(`${line}\n`);
    },
    endInput: () => {
      child.stdin!.end();
    },
    exited,
    recentLog: () => [...recent],
    kill: async (graceMs = 10_000) => {
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
