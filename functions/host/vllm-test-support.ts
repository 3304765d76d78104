/**
 * What the vLLM unit tests share: the tiny vLLM-servable Qwen2 folder (test/fixtures/hf/
 * tiny-qwen2-vllm) stored as questa checkpoints in an in-memory store, as the learner writes them.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { RunKeys } from "../contracts/run-keys.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { type LoadedHfModel, readHuggingFaceFolder } from "../model/hf-folder.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";

export const TINY_VLLM_FOLDER = join(
  import.meta.dirname,
  "..",
  "..",
  "test",
  "fixtures",
  "hf",
  "tiny-qwen2-vllm",
);

export async function readTinyVllmModel(): Promise<LoadedHfModel> {
  return readHuggingFaceFolder(
    async (name) => {
      try {
        return new Uint8Array(await readFile(join(TINY_VLLM_FOLDER, name)));
      } catch {
        return undefined;
      }
    },
    { where: TINY_VLLM_FOLDER },
  );
}

/**
 * A store with the run's initial checkpoint (with its Hugging Face export, as the import writes it)
 * and a way to add policy updates at later steps (weights nudged by the step), with or without
 * the export.
 */
export async function tinyVllmRun() {
  const model = await readTinyVllmModel();
  const store = new MemoryObjectStore();
  const keys = new RunKeys("run");
  const save = (prefix: string, step: number, params: Float32Array, exportHuggingFace: boolean) =>
    saveCheckpoint(
      store,
      prefix,
      {
        config: model.config,
        params,
        tokenizerJson: model.tokenizerJson,
        huggingFace: model.source,
        step,
      },
      { exportHuggingFace },
    );
  await save(keys.checkpoint(0), 0, model.params, true);
  return {
    model,
    store,
    keys,
    /** a policy update at `step`; returns its manifest's key */
    async publishPolicy(step: number, options: { exportHuggingFace?: boolean } = {}) {
      const params = model.params.map((x) => x + step * 1e-3);
      const { manifestKey } = await save(keys.policy(step), step, params, options.exportHuggingFace ?? true);
      return manifestKey;
    },
    /** the learner's committed progress (what the sync and rollout follow) */
    async setLearnerStep(step: number) {
      await store.put(
        keys.key("learner", "state.json"),
        JSON.stringify({ step, curriculum: { stageIndex: 0 }, finished: false, consumed: [] }),
      );
    },
  };
}
