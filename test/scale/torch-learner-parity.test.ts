/**
 * Parity of the torch learner (PyTorch FSDP2 under torchrun, gloo on the CPU) with questa's ONNX
 * learner, the reference: one PPO step on the same batch of the same tiny model
 * (test/fixtures/hf/tiny-learner) from the same starting weights, in 1 and 2 processes and with
 * every sharding, gives the same loss and metrics, and the same updated weights, read back from
 * the Hugging Face folder the torch learner writes; and with a KL penalty towards a frozen
 * reference policy, which each learner loads beside the policy.
 *
 * Tolerances (float32 sums in another order): metrics within 1e-5 relative (measured: 1.8e-6 at
 * most, the gradient norm); weights within 2e-3 x lr of the ONNX learner's (measured: 3.1e-4 x lr),
 * where one AdamW step from fresh moments moves a weight by up to about lr. With bf16 compute
 * (learner.torch.precision's default) the loss and entropy stay within 2e-2 relative (measured: 8.4e-3).
 * With the KL penalty (coefficient 0.5, a reference 0.02 away per weight): metrics and the mean KL
 * within 1.9e-6 relative, weights within 6.7e-4 x lr (measured; the same bounds asserted).
 */
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { TorchTrainingOptions } from "../../functions/contracts/torch-learner-protocol.ts";
import { OnnxLearnerEngine } from "../../functions/host/onnx-adapters.ts";
import { TorchLearnerEngine, TorchNode } from "../../functions/host/torch-learner-engine.ts";
import { freeLoopbackPort } from "../../functions/host/torch-process.ts";
import type { PpoSample, PpoStepMetrics } from "../../functions/learn/learner-engine.ts";
import { loadCheckpoint } from "../../functions/model/checkpoint.ts";
import { FsObjectStore } from "../../functions/runtime/fs-object-store.ts";
import { silentLogger } from "../../functions/runtime/logger.ts";
import { testTempDir } from "../temp-dir.ts";
import { PARITY_SETTINGS, ppoBatch, tinyLearnerCheckpoint } from "./learner-batch.ts";

const python = inject("torchLearnerPython");

async function torchStep(
  store: FsObjectStore,
  dir: string,
  processes: number,
  options: TorchTrainingOptions,
  samples: readonly PpoSample[],
  kl?: { reference: string; klCoef: number },
): Promise<{ metrics: PpoStepMetrics; params: Float32Array }> {
  const node = await TorchNode.start({
    python,
    plan: {
      nodes: 1,
      processesPerNode: processes,
      rendezvous: `127.0.0.1:${await freeLoopbackPort()}`,
      rendezvousId: "parity",
      threads: 1,
    },
    workDir: join(dir, `torch-${processes}-${options.sharding}${kl ? "-kl" : ""}`),
    env: process.env,
    logger: silentLogger(),
  });
  const engine = new TorchLearnerEngine({ node, options });
  try {
    await engine.loadCheckpoint(store, "checkpoints/step-000000");
    if (kl) await engine.loadReference(store, kl.reference);
    const metrics = await engine.trainPpo(samples, { ...PARITY_SETTINGS, klCoef: kl?.klCoef ?? 0 });
    const prefix = `torch-${processes}-${options.sharding}${kl ? "-kl" : ""}/step-1`;
    await engine.saveCheckpoint(store, prefix, { step: 1, withOptimizer: false });
    return { metrics, params: (await loadCheckpoint(store, prefix)).params };
  } finally {
    await engine.dispose();
  }
}

