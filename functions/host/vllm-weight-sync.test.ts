import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readCheckpointManifest } from "../model/checkpoint.ts";
import { UnavailableError } from "../runtime/errors.ts";
import { OnnxLearnerEngine } from "./onnx-adapters.ts";
import { MemoryVllmEndpoint } from "./vllm-memory-endpoint.ts";
import { tinyVllmRun } from "./vllm-test-support.ts";
import { servedStep, VllmWeightSync } from "./vllm-weight-sync.ts";

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setup(endpoints: MemoryVllmEndpoint[]) {
  const run = await tinyVllmRun();
  const modelDir = await mkdtemp(join(tmpdir(), "questa-vllm-models-"));
  dirs.push(modelDir);
  const reloads: number[] = [];
  const sync = new VllmWeightSync({
    endpoints: async () => endpoints,
    modelDir,
    store: run.store,
    keys: run.keys,
    onReload: ({ step }) => reloads.push(step),
  });
  return { run, modelDir, sync, reloads };
}

const checkpoint = (step: number, key: string) => ({ step, manifest: { key } as never });

describe("VllmWeightSync", () => {
  it("writes each policy's Hugging Face folder into a new folder and reloads every server: pause, reload, tag, resume", async () => {
    const servers = [new MemoryVllmEndpoint("http://a:8000"), new MemoryVllmEndpoint("http://b:8000")];
    const { run, modelDir, sync, reloads } = await setup(servers);
    const first = await run.publishPolicy(1);
    await run.setLearnerStep(1);
    await sync.onCheckpoint(checkpoint(1, first));
    const [folder1] = await readdir(modelDir);
    expect(folder1).toMatch(/^step-000001-[0-9a-f]+$/);
    const path1 = join(modelDir, folder1!);
    expect((await readdir(path1)).sort()).toEqual([
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    // the export's bytes, as the learner wrote them
    expect(new Uint8Array(await readFile(join(path1, "model.safetensors")))).toEqual(
      await run.store.get(`${run.keys.policy(1)}/hf/model.safetensors`),
    );
    for (const server of servers) {
      expect(server.calls).toEqual(["pause", `reload ${path1}`, `version ${server.tag}`, "resume"]);
      expect(servedStep(server.tag)).toBe(1);
    }
    expect(reloads).toEqual([1, 1]);

    // an old event again: nothing; the next policy: a new folder (never one rewritten), the old pruned
    await sync.onCheckpoint(checkpoint(1, first));
    expect(reloads).toEqual([1, 1]);
    const second = await run.publishPolicy(2);
    await run.setLearnerStep(2);
    await sync.onCheckpoint(checkpoint(2, second));
    const folders = await readdir(modelDir);
    expect(folders.filter((f) => f.startsWith("step-000002-"))).toHaveLength(1);
    expect(servers.map((s) => servedStep(s.tag))).toEqual([2, 2]);
    expect(sync.step).toBe(2);
  });

  it("goes straight to the learner's newest policy, and converts a checkpoint without a Hugging Face export", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { run, modelDir, sync, reloads } = await setup([server]);
    const first = await run.publishPolicy(1);
    await run.publishPolicy(3, { exportHuggingFace: false });
    await run.setLearnerStep(3);
    await sync.onCheckpoint(checkpoint(1, first));
    expect(reloads).toEqual([3]);
    const [folder] = await readdir(modelDir);
    expect(folder).toMatch(/^step-000003-/);
    // the same files the learner's export would hold, made here from the weights
    await run.publishPolicy(4);
    const files = (await readdir(join(modelDir, folder!))).sort();
    expect(files).toContain("model.safetensors");
    expect(JSON.parse(await readFile(join(modelDir, folder!, "config.json"), "utf8"))).toEqual(
      JSON.parse(new TextDecoder().decode(await run.store.get(`${run.keys.policy(4)}/hf/config.json`))),
    );
  });

  it("gives a restarted server the policy again, and fails as unavailable when no server takes a policy", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    const { run, sync, reloads } = await setup([server]);
    await run.publishPolicy(1);
    await run.setLearnerStep(1);
    await sync.reconcile();
    const tag = server.tag;
    await sync.reconcile();
    expect(reloads).toEqual([1]);
    server.restart();
    expect(server.tag).toBe("default");
    await sync.reconcile();
    expect(server.tag).toBe(tag);
    expect(reloads).toEqual([1, 1]);

    // down: the policy waits (nothing resumed half-way); back up, the next turn loads it
    await run.publishPolicy(2);
    await run.setLearnerStep(2);
    server.down = true;
    await expect(sync.reconcile()).rejects.toBeInstanceOf(UnavailableError);
    expect(sync.step).toBe(1);
    server.down = false;
    await sync.reconcile();
    expect(servedStep(server.tag)).toBe(2);
    expect(server.paused).toBe(false);
  });
});

describe("a server that serves something else", () => {
  it("gets the run's initial checkpoint when the learner has not stepped yet", async () => {
    const server = new MemoryVllmEndpoint("http://a:8000");
    server.tag = "7:0abc";
    const { run, sync } = await setup([server]);
    await sync.reconcile();
    expect(server.tag).toMatch(/^0:[0-9a-f]+$/);
    expect(server.folder).toMatch(/step-000000-/);
    // a server on its initial model is left alone
    const fresh = new MemoryVllmEndpoint("http://b:8000");
    const other = await setup([fresh]);
    await other.sync.reconcile();
    expect(fresh.calls).toEqual([]);
    expect(other.sync.step).toBe(0);
    expect(run.keys.checkpoint(0)).toBe("run/checkpoints/step-000000");
  });
});

describe("the learner's checkpoints for vLLM servers", () => {
  it("carry the Hugging Face export with every policy update when rollout.engine is vllm, not with the resume folders", async () => {
    const run = await tinyVllmRun();
    const exported = async (huggingFaceWithPolicies: boolean) => {
      const engine = new OnnxLearnerEngine({ executionProvider: "cpu", threads: 1, huggingFaceWithPolicies });
      try {
        await engine.loadCheckpoint(run.store, run.keys.checkpoint(0));
        const hfFiles = async (prefix: string, meta: { withOptimizer: boolean; publish?: boolean }) => {
          await engine.saveCheckpoint(run.store, prefix, { step: 1, ...meta });
          const manifest = await readCheckpointManifest(run.store, prefix);
          return Object.keys(manifest.files).filter((f) => f.startsWith("hf/")).length;
        };
        const tag = huggingFaceWithPolicies ? "vllm" : "onnx";
        return {
          policy: await hfFiles(`${tag}/policy`, { withOptimizer: false }),
          resume: await hfFiles(`${tag}/resume`, { withOptimizer: true }),
          full: await hfFiles(`${tag}/full`, { withOptimizer: true, publish: true }),
        };
      } finally {
        await engine.dispose();
      }
    };
    expect(await exported(true)).toEqual({ policy: 5, resume: 0, full: 5 });
    expect(await exported(false)).toEqual({ policy: 0, resume: 0, full: 5 });
  });
});
