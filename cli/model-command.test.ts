import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { saveCheckpoint } from "../functions/model/checkpoint.ts";
import { readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { initParams } from "../functions/model/params.ts";
import { createRng } from "../functions/model/rng.ts";
import { readSafetensorsHeader } from "../functions/model/safetensors.ts";
import { charTokenizer } from "../functions/model/tokenizer.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { testTempDir } from "../test/temp-dir.ts";
import { main } from "./main.ts";
import { runModel } from "./model-command.ts";
import { captureIO } from "./test-io.ts";

const FIXTURE = join(import.meta.dirname, "..", "test", "fixtures", "hf", "tiny-qwen2");

function readFolder(dir: string) {
  return readHuggingFaceFolder(
    async (name) => {
      try {
        return new Uint8Array(readFileSync(join(dir, name)));
      } catch {
        return undefined;
      }
    },
    { where: dir },
  );
}

describe("questa model inspect", () => {
  it("describes a Hugging Face folder: architecture, parameters, dtype, memory", async () => {
    const { io, stdout } = captureIO(process.cwd());
    expect(await runModel(["inspect", FIXTURE], io)).toBe(0);
    const text = stdout();
    expect(text).toContain("Hugging Face folder, qwen2");
    expect(text).toContain("parameters   98,880");
    expect(text).toContain("2 layers, width 64, 4 heads (2 KV, head dim 16), MLP 128, vocabulary 384");
    expect(text).toContain("bfloat16 on disk");
    expect(text).toContain("has a chat template, eos <|im_end|>");
    expect(text).toContain("bfloat16 on disk (193.1 KiB)");
    expect(text).toMatch(/training {3}3\.8 MiB \(weights, gradient, AdamW moments\)/);
    const json = captureIO(process.cwd());
    expect(await runModel(["inspect", FIXTURE, "--json"], json.io)).toBe(0);
    expect(JSON.parse(json.stdout())).toMatchObject({
      kind: "huggingface",
      parameters: 98880,
      dtype: "bfloat16",
    });
  });

  it("refuses a directory that is neither, and an unsupported model type, naming the fix", async () => {
    const dir = testTempDir("questa-inspect-");
    const empty = captureIO(dir);
    expect(await runModel(["inspect", dir], empty.io)).toBe(1);
    expect(empty.stderr()).toMatch(
      /neither a questa checkpoint \(manifest\.json\) nor a Hugging Face model folder/,
    );
    writeFileSync(join(dir, "config.json"), JSON.stringify({ model_type: "gpt2" }));
    const gpt2 = captureIO(dir);
    expect(await runModel(["inspect", dir], gpt2.io)).toBe(1);
    expect(gpt2.stderr()).toMatch(/model_type: "gpt2" is not supported; supported: qwen2, llama, qwen3/);
  });
});

describe("questa model export", () => {
  it("writes a checkpoint of a Hugging Face run as a Hugging Face folder in the source dtype", async () => {
    const dir = testTempDir("questa-export-");
    const model = await readFolder(FIXTURE);
    const ckptDir = join(dir, "checkpoints", "step-000010");
    await saveCheckpoint(new FsObjectStore(ckptDir), "", {
      config: model.config,
      params: model.params,
      tokenizerJson: model.tokenizerJson,
      huggingFace: model.source,
      step: 10,
    });
    const { io, stdout, stderr } = captureIO(dir);
    expect(await runModel(["export", "checkpoints/step-000010", "out"], io), stderr()).toBe(0);
    expect(stdout()).toMatch(/exported step 10 of .* \(5 files, .* MiB, bfloat16\)/);
    expect(readdirSync(join(dir, "out")).sort()).toEqual(
      [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
      ].sort(),
    );
    // the same bytes transformers saved (the weights were bf16 all along)
    expect(readFileSync(join(dir, "out", "config.json"))).toEqual(readFileSync(join(FIXTURE, "config.json")));
    const back = await readFolder(join(dir, "out"));
    expect(Buffer.from(back.params.buffer).equals(Buffer.from(model.params.buffer))).toBe(true);

    // --dtype converts; a non-empty target is refused and left alone
    const f32 = captureIO(dir);
    expect(await runModel(["export", "checkpoints/step-000010", "out32", "--dtype", "float32"], f32.io)).toBe(
      0,
    );
    const header = readSafetensorsHeader(
      new Uint8Array(readFileSync(join(dir, "out32", "model.safetensors"))),
    );
    expect([...header.tensors.values()].every((e) => e.dtype === "F32")).toBe(true);
    const again = captureIO(dir);
    expect(await runModel(["export", "checkpoints/step-000010", "out"], again.io)).toBe(1);
    expect(again.stderr()).toMatch(/out exists and is not empty \(fix: give a new directory/);
    const bad = captureIO(dir);
    expect(await main(["model", "export", "checkpoints/step-000010", "x", "--dtype", "int8"], bad.io)).toBe(
      2,
    );
    expect(bad.stderr()).toContain('--dtype: Invalid option: expected one of "bfloat16"|"float16"|"float32"');
  });

  it("exports the built-in policy as Llama when its architecture allows, else says which fields to change", async () => {
    const dir = testTempDir("questa-export-");
    const tokenizer = charTokenizer();
    const base = { vocabSize: tokenizer.vocabSize, layers: 1, width: 16, heads: 2, maxSeqLen: 32 };
    for (const [name, config] of [
      ["llama", { ...base, norm: "rmsnorm", activation: "swiglu", positions: "rotary" }],
      ["gpt", base],
    ] as const) {
      const ckpt = join(dir, name);
      mkdirSync(ckpt);
      const parsed = (await import("../functions/model/config.ts")).ModelConfigSchema.parse(config);
      await saveCheckpoint(new FsObjectStore(ckpt), "", {
        config: parsed,
        params: initParams(parsed, createRng(1)),
        tokenizerJson: tokenizer.toJSON(),
        step: 3,
      });
    }
    const ok = captureIO(dir);
    expect(await runModel(["export", "llama", "llama-hf"], ok.io), ok.stderr()).toBe(0);
    const exported = JSON.parse(readFileSync(join(dir, "llama-hf", "config.json"), "utf8"));
    expect(exported).toMatchObject({
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      eos_token_id: 2,
    });
    const refused = captureIO(dir);
    expect(await runModel(["export", "gpt", "gpt-hf"], refused.io)).toBe(1);
    expect(refused.stderr()).toMatch(
      /norm \(needs rmsnorm\), activation \(needs swiglu\), positions \(needs rotary\)/,
    );
    expect(readdirSync(dir).includes("gpt-hf")).toBe(false);
  });
});