describe("the torch learner against the ONNX learner", () => {
  it("takes the same PPO step on the same batch (1 and 2 processes, every sharding)", async () => {
    const dir = testTempDir("questa-torch-parity-");
    const store = new FsObjectStore(join(dir, "objects"));
    await tinyLearnerCheckpoint(store, "checkpoints/step-000000");
    const onnx = new OnnxLearnerEngine({ executionProvider: "cpu", threads: 1 });
    let samples: PpoSample[];
    let reference: PpoStepMetrics;
    let before: Float32Array;
    let after: Float32Array;
    try {
      await onnx.loadCheckpoint(store, "checkpoints/step-000000");
      before = Float32Array.from(onnx.engine.snapshot().params);
      samples = await ppoBatch(onnx.engine, { count: 7, minLength: 12, seed: 22 });
      reference = await onnx.trainPpo(samples, PARITY_SETTINGS);
      after = Float32Array.from(onnx.engine.snapshot().params);
    } finally {
      await onnx.dispose();
    }
    expect(reference.logProbGap).toBeGreaterThan(0.05);

    const fp32: TorchTrainingOptions = {
      microBatchSize: 2,
      activationCheckpointing: true,
      precision: "fp32",
      sharding: "full-shard",
    };
    const runs: [number, TorchTrainingOptions][] = [
      [1, { ...fp32, microBatchSize: 8, activationCheckpointing: false }],
      [2, fp32],
      [2, { ...fp32, sharding: "shard-grad-op" }],
      [2, { ...fp32, sharding: "hybrid-shard", microBatchSize: 3 }],
    ];
    for (const [processes, options] of runs) {
      const { metrics, params } = await torchStep(store, dir, processes, options, samples);
      const label = `${processes} process(es), ${options.sharding}, micro-batch ${options.microBatchSize}`;
      expect(metrics.tokens, label).toBe(reference.tokens);
      for (const key of ["loss", "entropy", "gradNorm", "logProbGap"] as const) {
        expect(Math.abs(metrics[key] - reference[key]), `${label}: ${key}`).toBeLessThanOrEqual(
          1e-5 * Math.abs(reference[key]),
        );
      }
      expect(metrics.clipFraction, label).toBe(0);
      expect(Math.abs(metrics.approxKl), label).toBeLessThan(1e-7);
      // the same update, weight by weight
      let worst = 0;
      let moved = 0;
      for (let i = 0; i < params.length; i++) {
        worst = Math.max(worst, Math.abs(params[i]! - before[i]! - (after[i]! - before[i]!)));
        moved = Math.max(moved, Math.abs(after[i]! - before[i]!));
      }
      expect(moved, label).toBeGreaterThan(0.5 * PARITY_SETTINGS.learningRate);
      expect(worst, label).toBeLessThanOrEqual(2e-3 * PARITY_SETTINGS.learningRate);
    }
    const bf16 = await torchStep(store, dir, 2, { ...fp32, precision: "bf16" }, samples);
    for (const key of ["loss", "entropy"] as const) {
      const gap = Math.abs(bf16.metrics[key] - reference[key]);
      expect(gap, `bf16: ${key}`).toBeLessThanOrEqual(2e-2 * Math.abs(reference[key]));
    }
  }, 600_000);

  it("adds the same KL penalty towards a frozen reference policy (2 processes, full-shard and shard-grad-op)", async () => {
    const dir = testTempDir("questa-torch-parity-kl-");
    const store = new FsObjectStore(join(dir, "objects"));
    await tinyLearnerCheckpoint(store, "checkpoints/step-000000");
    // the reference: the same model with every weight moved a little, so the KL and its gradient are not 0
    await tinyLearnerCheckpoint(store, "reference", { noise: 0.02, seed: 5 });
    const kl = { reference: "reference", klCoef: 0.5 };
    const onnx = new OnnxLearnerEngine({ executionProvider: "cpu", threads: 1 });
    let expected: PpoStepMetrics;
    let before: Float32Array;
    let after: Float32Array;
    let samples: PpoSample[];
    try {
      await onnx.loadCheckpoint(store, "checkpoints/step-000000");
      await onnx.loadReference(store, kl.reference);
      before = Float32Array.from(onnx.engine.snapshot().params);
      samples = await ppoBatch(onnx.engine, { count: 7, minLength: 12, seed: 22 });
      expected = await onnx.trainPpo(samples, { ...PARITY_SETTINGS, klCoef: kl.klCoef });
      after = Float32Array.from(onnx.engine.snapshot().params);
    } finally {
      await onnx.dispose();
    }
    expect(expected.klToReference).toBeGreaterThan(1e-3);
    // the reference frees its gathered parameters after each forward under either sharding
    for (const sharding of ["full-shard", "shard-grad-op"] as const) {
      const options: TorchTrainingOptions = {
        microBatchSize: 2,
        activationCheckpointing: true,
        precision: "fp32",
        sharding,
      };
      const { metrics, params } = await torchStep(store, dir, 2, options, samples, kl);
      for (const key of ["loss", "entropy", "gradNorm", "logProbGap", "klToReference"] as const) {
        const want = expected[key] ?? Number.NaN;
        const gap = Math.abs((metrics[key] ?? Number.NaN) - want);
        expect(gap, `${sharding}: ${key}`).toBeLessThanOrEqual(1e-5 * Math.abs(want));
      }
      let worst = 0;
      for (let i = 0; i < params.length; i++) {
        worst = Math.max(worst, Math.abs(params[i]! - before[i]! - (after[i]! - before[i]!)));
      }
      expect(worst, sharding).toBeLessThanOrEqual(2e-3 * PARITY_SETTINGS.learningRate);
    }
  }, 600_000);
});
