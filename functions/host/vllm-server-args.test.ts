import { describe, expect, it } from "vitest";
import {
  cpuKvCacheGiB,
  kvBytesPerToken,
  type VllmSettings,
  vllmServerArgs,
  vllmServerEnv,
} from "./vllm-server-args.ts";

const vllm: VllmSettings = {
  dtype: "bfloat16",
  gpuMemoryUtilization: 0.85,
  tensorParallelSize: 2,
  extraArgs: [],
};
const base = {
  host: "127.0.0.1",
  port: 8123,
  modelFolder: "/run/vllm/models/initial",
  servedModelName: "my-run",
  maxModelLength: 4096,
  vllm,
} as const;

/** the value after `flag` in `args`, undefined when the flag is absent */
function flagValue(args: readonly string[], flag: string): string | undefined {
  const at = args.indexOf(flag);
  return at < 0 ? undefined : args[at + 1];
}

describe("the vLLM server's command line", () => {
  it("serves the folder under the run's name on the loopback port, with raw log-probs", () => {
    const args = vllmServerArgs({ ...base, device: "cpu" });
    expect(flagValue(args, "--host")).toBe("127.0.0.1");
    expect(flagValue(args, "--port")).toBe("8123");
    expect(flagValue(args, "--model")).toBe("/run/vllm/models/initial");
    expect(flagValue(args, "--served-model-name")).toBe("my-run");
    expect(flagValue(args, "--max-model-len")).toBe("4096");
    expect(flagValue(args, "--dtype")).toBe("bfloat16");
    expect(flagValue(args, "--logprobs-mode")).toBe("raw_logprobs");
  });

  it("on a CPU build: no GPU settings, and a step budget that never splits a prefill", () => {
    const args = vllmServerArgs({ ...base, device: "cpu" });
    expect(args).not.toContain("--gpu-memory-utilization");
    expect(args).not.toContain("--tensor-parallel-size");
    expect(flagValue(args, "--max-num-batched-tokens")).toBe(String(256 * 4096));
  });

  it("on a GPU: rollout.vllm's memory share and tensor parallelism, and vLLM's own step budget", () => {
    const args = vllmServerArgs({ ...base, device: "gpu" });
    expect(flagValue(args, "--gpu-memory-utilization")).toBe("0.85");
    expect(flagValue(args, "--tensor-parallel-size")).toBe("2");
    expect(args).not.toContain("--max-num-batched-tokens");
    // without rollout.vllm.maxModelLength a GPU server takes the model's own context
    const unset = vllmServerArgs({ ...base, maxModelLength: undefined, device: "gpu" });
    expect(unset).not.toContain("--max-model-len");
    expect(() => vllmServerArgs({ ...base, maxModelLength: undefined, device: "cpu" })).toThrow(
      /maxModelLength/,
    );
  });

  it("passes extraArgs last, so that the user's settings win", () => {
    const args = vllmServerArgs({
      ...base,
      vllm: { ...vllm, extraArgs: ["--enable-prefix-caching", "--max-num-batched-tokens", "512"] },
      device: "cpu",
    });
    expect(args.slice(-3)).toEqual(["--enable-prefix-caching", "--max-num-batched-tokens", "512"]);
  });
});

describe("the vLLM server's environment", () => {
  it("turns on the weight routes, stays offline and sizes a CPU build's KV cache", () => {
    expect(vllmServerEnv({ device: "cpu", kvCacheGiB: 3 })).toEqual({
      VLLM_SERVER_DEV_MODE: "1",
      VLLM_NO_USAGE_STATS: "1",
      HF_HUB_OFFLINE: "1",
      VLLM_CPU_KVCACHE_SPACE: "3",
    });
    expect(vllmServerEnv({ device: "gpu" })).not.toHaveProperty("VLLM_CPU_KVCACHE_SPACE");
  });
});

describe("a CPU server's KV cache", () => {
  // Qwen2.5-0.5B: 24 layers, 14 heads of 64, 2 KV heads
  const qwen = { num_hidden_layers: 24, num_attention_heads: 14, hidden_size: 896, num_key_value_heads: 2 };
  const GiB = 1024 ** 3;

  it("holds keys and values of every layer, in the dtype served", () => {
    expect(kvBytesPerToken(qwen, "bfloat16")).toBe(2 * 24 * 2 * 64 * 2);
    expect(kvBytesPerToken(qwen, "float32")).toBe(2 * 24 * 2 * 64 * 4);
    // auto follows config.json's dtype
    expect(kvBytesPerToken(qwen, "auto", "bfloat16")).toBe(2 * 24 * 2 * 64 * 2);
    // no KV heads named: every head has its own; head_dim wins over hidden_size / heads
    expect(
      kvBytesPerToken({ num_hidden_layers: 2, num_attention_heads: 2, hidden_size: 64 }, "float32"),
    ).toBe(2 * 2 * 2 * 32 * 4);
    expect(
      kvBytesPerToken(
        { num_hidden_layers: 1, num_attention_heads: 2, hidden_size: 64, head_dim: 128 },
        "float32",
      ),
    ).toBe(2 * 1 * 2 * 128 * 4);
  });

  it("is 1 GiB for a tiny model", () => {
    expect(
      cpuKvCacheGiB({
        bytesPerToken: 512,
        maxModelLength: 256,
        sequencesInFlight: 512,
        availableBytes: 16 * GiB,
      }),
    ).toBe(1);
  });

  it("holds every sequence in flight when a quarter of the free memory allows it", () => {
    // 12 KiB per token x 4096 tokens x 64 sequences = 3 GiB
    expect(
      cpuKvCacheGiB({
        bytesPerToken: 12 * 1024,
        maxModelLength: 4096,
        sequencesInFlight: 64,
        availableBytes: 64 * GiB,
      }),
    ).toBe(3);
  });

  it("takes at most a quarter of the free memory (the rest of the sequences queue), but one context always", () => {
    const wide = { bytesPerToken: 12 * 1024, maxModelLength: 4096, sequencesInFlight: 512 };
    expect(cpuKvCacheGiB({ ...wide, availableBytes: 20 * GiB })).toBe(5);
    // one sequence of 2^20 tokens needs 12 GiB: vLLM refuses less, so that is what it gets
    expect(
      cpuKvCacheGiB({
        bytesPerToken: 12 * 1024,
        maxModelLength: 1 << 20,
        sequencesInFlight: 8,
        availableBytes: 8 * GiB,
      }),
    ).toBe(12);
  });
});
