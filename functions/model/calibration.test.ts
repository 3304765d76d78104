import { describe, expect, it } from "vitest";
import { forwardFlops, matmulThroughput, trainStepFlops } from "./calibration.ts";
import { ModelConfigSchema } from "./config.ts";
import { paramLayout } from "./params.ts";

describe("calibration", () => {
  it("counts 2 FLOPs per weight per token plus attention", () => {
    const c = ModelConfigSchema.parse({ vocabSize: 99, layers: 2, width: 128, heads: 4, maxSeqLen: 256 });
    const matrices = paramLayout(c)
      .specs.filter((s) => /attn\.(qkv|out)|mlp\.(up|down)/.test(s.name))
      .reduce((n, s) => n + s.size, 0);
    const B = 3;
    const T = 10;
    const attention = c.layers * 2 * T * c.width;
    expect(forwardFlops(c, B, T)).toBe(2 * B * T * (matrices + attention + c.vocabSize * c.width));
    expect(trainStepFlops(c, B, T)).toBe(3 * forwardFlops(c, B, T));
  });

  it("measures a positive MatMul throughput", async () => {
    expect(await matmulThroughput({ threads: 1, n: 64, repeats: 3 })).toBeGreaterThan(0);
  });
});
