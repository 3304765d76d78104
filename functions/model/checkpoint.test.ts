import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DeadLetterError, RetryableError } from "../runtime/errors.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { CHECKPOINT_FORMAT, commitCheckpointManifest, loadCheckpoint, saveCheckpoint } from "./checkpoint.ts";
import { ModelConfigSchema } from "./config.ts";
import { readHuggingFaceFolder } from "./hf-folder.ts";
import { initParams } from "./params.ts";
import { createRng } from "./rng.ts";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
import { charTokenizer } from "./tokenizer.ts";

const config = ModelConfigSchema.parse({ vocabSize: 99, layers: 2, width: 16, heads: 2, maxSeqLen: 32 });

function data() {
  const rng = createRng(3);
  const params = initParams(config, rng);
  const m = initParams(config, rng);
  const v = initParams(config, rng).map(Math.abs);
  // awkward values must survive bit-exactly
  params[0] = -0;
  params[1] = Number.MIN_VALUE;
  params[2] = 3.4028234663852886e38;
  return {
    config,
    params,
    optimizerState: { m, v, step: 17 },
    tokenizerJson: charTokenizer().toJSON(),
    step: 17,
    parent: "ckpt/step-16",
  };
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((w, i) => w === y[i]);
}

describe("checkpoints", () => {
  it("round-trips weights, optimizer state, config and tokenizer bit-exactly", async () => {
    const store = new MemoryObjectStore();
    const order: string[] = [];
    const recording: ObjectStore = {
      put: (key, body, options) => {
        order.push(key);
        return store.put(key, body, options);
      },
      get: (key) => store.get(key),
      head: (key) => store.head(key),
      list: (prefix) => store.list(prefix),
      delete: (key) => store.delete(key),
      uri: (key) => store.uri(key),
    };
    const d = data();
    const { manifest } = await saveCheckpoint(recording, "runs/a/ckpt/step-17", d);
    expect(order.at(-1)).toBe("runs/a/ckpt/step-17/manifest.json");
    expect(order).toHaveLength(5);
    expect(Object.keys(manifest.files).sort()).toEqual([
      "config.json",
      "model.safetensors",
      "optimizer.safetensors",
      "tokenizer.json",
    ]);
    const loaded = await loadCheckpoint(store, "runs/a/ckpt/step-17");
    expect(sameBits(loaded.params, d.params)).toBe(true);
    expect(sameBits(loaded.optimizerState!.m, d.optimizerState.m)).toBe(true);
    expect(sameBits(loaded.optimizerState!.v, d.optimizerState.v)).toBe(true);
    expect(loaded.optimizerState!.step).toBe(17);
    expect(loaded.config).toEqual(config);
    expect(loaded.tokenizerJson).toEqual(d.tokenizerJson);
    expect(loaded.manifest.parent).toBe("ckpt/step-16");
  });

  it("saving the same checkpoint twice is idempotent; a different one at the same prefix is refused", async () => {
    const store = new MemoryObjectStore();
    await saveCheckpoint(store, "c", data());
    await expect(saveCheckpoint(store, "c", data())).resolves.toBeDefined();
    await expect(saveCheckpoint(store, "c", { ...data(), step: 18 })).rejects.toThrow(DeadLetterError);
  });

  it("refuses a partial checkpoint (no manifest yet)", async () => {
    const store = new MemoryObjectStore();
    await saveCheckpoint(store, "c", data());
    await store.delete("c/manifest.json");
    await expect(loadCheckpoint(store, "c")).rejects.toThrow(RetryableError);
    await expect(loadCheckpoint(store, "c")).rejects.toThrow(/partial or not written/);
  });

  it("refuses a corrupted or missing file naming it", async () => {
    const store = new MemoryObjectStore();
    await saveCheckpoint(store, "c", data());
    const bytes = (await store.get("c/model.safetensors"))!;
    bytes[bytes.length - 1]! ^= 1;
    await store.put("c/model.safetensors", bytes);
    await expect(loadCheckpoint(store, "c")).rejects.toThrow(/model\.safetensors is corrupted/);
    await store.delete("c/model.safetensors");
    await expect(loadCheckpoint(store, "c")).rejects.toThrow(/missing/);
  });

  it("safetensors header is 8-byte aligned and parseable", () => {
    const bytes = encodeSafetensors(
      { w: { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) } },
      { k: "v" },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0);
    const decoded = decodeSafetensors(bytes);
    expect(Array.from(decoded.tensors.w!.data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(decoded.metadata).toEqual({ k: "v" });
  });

  it("splits weights and optimizer state into files of at most maxFileBytes and reads them back", async () => {
    const store = new MemoryObjectStore();
    const d = data();
    const { manifest } = await saveCheckpoint(store, "c", d, { maxFileBytes: 4096 });
    const names = Object.keys(manifest.files);
    const modelFiles = names.filter((n) => n.startsWith("model-"));
    const optimizerFiles = names.filter((n) => n.startsWith("optimizer-"));
    expect(modelFiles.length).toBeGreaterThan(1);
    expect(optimizerFiles.length).toBeGreaterThan(1);
    expect(modelFiles.every((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n))).toBe(true);
    for (const n of [...modelFiles, ...optimizerFiles]) {
      // one spec may exceed the limit on its own (the embedding); every other file stays under it
      expect(manifest.files[n]!.size).toBeLessThan(4096 + 99 * 16 * 4 * 2 + 1024);
    }
    const loaded = await loadCheckpoint(store, "c");
    expect(sameBits(loaded.params, d.params)).toBe(true);
    expect(sameBits(loaded.optimizerState!.m, d.optimizerState.m)).toBe(true);
    expect(sameBits(loaded.optimizerState!.v, d.optimizerState.v)).toBe(true);
    expect(loaded.optimizerState!.step).toBe(17);
  });

  it("a run from a Hugging Face folder keeps its source and exports each checkpoint under hf/", async () => {
    const dir = join(import.meta.dirname, "..", "..", "test", "fixtures", "hf", "tiny-qwen2");
    const model = await readHuggingFaceFolder(
      async (f) => {
        try {
          return new Uint8Array(await readFile(join(dir, f)));
        } catch {
          return undefined;
        }
      },
      { where: dir },
    );
    const store = new MemoryObjectStore();
    const { manifest } = await saveCheckpoint(
      store,
      "run/checkpoints/step-000010",
      {
        config: model.config,
        params: model.params,
        tokenizerJson: model.tokenizerJson,
        huggingFace: model.source,
        step: 10,
      },
      { exportHuggingFace: true },
    );
    expect(
      Object.keys(manifest.files)
        .filter((n) => n.startsWith("hf/"))
        .sort(),
    ).toEqual([
      "hf/config.json",
      "hf/generation_config.json",
      "hf/model.safetensors",
      "hf/tokenizer.json",
      "hf/tokenizer_config.json",
    ]);
    const loaded = await loadCheckpoint(store, "run/checkpoints/step-000010");
    expect(loaded.huggingFace).toEqual(model.source);
    const exported = await readHuggingFaceFolder((f) => store.get(`run/checkpoints/step-000010/hf/${f}`), {
      where: "hf",
    });
    expect(sameBits(exported.params, model.params)).toBe(true);
    expect(exported.source).toEqual(model.source);
    // restoring the engine reads only what it needs: the export is never loaded back
    await store.delete("run/checkpoints/step-000010/hf/model.safetensors");
    await expect(loadCheckpoint(store, "run/checkpoints/step-000010")).resolves.toBeDefined();
  });

  it("loads a checkpoint whose weights are only its Hugging Face folder (the torch learner's), never reading dcp/", async () => {
    const dir = join(import.meta.dirname, "..", "..", "test", "fixtures", "hf", "tiny-qwen2");
    const read = async (f: string) => {
      try {
        return new Uint8Array(await readFile(join(dir, f)));
      } catch {
        return undefined;
      }
    };
    const model = await readHuggingFaceFolder(read, { where: dir });
    const store = new MemoryObjectStore();
    const prefix = "run/checkpoints/step-000004";
    const files: Record<string, { sha256: string; size: number }> = {};
    const put = async (name: string, bytes: Uint8Array | string) => {
      const r = await store.put(`${prefix}/${name}`, bytes);
      files[name] = { sha256: r.info.sha256, size: r.info.size };
    };
    for (const f of [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ])
      await put(`hf/${f}`, (await read(f))!);
    await put("huggingface.json", JSON.stringify(model.source));
    await put("tokenizer.json", JSON.stringify(model.tokenizerJson));
    await put("dcp/.metadata", "torch.distributed.checkpoint metadata");
    await put("dcp/__0_0.distcp", new Uint8Array(64));
    await commitCheckpointManifest(store, prefix, {
      format: CHECKPOINT_FORMAT,
      step: 4,
      parent: "step-3",
      files,
      metadata: { engine: "torch" },
    });
    await store.delete(`${prefix}/dcp/__0_0.distcp`);
    const loaded = await loadCheckpoint(store, prefix);
    expect(sameBits(loaded.params, model.params)).toBe(true);
    expect(loaded.config).toEqual(model.config);
    expect(loaded.huggingFace).toEqual(model.source);
    expect(loaded.optimizerState).toBeUndefined();
    expect(loaded.tokenizerJson).toEqual(model.tokenizerJson);
    // its weights are verified like every file of a checkpoint
    await store.put(`${prefix}/hf/model.safetensors`, new Uint8Array(8));
    await expect(loadCheckpoint(store, prefix)).rejects.toThrow(/hf\/model.safetensors is corrupted/);
  });
});
