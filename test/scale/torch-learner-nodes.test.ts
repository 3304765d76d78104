/**
 * The torch learner across two nodes, as two learner pods run it, here two node processes' worth
 * of questa on this machine (two TorchNodes, one torchrun each, one process per node, c10d
 * rendezvous on 127.0.0.1): the node whose torchrun is rank 0 drives, the other is a node agent
 * that fetches what its rank needs to load and stores its rank's DCP files. A full checkpoint then
 * lists both ranks' files; loading it back restores model and optimiser on both nodes, and the next
 * step is the one an uninterrupted learner takes.
 */
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { TorchTrainingOptions } from "../../functions/contracts/torch-learner-protocol.ts";
import { OnnxLearnerEngine } from "../../functions/host/onnx-adapters.ts";
import {
  serveTorchNodeAgent,
  TorchLearnerEngine,
  TorchNode,
} from "../../functions/host/torch-learner-engine.ts";
import { freeLoopbackPort } from "../../functions/host/torch-process.ts";
import { CheckpointManifestSchema } from "../../functions/model/checkpoint.ts";
import { FsObjectStore } from "../../functions/runtime/fs-object-store.ts";
import { silentLogger } from "../../functions/runtime/logger.ts";
import { testTempDir } from "../temp-dir.ts";
import { PARITY_SETTINGS, ppoBatch, tinyLearnerCheckpoint } from "./learner-batch.ts";

const python = inject("torchLearnerPython");
const options: TorchTrainingOptions = {
  microBatchSize: 2,
  activationCheckpointing: true,
  precision: "fp32",
  sharding: "full-shard",
};

describe("the torch learner on two nodes", () => {
  it("elects rank 0's node, moves each node's checkpoint files, and resumes both from DCP", async () => {
    const dir = testTempDir("questa-torch-nodes-");
    const store = new FsObjectStore(join(dir, "objects"));
    await tinyLearnerCheckpoint(store, "checkpoints/step-000000");
    const onnx = new OnnxLearnerEngine({ executionProvider: "cpu", threads: 1 });
    await onnx.loadCheckpoint(store, "checkpoints/step-000000");
    const samples = await ppoBatch(onnx.engine, { count: 6, minLength: 10, seed: 5 });
    await onnx.dispose();

    const plan = {
      nodes: 2,
      processesPerNode: 1,
      rendezvous: `127.0.0.1:${await freeLoopbackPort()}`,
      rendezvousId: "two-nodes",
      threads: 1,
    };
    const nodes = await Promise.all(
      ["a", "b"].map((name) =>
        TorchNode.start({
          python,
          plan,
          workDir: join(dir, `node-${name}`),
          env: process.env,
          logger: silentLogger(),
        }),
      ),
    );
    expect(nodes.map((n) => n.ready.worldSize)).toEqual([2, 2]);
    const drivers = nodes.filter((n) => n.isDriver);
    expect(drivers).toHaveLength(1);
    const driver = drivers[0]!;
    const agentNode = nodes.find((n) => !n.isDriver)!;
    const agent = serveTorchNodeAgent(agentNode, store, silentLogger());
    const engine = new TorchLearnerEngine({ node: driver, options });
    try {
      await engine.loadCheckpoint(store, "checkpoints/step-000000");
      const first = await engine.trainPpo(samples, PARITY_SETTINGS);
      expect(first.tokens).toBeGreaterThan(0);
      await engine.saveCheckpoint(store, "checkpoints/step-000001", {
        step: 1,
        parentStep: 0,
        withOptimizer: true,
        publish: true,
      });
      const manifest = CheckpointManifestSchema.parse(
        JSON.parse(new TextDecoder().decode(await store.get("checkpoints/step-000001/manifest.json"))),
      );
      // both ranks' shards, each uploaded by its own node; the weights once, from rank 0
      expect(
        Object.keys(manifest.files)
          .filter((f) => f.startsWith("dcp/"))
          .sort(),
      ).toEqual(["dcp/.metadata", "dcp/__0_0.distcp", "dcp/__1_0.distcp"]);
      expect(manifest.files["hf/model.safetensors"]).toBeDefined();
      const uninterrupted = await engine.trainPpo(samples, PARITY_SETTINGS);
      // back to step 1 from its DCP files (the agent fetches them for its rank): the same step again
      await engine.loadCheckpoint(store, "checkpoints/step-000001");
      const resumed = await engine.trainPpo(samples, PARITY_SETTINGS);
      expect(resumed.loss).toBeCloseTo(uninterrupted.loss, 6);
      expect(resumed.gradNorm).toBeCloseTo(uninterrupted.gradNorm, 6);
    } finally {
      await engine.dispose();
    }
    // the agent's torchrun ends with the job, and the agent with it
    expect(await agent).toBe(0);
  }, 300_000);
});
