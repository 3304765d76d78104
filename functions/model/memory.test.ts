import { describe, expect, it } from "vitest";
import { modelConfigFromHf } from "./hf-config.ts";
import { memoryEstimate } from "./memory.ts";

describe("memoryEstimate", () => {
  it("stays within 10% of the peak RSS bench/qwen-shaped.bench.ts measured (14.45 GiB, 4 x 128 tokens)", () => {
    const mapped = modelConfigFromHf({
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 896,
      intermediate_size: 4864,
      num_hidden_layers: 24,
      num_attention_heads: 14,
      num_key_value_heads: 2,
      max_position_embeddings: 32768,
      tie_word_embeddings: true,
    });
    if (!mapped.ok) throw new Error("config");
    const m = memoryEstimate(mapped.config, { microBatchTokens: 512, length: 128 });
    expect(m.parameters).toBe(494_032_768);
    // the host optimiser: weights, gradient and two moments, float32
    expect(m.trainingStateBytes).toBe(16 * 494_032_768);
    expect(m.kvCacheBytesPerToken).toBe(4 * 2 * 24 * 2 * 64);
    expect(Math.abs(m.trainStepBytes / 2 ** 30 - 14.45) / 14.45).toBeLessThan(0.1);
  });
});
