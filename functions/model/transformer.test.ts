import { describe, expect, it } from "vitest";
import { type ModelConfigInput, ModelConfigSchema } from "./config.ts";
import { checkGraphGradients } from "./graph/grad-check.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import type { HostTensor } from "./ort-backend.ts";
import { initParams } from "./params.ts";
import { createRng } from "./rng.ts";
import { buildTrainGraph, type LossKind } from "./transformer.ts";

const B = 2;
const T = 5;
const f64 = (data: number[], dims: number[]): HostTensor => ({
  dtype: "float64",
  data: Float64Array.from(data),
  dims,
});
const scalar = (x: number) => f64([x], []);

function feedsFor(configInput: ModelConfigInput, loss: LossKind): Record<string, HostTensor> {
  const config = ModelConfigSchema.parse(configInput);
  const rng = createRng(5);
  const params = Float64Array.from(initParams(config, rng));
  const ids = (n: number) =>
    BigInt64Array.from({ length: n }, () => BigInt(Math.floor(rng.next() * config.vocabSize)));
  const feeds: Record<string, HostTensor> = {
    params: { dtype: "float64", data: params, dims: [params.length] },
    input_ids: { dtype: "int64", data: ids(B * T), dims: [B, T] },
    target_ids: { dtype: "int64", data: ids(B * T), dims: [B, T] },
    loss_mask: f64([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], [B, T]),
    loss_scale: scalar(1 / 8),
  };
  if (loss === "ppo") {
    const around = (c: number) => Array.from({ length: B * T }, () => c + (rng.next() - 0.5) * 0.6);
    Object.assign(feeds, {
      advantages: f64(around(0), [B, T]),
      behaviour_logp: f64(around(-Math.log(config.vocabSize)), [B, T]),
      proximal_logp: f64(around(-Math.log(config.vocabSize)), [B, T]),
      reference_logp: f64(around(-Math.log(config.vocabSize)), [B, T]),
      clip_low: scalar(0.2),
      clip_high: scalar(0.28),
      iw_cap: scalar(1.2),
      iw_over_cap: scalar(0),
      kl_coef: scalar(0.3),
      entropy_coef: scalar(0.05),
    });
  } else feeds.entropy_coef = scalar(0.05);
  return feeds;
}

const variants: [string, ModelConfigInput][] = [
  [
    "layernorm, gelu, learned positions, tied",
    { vocabSize: 11, layers: 2, width: 8, heads: 2, maxSeqLen: 8, initStd: 0.4 },
  ],
  [
    "rmsnorm, swiglu, rotary, GQA, untied",
    {
      vocabSize: 9,
      layers: 1,
      width: 16,
      heads: 4,
      kvHeads: 2,
      mlpWidth: 12,
      activation: "swiglu",
      norm: "rmsnorm",
      positions: "rotary",
      tiedEmbeddings: false,
      maxSeqLen: 8,
      initStd: 0.4,
    },
  ],
];

describe("whole-transformer loss gradients match float64 finite differences", () => {
  for (const [name, config] of variants) {
    for (const loss of ["ppo", "supervised"] as const) {
      it(`${loss}: ${name}`, async () => {
        const graph = buildTrainGraph(
          ModelConfigSchema.parse(config),
          { batch: B, length: T, loss, klToReference: true, entropyBonus: true, mode: "gradient" },
          "float64",
        );
        const result = await checkGraphGradients(
          toOnnxModel(graph),
          feedsFor(config, loss),
          [{ input: "params", gradient: "grad" }],
          "loss",
          { rng: createRng(9), samplesPerInput: 60 },
        );
        expect(result.maxRelativeError).toBeLessThan(1e-5);
      });
    }
  }
});
