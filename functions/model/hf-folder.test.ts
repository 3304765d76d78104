import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { modelConfigFromHf } from "./hf-config.ts";
import {
  huggingFaceFolderFiles,
  type LoadedHfModel,
  llamaSourceFor,
  type ReadFolderFile,
  readHuggingFaceFolder,
} from "./hf-folder.ts";
import { hfWeightMap } from "./hf-weights.ts";
import { initParams } from "./params.ts";
import { createRng } from "./rng.ts";
import { encodeSafetensors, readSafetensorsHeader } from "./safetensors.ts";
import { charTokenizer } from "./tokenizer.ts";

const FIXTURES = join(import.meta.dirname, "..", "..", "test", "fixtures", "hf");

async function folderFiles(name: string): Promise<Map<string, Uint8Array>> {
  const dir = join(FIXTURES, name);
  const files = new Map<string, Uint8Array>();
  for (const file of await readdir(dir)) files.set(file, new Uint8Array(await readFile(join(dir, file))));
  return files;
}

const reader =
  (files: ReadonlyMap<string, Uint8Array>): ReadFolderFile =>
  async (name) =>
    files.get(name);

async function refusal(files: ReadonlyMap<string, Uint8Array>): Promise<InputError> {
  try {
    await readHuggingFaceFolder(reader(files), { where: "s3://models/tiny", path: "spec.model.uri" });
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error("the folder was accepted");
}

const text = (s: string) => new TextEncoder().encode(s);
/** bitwise equality of two float arrays (fast for weight-sized arrays) */
const sameFloats = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** a safetensors file with zero-filled tensors of any dtype (I8 = 1 byte, F32 = 4) */
function rawSafetensors(entries: { name: string; dtype: "I8" | "F32"; shape: number[] }[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const e of entries) {
    const size = e.shape.reduce((a, b) => a * b, 1) * (e.dtype === "I8" ? 1 : 4);
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}
const jsonOf = (bytes: Uint8Array | undefined) =>
  JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;

describe("reading Hugging Face folders", () => {
  it("maps each supported architecture's config.json, in both dialects", async () => {
    const qwen2 = await readHuggingFaceFolder(reader(await folderFiles("tiny-qwen2")), {
      where: "tiny-qwen2",
    });
    expect(qwen2.config).toMatchObject({
      layers: 2,
      width: 64,
      heads: 4,
      kvHeads: 2,
      mlpWidth: 128,
      vocabSize: 384,
      maxSeqLen: 256,
      ropeTheta: 1e6, // rope_theta at the top level (released Qwen2.5 folders)
      normEpsilon: 1e-6,
      tiedEmbeddings: true,
      qkvBias: true,
      attnOutBias: false,
      qkNorm: false,
    });
    expect(qwen2.source).toMatchObject({ modelType: "qwen2", dtype: "bfloat16" });
    const llama = await readHuggingFaceFolder(reader(await folderFiles("tiny-llama")), {
      where: "tiny-llama",
    });
    expect(llama.config).toMatchObject({
      qkvBias: true,
      attnOutBias: true,
      mlpBias: true,
      tiedEmbeddings: false,
      ropeScaling: {
        type: "llama3",
        factor: 4,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositions: 64,
      },
    });
    expect(llama.source.dtype).toBe("float32");
    const qwen3 = await readHuggingFaceFolder(reader(await folderFiles("tiny-qwen3")), {
      where: "tiny-qwen3",
    });
    expect(qwen3.config).toMatchObject({ headDim: 32, qkNorm: true, qkvBias: false, width: 64, heads: 4 });
    const sharded = await readHuggingFaceFolder(reader(await folderFiles("tiny-qwen2-sharded")), {
      where: "tiny-qwen2-sharded",
    });
    expect(sharded.weightFiles).toEqual([
      "model-00001-of-00003.safetensors",
      "model-00002-of-00003.safetensors",
      "model-00003-of-00003.safetensors",
    ]);
    expect(sharded.source.dtype).toBe("float16");
    expect(sharded.config.kvHeads).toBe(1);
  });

  it("caps the context at maxSeqLen when asked, never above max_position_embeddings", async () => {
    const files = await folderFiles("tiny-qwen2");
    const short = await readHuggingFaceFolder(reader(files), { where: "x", maxSeqLen: 64 });
    expect(short.config.maxSeqLen).toBe(64);
    const long = await readHuggingFaceFolder(reader(files), { where: "x", maxSeqLen: 100_000 });
    expect(long.config.maxSeqLen).toBe(256);
  });
});

describe("refusing bad folders, naming the file and the fix", () => {
  let good: Map<string, Uint8Array>;
  let sharded: Map<string, Uint8Array>;
  beforeAll(async () => {
    good = await folderFiles("tiny-qwen2");
    sharded = await folderFiles("tiny-qwen2-sharded");
  });

  it("an unsupported model_type, listing the supported ones", async () => {
    const files = new Map(good);
    files.set(
      "config.json",
      text(JSON.stringify({ ...jsonOf(good.get("config.json")), model_type: "gpt2" })),
    );
    const error = await refusal(files);
    expect(error.code).toBe("model.invalid_folder");
    expect(error.issues).toEqual([
      expect.objectContaining({
        path: "spec.model.uri",
        message: expect.stringMatching(
          /config\.json: model_type: "gpt2" is not supported; supported: qwen2, llama, qwen3/,
        ),
      }),
    ]);
  });

  it("a missing shard", async () => {
    const files = new Map(sharded);
    files.delete("model-00002-of-00003.safetensors");
    const error = await refusal(files);
    expect(error.message).toMatch(
      /s3:\/\/models\/tiny\/model-00002-of-00003\.safetensors is missing \(listed in model\.safetensors\.index\.json\)/,
    );
    expect(error.message).toMatch(/fix: copy every shard/);
    // one issue for the shard, not one per tensor in it
    expect(error.issues).toHaveLength(1);
  });

  it("a weight whose shape does not match config.json", async () => {
    const files = new Map(good);
    files.set(
      "config.json",
      text(JSON.stringify({ ...jsonOf(good.get("config.json")), intermediate_size: 96 })),
    );
    const error = await refusal(files);
    expect(error.message).toMatch(
      /model\.safetensors: model\.layers\.0\.mlp\.gate_proj\.weight has shape \[128,64\], config\.json implies \[96,64\]/,
    );
  });

  it("an index that disagrees with its shards (a tensor in another shard, a wrong total_size)", async () => {
    const files = new Map(sharded);
    const index = jsonOf(sharded.get("model.safetensors.index.json")) as {
      metadata: Record<string, number>;
      weight_map: Record<string, string>;
    };
    const moved = Object.keys(index.weight_map).find(
      (k) => index.weight_map[k] === "model-00001-of-00003.safetensors",
    )!;
    index.weight_map[moved] = "model-00003-of-00003.safetensors";
    index.metadata.total_size = (index.metadata.total_size ?? 0) + 2;
    files.set("model.safetensors.index.json", text(JSON.stringify(index)));
    const error = await refusal(files);
    expect(error.message).toContain(
      `model-00001-of-00003.safetensors holds ${moved}, which model.safetensors.index.json places in model-00003-of-00003.safetensors`,
    );
    expect(error.message).toMatch(/total_size \d+ bytes; the shards hold \d+/);
  });

  it("missing weights, unexpected weights and quantised dtypes", async () => {
    const files = new Map(good);
    const header = readSafetensorsHeader(good.get("model.safetensors")!);
    const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const e of header.tensors.values()) {
      if (e.name === "model.norm.weight") continue;
      tensors[e.name] = { shape: [...e.shape], data: new Float32Array(e.shape.reduce((a, b) => a * b, 1)) };
    }
    tensors["model.layers.0.self_attn.extra.weight"] = { shape: [2], data: new Float32Array(2) };
    files.set("model.safetensors", encodeSafetensors(tensors));
    const error = await refusal(files);
    expect(error.message).toMatch(/weight model\.norm\.weight is missing/);
    expect(error.message).toMatch(
      /unexpected weight model\.layers\.0\.self_attn\.extra\.weight for a qwen2 model/,
    );

    // a quantised tensor (int8 with the same element count) among float ones
    const quantised = new Map(good);
    const entries = [...header.tensors.values()].map((e) => ({
      name: e.name,
      dtype: e.name === "model.norm.weight" ? ("I8" as const) : ("F32" as const),
      shape: [...e.shape],
    }));
    quantised.set("model.safetensors", rawSafetensors(entries));
    const q = await refusal(quantised);
    expect(q.message).toMatch(
      /model\.norm\.weight has dtype I8; supported: BF16, F16, F32 \(fix: convert quantised weights to bf16/,
    );
  });

  it("no tokenizer.json, no weights, no config.json", async () => {
    const noTokenizer = new Map(good);
    noTokenizer.delete("tokenizer.json");
    expect((await refusal(noTokenizer)).message).toMatch(
      /no tokenizer\.json in s3:\/\/models\/tiny \(fix: save the tokenizer/,
    );
    const noWeights = new Map(good);
    noWeights.delete("model.safetensors");
    expect((await refusal(noWeights)).message).toMatch(
      /no model\.safetensors or model\.safetensors\.index\.json/,
    );
    const empty = new Map<string, Uint8Array>();
    expect((await refusal(empty)).message).toMatch(
      /no config\.json in s3:\/\/models\/tiny \(fix: point uri at a Hugging Face model folder/,
    );
  });

  it("every problem at once, not just the first", async () => {
    const files = new Map(sharded);
    files.delete("model-00003-of-00003.safetensors");
    files.delete("tokenizer.json");
    const error = await refusal(files);
    expect(error.issues.length).toBeGreaterThanOrEqual(2);
  });

  it("sliding-window attention and rope scalings we do not implement", () => {
    const base = {
      model_type: "qwen2",
      vocab_size: 8,
      hidden_size: 8,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 16,
    };
    const sliding = modelConfigFromHf({ ...base, use_sliding_window: true });
    expect(sliding.ok).toBe(false);
    const yarn = modelConfigFromHf({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } });
    expect(yarn.ok ? [] : yarn.problems.map((p) => p.message)).toEqual([
      'rope scaling "yarn" is not supported (supported: default, linear, llama3)',
    ]);
  });
});

describe("writing Hugging Face folders", () => {
  async function roundTrip(model: LoadedHfModel, maxShardBytes?: number) {
    const written = huggingFaceFolderFiles({
      config: model.config,
      params: model.params,
      source: model.source,
      tokenizerJson: model.tokenizerJson,
      ...(maxShardBytes === undefined ? {} : { maxShardBytes }),
    });
    const files = new Map(written.map((f) => [f.name, f.bytes]));
    return { files, back: await readHuggingFaceFolder(reader(files), { where: "export" }) };
  }

  it.each(["tiny-qwen2", "tiny-qwen2-sharded", "tiny-llama", "tiny-qwen3"])(
    "%s: weights back in the source dtype bit for bit, metadata files verbatim",
    async (name) => {
      const original = await folderFiles(name);
      const model = await readHuggingFaceFolder(reader(original), { where: name });
      const { files, back } = await roundTrip(model);
      expect(sameFloats(back.params, model.params)).toBe(true);
      expect(back.config).toEqual(model.config);
      for (const meta of [
        "config.json",
        "generation_config.json",
        "tokenizer_config.json",
        "chat_template.jinja",
      ]) {
        expect(files.get(meta)).toEqual(original.get(meta));
      }
      expect(JSON.parse(new TextDecoder().decode(files.get("tokenizer.json")))).toEqual(
        JSON.parse(new TextDecoder().decode(original.get("tokenizer.json"))),
      );
      // each tensor's bytes equal what transformers saved, in its dtype
      const originalTensors = new Map<string, Uint8Array>();
      for (const [file, bytes] of original) {
        if (!file.endsWith(".safetensors")) continue;
        for (const e of readSafetensorsHeader(bytes).tensors.values())
          originalTensors.set(e.name, bytes.subarray(e.begin, e.end));
      }
      const exported = readSafetensorsHeader(files.get("model.safetensors")!);
      expect([...exported.tensors.keys()].sort()).toEqual([...originalTensors.keys()].sort());
      for (const e of exported.tensors.values()) {
        const same = Buffer.from(files.get("model.safetensors")!.subarray(e.begin, e.end)).equals(
          originalTensors.get(e.name)!,
        );
        expect({ tensor: e.name, same }).toEqual({ tensor: e.name, same: true });
      }
    },
  );

  it("shards with an index above the shard size, read back identically", async () => {
    const model = await readHuggingFaceFolder(reader(await folderFiles("tiny-llama")), {
      where: "tiny-llama",
    });
    const { files, back } = await roundTrip(model, 100_000);
    const shards = [...files.keys()].filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(1);
    const index = jsonOf(files.get("model.safetensors.index.json")) as { weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).sort()).toEqual(
      hfWeightMap(model.config)
        .map((m) => m.hfName)
        .sort(),
    );
    expect(sameFloats(back.params, model.params)).toBe(true);
  });

  it("the built-in policy exports as a Llama model when its architecture has one, and is refused otherwise", async () => {
    const tokenizer = charTokenizer();
    const config = {
      vocabSize: tokenizer.vocabSize,
      layers: 2,
      width: 32,
      heads: 4,
      kvHeads: 2,
      mlpWidth: 64,
      activation: "swiglu" as const,
      norm: "rmsnorm" as const,
      positions: "rotary" as const,
      maxSeqLen: 64,
      tiedEmbeddings: true,
      normEpsilon: 1e-5,
      ropeTheta: 10000,
      initStd: 0.02,
      qkvBias: false,
      attnOutBias: false,
      mlpBias: false,
      qkNorm: false,
    };
    const params = initParams(config, createRng(3));
    const source = llamaSourceFor(config, {
      bosId: 1,
      eosId: 2,
      padId: 0,
      bos: "<bos>",
      eos: "<eos>",
      pad: "<pad>",
    });
    const files = new Map(
      huggingFaceFolderFiles({ config, params, source, tokenizerJson: tokenizer.toJSON() }).map((f) => [
        f.name,
        f.bytes,
      ]),
    );
    const back = await readHuggingFaceFolder(reader(files), { where: "export" });
    expect(sameFloats(back.params, params)).toBe(true);
    expect(back.config).toEqual(config);
    expect(() =>
      llamaSourceFor({ ...config, norm: "layernorm", activation: "gelu", positions: "learned" }, {}),
    ).toThrow(/norm \(needs rmsnorm\), activation \(needs swiglu\), positions \(needs rotary\)/);
  });
});

describe("float32 -> bfloat16 / float16 as PyTorch rounds", () => {
  it("matches torch's .to(dtype) bit for bit (round to nearest even, overflow, subnormals)", async () => {
    const bytes = new Uint8Array(await readFile(join(FIXTURES, "dtype-conversions.safetensors")));
    const header = readSafetensorsHeader(bytes);
    const f32 = header.tensors.get("float32")!;
    const values = new Float32Array(bytes.slice(f32.begin, f32.end).buffer);
    for (const [name, dtype] of [
      ["bfloat16", "BF16"],
      ["float16", "F16"],
    ] as const) {
      const ours = readSafetensorsHeader(
        encodeSafetensors({ x: { shape: [values.length], data: values } }, {}, dtype),
      );
      const encoded = encodeSafetensors({ x: { shape: [values.length], data: values } }, {}, dtype);
      const e = ours.tensors.get("x")!;
      const ref = header.tensors.get(name)!;
      expect(
        Buffer.from(encoded.subarray(e.begin, e.end)).equals(Buffer.from(bytes.subarray(ref.begin, ref.end))),
      ).toBe(true);
    }
  });
});

describe("JSON errors in a folder", () => {
  it("name the file and the position, never quote its bytes", async () => {
    const files = await folderFiles("tiny-qwen2");
    files.set("tokenizer_config.json", text("AKIAIOSFODNN7EXAMPLE secret-looking bytes"));
    const error = await refusal(files);
    expect(error.message).toMatch(/tokenizer_config\.json is not JSON/);
    expect(error.message).not.toContain("AKIA");
  });
});
