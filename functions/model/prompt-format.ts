/**
 * Prompts as the policy sees them: the (hinted) problem as raw text, or as one user message through
 * the model's chat template, rendered with @huggingface/jinja (the template engine of
 * transformers.js) the way transformers' `apply_chat_template(..., add_generation_prompt=True)`
 * renders it, then tokenised without adding special tokens again. The only module importing
 * @huggingface/jinja.
 */
import { Template } from "@huggingface/jinja";
import { z } from "zod";
import { InputError } from "../runtime/errors.ts";
import type { HuggingFaceSource } from "./hf-folder.ts";
import {
  specialTokenText,
  type Tokenizer,
  type TokenizerConfig,
  TokenizerConfigSchema,
} from "./tokenizer.ts";

export const PromptFormat = { auto: "auto", raw: "raw", chat: "chat" } as const;
export type PromptFormat = (typeof PromptFormat)[keyof typeof PromptFormat];

export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** turns the text of a prompt (problem, maybe with a hint) into the token ids the policy is conditioned on */
export interface PromptEncoder {
  /** what `auto` resolved to */
  readonly format: "raw" | "chat";
  /** the prompt text the tokenizer sees (the rendered chat template, or the text itself) */
  render(text: string): string;
  encode(text: string): number[];
  /** token ids that end a response: generation_config.json's eos_token_id and the tokenizer's eos token */
  readonly stopTokens: readonly number[];
}

const GenerationConfigSchema = z.looseObject({
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).nullish(),
});

/** the chat template of a model folder: chat_template.jinja, else tokenizer_config.json's `chat_template` */
export function chatTemplateOf(
  source: HuggingFaceSource | undefined,
  config: TokenizerConfig | undefined,
): string | undefined {
  const file = source?.files["chat_template.jinja"];
  if (file !== undefined) return file;
  const t = config?.chat_template;
  if (typeof t === "string") return t;
  // older folders list named templates; transformers uses "default"
  return t?.find((x) => x.name === "default")?.template;
}

/** transformers' rendering context: messages, the generation prompt, special tokens as text, and kwargs */
export function renderChat(
  template: string,
  messages: readonly ChatMessage[],
  config: TokenizerConfig | undefined,
  kwargs: Readonly<Record<string, unknown>> = {},
): string {
  const special: Record<string, string> = {};
  for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"] as const) {
    const text = specialTokenText(config?.[key]);
    if (text !== undefined) special[key] = text;
  }
  return new Template(template).render({
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: true,
    ...special,
    ...kwargs,
  });
}

export function tokenizerConfigOf(source: HuggingFaceSource | undefined): TokenizerConfig | undefined {
  const text = source?.files["tokenizer_config.json"];
  return text === undefined ? undefined : TokenizerConfigSchema.parse(JSON.parse(text));
}

function generationEosIds(source: HuggingFaceSource | undefined): number[] {
  const text = source?.files["generation_config.json"];
  if (text === undefined) return [];
  const parsed = GenerationConfigSchema.safeParse(JSON.parse(text));
  const eos = parsed.success ? parsed.data.eos_token_id : undefined;
  if (eos === undefined || eos === null) return [];
  return Array.isArray(eos) ? eos : [eos];
}

/**
 * The prompt encoder of a policy. Without a Hugging Face source (the built-in policy) prompts are
 * raw text after the tokenizer's BOS token, as the warm start trained it. A Hugging Face model's raw
 * prompts get the tokenizer's own special tokens (`tokenizer(text)`); `chat` (or `auto` when the
 * model has a chat template) sends the text as one user message, with no system prompt and no
 * added instruction, as the official QuestA code does. `enableThinking` is passed to the template
 * as `enable_thinking` (Qwen3's switch; other templates ignore it).
 */
export function createPromptEncoder(options: {
  tokenizer: Tokenizer;
  source?: HuggingFaceSource;
  format: PromptFormat;
  enableThinking?: boolean;
  /** the spec field the format came from, for errors */
  path?: string;
}): PromptEncoder {
  const { tokenizer, source } = options;
  const config = tokenizerConfigOf(source);
  const template = chatTemplateOf(source, config);
  const stopTokens = [
    ...new Set([...generationEosIds(source), ...(tokenizer.eosId === undefined ? [] : [tokenizer.eosId])]),
  ];
  if (options.format === "chat" && template === undefined) {
    throw new InputError("model.no_chat_template", [
      {
        path: options.path ?? "model.prompt.format",
        message: source
          ? "the model has no chat template (neither chat_template.jinja nor chat_template in tokenizer_config.json)"
          : "the built-in policy has no chat template",
        hint: "use format raw (or auto), or add the model's chat template to its folder",
      },
    ]);
  }
  const useChat = template !== undefined && options.format !== "raw";
  if (useChat) {
    const kwargs = { enable_thinking: options.enableThinking ?? true };
    const render = (text: string) => renderChat(template, [{ role: "user", content: text }], config, kwargs);
    return {
      format: "chat",
      render,
      encode: (text) => tokenizer.encode(render(text), { addSpecialTokens: false }),
      stopTokens,
    };
  }
  if (!source) {
    const bos = tokenizer.bosId;
    return {
      format: "raw",
      render: (text) => text,
      encode: (text) => (bos === undefined ? tokenizer.encode(text) : [bos, ...tokenizer.encode(text)]),
      stopTokens,
    };
  }
  return {
    format: "raw",
    render: (text) => text,
    encode: (text) => tokenizer.encode(text, { addSpecialTokens: true }),
    stopTokens,
  };
}
