/**
 * Tokenizers: any Hugging Face `tokenizer.json` through @huggingface/tokenizers, and the synthetic
 * task's character vocabulary expressed as a `tokenizer.json` too (with a fast path giving identical ids).
 */
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { InputError, schemaInputError } from "../runtime/errors.ts";

export interface Tokenizer {
  readonly vocabSize: number;
  /** special token ids when the vocabulary has them */
  readonly padId: number | undefined;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /**
   * token ids of `text`; `addSpecialTokens` applies the tokenizer's post-processor (e.g. a BOS token),
   * as transformers' `tokenizer(text)` does; without it, special-token text still maps to its id
   */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** text of `ids`; special tokens are skipped unless `skipSpecialTokens` is false */
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** the `tokenizer.json` this tokenizer was built from (stored with checkpoints) */
  toJSON(): unknown;
}

export const CHAR_SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>"] as const;

/** printable ASCII (space..~) and newline */
export function charAlphabet(): string[] {
  const chars = ["\n"];
  for (let c = 32; c < 127; c++) chars.push(String.fromCharCode(c));
  return chars;
}

/** a `tokenizer.json` (BPE without merges = one token per character, Fuse decoder) */
export function charTokenizerJson(alphabet: readonly string[] = charAlphabet()): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  CHAR_SPECIAL_TOKENS.forEach((t, i) => {
    vocab[t] = i;
  });
  alphabet.forEach((ch, i) => {
    vocab[ch] = CHAR_SPECIAL_TOKENS.length + i;
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: CHAR_SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

const TokenizerJsonSchema = z.looseObject({
  model: z.looseObject({ type: z.string(), vocab: z.unknown().optional() }),
  added_tokens: z
    .array(z.looseObject({ id: z.number().int(), content: z.string(), special: z.boolean().optional() }))
    .optional(),
});

/** vocab size = largest id + 1 over the model vocab and the added tokens */
function vocabSizeOf(json: z.infer<typeof TokenizerJsonSchema>, hf: HfTokenizer): number {
  let max = -1;
  const vocab = json.model.vocab;
  if (vocab && typeof vocab === "object" && !Array.isArray(vocab)) {
    for (const id of Object.values(vocab as Record<string, number>)) if (id > max) max = id;
  } else if (Array.isArray(vocab)) max = vocab.length - 1;
  for (const t of json.added_tokens ?? []) if (t.id > max) max = t.id;
  if (max < 0) max = hf.get_vocab().size - 1;
  return max + 1;
}

/** a special token in tokenizer_config.json: a string or an AddedToken object */
const SpecialTokenSchema = z.union([z.string(), z.looseObject({ content: z.string() })]).nullish();

/** the parts of tokenizer_config.json the tokenizer itself uses */
export const TokenizerConfigSchema = z.looseObject({
  bos_token: SpecialTokenSchema,
  eos_token: SpecialTokenSchema,
  pad_token: SpecialTokenSchema,
  unk_token: SpecialTokenSchema,
  add_bos_token: z.boolean().optional(),
  add_eos_token: z.boolean().optional(),
  chat_template: z
    .union([z.string(), z.array(z.looseObject({ name: z.string(), template: z.string() }))])
    .nullish(),
});
export type TokenizerConfig = z.infer<typeof TokenizerConfigSchema>;

/** the text of a special token entry of tokenizer_config.json */
export function specialTokenText(entry: z.infer<typeof SpecialTokenSchema>): string | undefined {
  if (entry === null || entry === undefined) return undefined;
  return typeof entry === "string" ? entry : entry.content;
}

class HuggingFaceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId: number | undefined;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly #hf: HfTokenizer;
  readonly #json: unknown;
  readonly #addBos: boolean;
  readonly #addEos: boolean;

  constructor(json: unknown, config?: TokenizerConfig) {
    const parsed = TokenizerJsonSchema.safeParse(json);
    if (!parsed.success) {
      throw schemaInputError("tokenizer.invalid", parsed.error, {
        under: "tokenizer",
        hint: "pass the contents of a Hugging Face tokenizer.json",
      });
    }
    this.#json = json;
    this.#hf = new HfTokenizer(json as object, {});
    this.vocabSize = vocabSizeOf(parsed.data, this.#hf);
    const find = (...names: string[]) => {
      for (const n of names) {
        const id = this.#hf.token_to_id(n);
        if (id !== undefined) return id;
      }
      return undefined;
    };
    const named = (entry: z.infer<typeof SpecialTokenSchema>) => {
      const text = specialTokenText(entry);
      return text === undefined ? undefined : find(text);
    };
    if (config) {
      // a model folder says which tokens are special; a null bos_token (Qwen) means none
      this.padId = named(config.pad_token);
      this.bosId = named(config.bos_token);
      this.eosId = named(config.eos_token);
    } else {
      this.padId = find("<pad>", "<|pad|>", "[PAD]");
      this.bosId = find("<bos>", "<s>", "<|begin_of_text|>", "<|im_start|>");
      this.eosId = find("<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>");
    }
    this.#addBos = config?.add_bos_token === true;
    this.#addEos = config?.add_eos_token === true;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const special = opts.addSpecialTokens === true;
    const ids = this.#hf.encode(text, { add_special_tokens: special }).ids;
    if (!special) return ids;
    // tokenizer_config's add_bos_token / add_eos_token, when the post-processor does not already add them
    if (this.#addBos && this.bosId !== undefined && ids[0] !== this.bosId) ids.unshift(this.bosId);
    if (this.#addEos && this.eosId !== undefined && ids[ids.length - 1] !== this.eosId) ids.push(this.eosId);
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    // the library refuses an empty list; a response that is only a stop token decodes to ""
    if (ids.length === 0) return "";
    return this.#hf.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens !== false,
      // transformers 5 never cleans up spaces for BPE tokenizers (it would strip spaces before punctuation)
      clean_up_tokenization_spaces: false,
    });
  }

  toJSON(): unknown {
    return this.#json;
  }
}

/** the character vocabulary: same ids as the library on the same tokenizer.json, without its per-call cost */
class CharTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly #ids = new Map<string, number>();
  readonly #chars: string[] = [];
  readonly #json: Record<string, unknown>;

  constructor(alphabet: readonly string[]) {
    this.#json = charTokenizerJson(alphabet);
    // special tokens decode to nothing, like skip_special_tokens
    for (let i = 0; i < CHAR_SPECIAL_TOKENS.length; i++) this.#chars[i] = "";
    alphabet.forEach((ch, i) => {
      this.#ids.set(ch, CHAR_SPECIAL_TOKENS.length + i);
      this.#chars[CHAR_SPECIAL_TOKENS.length + i] = ch;
    });
    this.vocabSize = CHAR_SPECIAL_TOKENS.length + alphabet.length;
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    for (const ch of text) {
      const id = this.#ids.get(ch);
      if (id === undefined) {
        throw new InputError("tokenizer.unknown_character", [
          {
            path: "text",
            message: `character ${JSON.stringify(ch)} is not in the character vocabulary`,
            hint: "use printable ASCII and newlines only",
          },
        ]);
      }
      ids.push(id);
    }
    return ids;
  }

  decode(ids: readonly number[]): string {
    let s = "";
    for (const id of ids) s += this.#chars[id] ?? "";
    return s;
  }

  toJSON(): unknown {
    return this.#json;
  }
}

/** the synthetic task's character tokenizer: <pad>=0, <bos>=1, <eos>=2, then newline and printable ASCII */
export function charTokenizer(alphabet: readonly string[] = charAlphabet()): Tokenizer {
  return new CharTokenizer(alphabet);
}

/**
 * a tokenizer from `tokenizer.json` contents (and a model folder's tokenizer_config.json, which
 * names the special tokens); our own char vocabulary gets the fast path
 */
export function loadTokenizer(
  json: unknown,
  opts: { fastPath?: boolean; config?: TokenizerConfig } = {},
): Tokenizer {
  if (opts.fastPath !== false && opts.config === undefined) {
    const alphabet = charAlphabetOf(json);
    if (alphabet) return new CharTokenizer(alphabet);
  }
  return new HuggingFaceTokenizer(json, opts.config);
}

/** the alphabet when `json` is exactly a char tokenizer we generate, else undefined */
function charAlphabetOf(json: unknown): string[] | undefined {
  const parsed = TokenizerJsonSchema.safeParse(json);
  if (!parsed.success || parsed.data.model.type !== "BPE") return undefined;
  const vocab = parsed.data.model.vocab as Record<string, number> | undefined;
  if (!vocab) return undefined;
  const entries = Object.entries(vocab).sort((a, b) => a[1] - b[1]);
  const alphabet = entries.slice(CHAR_SPECIAL_TOKENS.length).map(([ch]) => ch);
  const regenerated = charTokenizerJson(alphabet);
  return JSON.stringify(regenerated) === JSON.stringify(json) ? alphabet : undefined;
}
