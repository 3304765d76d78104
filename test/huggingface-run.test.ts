/**
 * A real-model run end to end, as a user would do it: `questa run` on the example file that starts
 * from a tiny Qwen2 folder saved by transformers (test/fixtures/hf/tiny-qwen2), then
 * `questa model export` of its final checkpoint. The export must be the folder transformers wrote,
 * with the trained weights: the same config.json, the same tensor names, shapes and dtype (what
 * transformers' loader checks; scripts/reference/check_hf_export.py loads such exports in
 * transformers itself and compares logits).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCheckpoint } from "../functions/model/checkpoint.ts";
import { readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { readSafetensorsHeader } from "../functions/model/safetensors.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { runQuesta } from "./questa-cli.ts";
import { testTempDir } from "./temp-dir.ts";

const questa = (args: string[], cwd: string) => runQuesta(args, { cwd, cacheDir: join(cwd, "cache") });

const root = join(import.meta.dirname, "..");
const example = join(root, "manifests", "examples", "tiny-qwen2.yaml");
const source = join(root, "test", "fixtures", "hf", "tiny-qwen2");

function tensors(dir: string): Map<string, { dtype: string; shape: string }> {
  const out = new Map<string, { dtype: string; shape: string }>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".safetensors"))) {
    for (const e of readSafetensorsHeader(new Uint8Array(readFileSync(join(dir, file)))).tensors.values()) {
      out.set(e.name, { dtype: e.dtype, shape: e.shape.join(",") });
    }
  }
  return out;
}

const readDir = (dir: string) => async (name: string) => {
  try {
    return new Uint8Array(readFileSync(join(dir, name)));
  } catch {
    return undefined;
  }
};

describe("questa run from a Hugging Face folder (embedded)", () => {
  it("trains the tiny Qwen2 example to the end and exports its checkpoint as the same kind of folder", async () => {
    const dir = testTempDir("questa-hf-run-");
    const run = await questa(["run", example], dir);
    expect(run.output).toContain("finished 4 steps");
    expect(run.code).toBe(0);

    const objects = join(dir, ".questa", "runs", "tiny-qwen2", "objects");
    const store = new FsObjectStore(objects);
    const initial = await loadCheckpoint(store, "checkpoints/step-000000");
    const final = await loadCheckpoint(store, "checkpoints/step-000004");
    expect(final.huggingFace?.modelType).toBe("qwen2");
    // trained: the float32 weights moved from the source's
    let moved = 0;
    for (let i = 0; i < final.params.length; i++)
      moved = Math.max(moved, Math.abs(final.params[i]! - initial.params[i]!));
    expect(moved).toBeGreaterThan(0);
    // every full checkpoint carries its Hugging Face folder under hf/
    for (const step of ["000000", "000002", "000004"]) {
      expect(readdirSync(join(objects, "checkpoints", `step-${step}`, "hf")).sort()).toEqual([
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
      ]);
    }

    const exported = await questa(
      ["model", "export", join(objects, "checkpoints", "step-000004"), "trained"],
      dir,
    );
    expect(exported.output).toMatch(/exported step 4 of .* \(5 files/);
    expect(exported.code).toBe(0);
    const out = join(dir, "trained");
    // what transformers loads: config.json verbatim, the same weights by name, shape and dtype
    expect(readFileSync(join(out, "config.json"), "utf8")).toBe(
      readFileSync(join(source, "config.json"), "utf8"),
    );
    expect(readFileSync(join(out, "tokenizer_config.json"), "utf8")).toBe(
      readFileSync(join(source, "tokenizer_config.json"), "utf8"),
    );
    expect(tensors(out)).toEqual(tensors(source));
    // and the trained weights, rounded to bf16, are what it holds (bit for bit the hf/ folder the run wrote)
    const back = await readHuggingFaceFolder(readDir(out), { where: out });
    const written = await readHuggingFaceFolder(readDir(join(objects, "checkpoints", "step-000004", "hf")), {
      where: "hf",
    });
    expect(Buffer.from(back.params.buffer).equals(Buffer.from(written.params.buffer))).toBe(true);
    let rounding = 0;
    for (let i = 0; i < back.params.length; i++) {
      const x = final.params[i]!;
      rounding = Math.max(rounding, Math.abs(back.params[i]! - x) / Math.max(Math.abs(x), 1e-30));
    }
    expect(rounding).toBeLessThanOrEqual(2 ** -8);

    // inspect reads the same checkpoint
    const inspected = await questa(
      ["model", "inspect", join(objects, "checkpoints", "step-000004"), "--json"],
      dir,
    );
    expect(JSON.parse(inspected.output)).toMatchObject({ kind: "checkpoint", step: 4, modelType: "qwen2" });
  }, 300_000);
});
