/**
 * Checkpoints in an ObjectStore: model.safetensors, optimizer.safetensors (both split into
 * `-0000N-of-0000M` files above 1 GiB), config.json, tokenizer.json, huggingface.json (for runs that
 * started from a Hugging Face folder) and manifest.json (step, parent, sha256 of each file). With
 * `exportHuggingFace`, the same weights are also written as a Hugging Face folder under `hf/`
 * (listed in the manifest too). The manifest is written last and only if absent, so a checkpoint is
 * visible exactly when complete; loading verifies every file it reads. The torch learner's
 * checkpoints (functions/host/torch-learner-engine.ts) hold their weights only as that `hf/` folder,
 * with their optimiser state as torch.distributed.checkpoint files under `dcp/`; loading reads the
 * weights from `hf/` then.
 */
import { z } from "zod";
import { DeadLetterError, RetryableError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { type ModelConfig, type ModelConfigInput, ModelConfigSchema } from "./config.ts";
import {
  type HuggingFaceSource,
  HuggingFaceSourceSchema,
  huggingFaceFolderFiles,
  readHuggingFaceFolder,
} from "./hf-folder.ts";
import { type ParamSpec, paramLayout } from "./params.ts";
import { encodeSafetensors, type NamedTensor, readSafetensorsHeader, readTensorInto } from "./safetensors.ts";

export const CHECKPOINT_FORMAT = "questa.checkpoint.v1";
export const MANIFEST_FILE = "manifest.json";
export const HUGGINGFACE_SOURCE_FILE = "huggingface.json";
/** the folder, under a checkpoint's prefix, holding its Hugging Face export */
export const HF_EXPORT_FOLDER = "hf";
/** the folder, under a torch learner's checkpoint, of its torch.distributed.checkpoint files */
export const DCP_FOLDER = "dcp";
/** largest weight or optimiser file: Node.js reads at most 2 GiB per file, S3 objects stay manageable */
export const MAX_CHECKPOINT_FILE_BYTES = 1 << 30;

export const CheckpointManifestSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  step: z.number().int().nonnegative(),
  /** prefix of the checkpoint this one was trained from, null for the first */
  parent: z.string().nullable(),
  files: z.record(
    z.string(),
    z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int().nonnegative() }),
  ),
  metadata: z.record(z.string(), z.string()).default({}),
});
export type CheckpointManifest = z.infer<typeof CheckpointManifestSchema>;

export interface OptimizerState {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** updates applied so far (drives Adam's bias correction) */
  readonly step: number;
}

export interface CheckpointData {
  readonly config: ModelConfigInput;
  /** flat parameters in paramLayout order */
  readonly params: Float32Array;
  readonly optimizerState?: OptimizerState;
  /** contents of tokenizer.json (e.g. `tokenizer.toJSON()`) */
  readonly tokenizerJson?: unknown;
  /** the Hugging Face folder the run started from (config, dtype, tokenizer and generation files) */
  readonly huggingFace?: HuggingFaceSource;
  readonly step: number;
  readonly parent?: string | null;
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface SaveCheckpointOptions {
  /** also write the weights as a Hugging Face folder under `<prefix>/hf/` (needs `huggingFace`) */
  readonly exportHuggingFace?: boolean;
  /** largest weight file (tests use small values to exercise splitting) */
  readonly maxFileBytes?: number;
}

export interface LoadedCheckpoint {
  readonly config: ModelConfig;
  readonly params: Float32Array;
  readonly optimizerState: OptimizerState | undefined;
  readonly tokenizerJson: unknown;
  readonly huggingFace: HuggingFaceSource | undefined;
  readonly manifest: CheckpointManifest;
}

function keyOf(prefix: string, file: string): string {
  return prefix === "" ? file : `${prefix.replace(/\/+$/, "")}/${file}`;
}

/** parameter specs cut into groups of at most `maxBytes` (float32), in layout order */
function fileGroups(specs: readonly ParamSpec[], maxBytes: number, perSpecCopies = 1): ParamSpec[][] {
  const groups: ParamSpec[][] = [[]];
  let size = 0;
  for (const s of specs) {
    const bytes = s.size * 4 * perSpecCopies;
    if (size > 0 && size + bytes > maxBytes) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1]!.push(s);
    size += bytes;
  }
  return groups;
}

/** `model.safetensors`, or `model-00001-of-00003.safetensors` ... when split */
function fileName(base: string, index: number, count: number): string {
  return count === 1
    ? `${base}.safetensors`
    : `${base}-${String(index + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`;
}

const splitFile = (base: string) => new RegExp(`^${base}(-\\d{5}-of-\\d{5})?\\.safetensors$`);

/** named views of a flat vector, for the specs of one file */
function views(
  specs: readonly ParamSpec[],
  flat: Float32Array,
  namePrefix = "",
): Record<string, NamedTensor> {
  const out: Record<string, NamedTensor> = {};
  for (const s of specs) {
    out[`${namePrefix}${s.name}`] = { shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) };
  }
  return out;
}

/**
 * Fills flat vectors (name prefix -> target) from the tensors of one file, recording which it
 * found: files are read one at a time, so a checkpoint is never in memory twice.
 */
function fillFrom(
  specs: ReadonlyMap<string, ParamSpec>,
  file: string,
  bytes: Uint8Array,
  targets: Readonly<Record<string, Float32Array>>,
  seen: Set<string>,
): void {
  for (const entry of readSafetensorsHeader(bytes).tensors.values()) {
    for (const [prefix, flat] of Object.entries(targets)) {
      if (!entry.name.startsWith(prefix)) continue;
      const spec = specs.get(entry.name.slice(prefix.length));
      if (!spec) continue;
      if (entry.shape.join(",") !== spec.shape.join(",")) {
        throw new DeadLetterError(
          "checkpoint.mismatch",
          `${file}: tensor ${entry.name} has shape [${entry.shape}], config.json implies [${spec.shape}]`,
        );
      }
      readTensorInto(bytes, entry, flat.subarray(spec.offset, spec.offset + spec.size));
      seen.add(entry.name);
    }
  }
}

function assertAllSeen(
  specs: ReadonlyMap<string, ParamSpec>,
  prefixes: readonly string[],
  seen: ReadonlySet<string>,
  files: readonly string[],
): void {
  for (const prefix of prefixes) {
    for (const name of specs.keys()) {
      if (!seen.has(`${prefix}${name}`)) {
        throw new DeadLetterError(
          "checkpoint.mismatch",
          `${files.join(", ")}: tensor ${prefix}${name} is missing for config.json`,
        );
      }
    }
  }
}

/**
 * Writes a checkpoint under `prefix`, file by file (so at most one file's bytes are in memory at a
 * time), the manifest last; idempotent for identical content, refuses to overwrite a different one.
 */
export async function saveCheckpoint(
  store: ObjectStore,
  prefix: string,
  data: CheckpointData,
  options: SaveCheckpointOptions = {},
): Promise<{ manifest: CheckpointManifest; manifestKey: string }> {
  const config = ModelConfigSchema.parse(data.config);
  const layout = paramLayout(config);
  const maxBytes = options.maxFileBytes ?? MAX_CHECKPOINT_FILE_BYTES;
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    step: data.step,
    parent: data.parent ?? null,
    files: {},
    metadata: { ...(data.metadata ?? {}) },
  };
  const write = async (name: string, bytes: Uint8Array | string) => {
    const put = await store.put(keyOf(prefix, name), bytes);
    manifest.files[name] = { sha256: put.info.sha256, size: put.info.size };
  };
  await write("config.json", `${JSON.stringify(config, null, 2)}\n`);
  const weightGroups = fileGroups(layout.specs, maxBytes);
  for (const [i, group] of weightGroups.entries()) {
    await write(
      fileName("model", i, weightGroups.length),
      encodeSafetensors(views(group, data.params), { format: "pt" }),
    );
  }
  if (data.optimizerState) {
    const s = data.optimizerState;
    const groups = fileGroups(layout.specs, maxBytes, 2);
    for (const [i, group] of groups.entries()) {
      await write(
        fileName("optimizer", i, groups.length),
        encodeSafetensors(
          { ...views(group, s.m, "adam_m."), ...views(group, s.v, "adam_v.") },
          { step: String(s.step) },
        ),
      );
    }
  }
  if (data.tokenizerJson !== undefined) await write("tokenizer.json", JSON.stringify(data.tokenizerJson));
  if (data.huggingFace)
    await write(HUGGINGFACE_SOURCE_FILE, `${JSON.stringify(data.huggingFace, null, 2)}\n`);
  if (options.exportHuggingFace) {
    if (!data.huggingFace || data.tokenizerJson === undefined) {
      throw new Error("exportHuggingFace needs the checkpoint's huggingFace source and tokenizer");
    }
    const files = huggingFaceFolderFiles({
      config,
      params: data.params,
      source: data.huggingFace,
      tokenizerJson: data.tokenizerJson,
    });
    for (const f of files) await write(`${HF_EXPORT_FOLDER}/${f.name}`, f.bytes);
  }
  return { manifest, manifestKey: await commitCheckpointManifest(store, prefix, manifest) };
}

/**
 * Writes a checkpoint's manifest once its files are all written (the commit point): only if absent;
 * idempotent for the same manifest, refused for a different one. Returns the manifest's key.
 */
export async function commitCheckpointManifest(
  store: ObjectStore,
  prefix: string,
  manifest: CheckpointManifest,
): Promise<string> {
  const manifestKey = keyOf(prefix, MANIFEST_FILE);
  const body = `${JSON.stringify(manifest, null, 2)}\n`;
  const written = await store.put(manifestKey, body, { ifAbsent: true, contentType: "application/json" });
  if (!written.created && written.info.sha256 !== sha256Hex(body)) {
    throw new DeadLetterError(
      "checkpoint.exists",
      `a different checkpoint is already committed at ${manifestKey}; checkpoints are immutable, write to a new prefix`,
    );
  }
  return manifestKey;
}

/** a committed checkpoint's manifest; RetryableError while it is not written yet */
export async function readCheckpointManifest(
  store: ObjectStore,
  prefix: string,
): Promise<CheckpointManifest> {
  const manifestKey = keyOf(prefix, MANIFEST_FILE);
  const raw = await store.get(manifestKey);
  if (!raw) {
    throw new RetryableError(
      "checkpoint.not_committed",
      `no ${MANIFEST_FILE} at ${store.uri(manifestKey)}: the checkpoint is partial or not written yet`,
    );
  }
  try {
    return CheckpointManifestSchema.parse(JSON.parse(new TextDecoder().decode(raw)));
  } catch (error) {
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `${store.uri(manifestKey)} is not a valid checkpoint manifest`,
      {
        cause: error,
      },
    );
  }
}

/** one file of a committed checkpoint, checked against its manifest's sha256 and size */
export async function readCheckpointFile(
  store: ObjectStore,
  prefix: string,
  manifest: CheckpointManifest,
  name: string,
): Promise<Uint8Array> {
  const expected = manifest.files[name];
  const key = keyOf(prefix, name);
  if (!expected) {
    throw new DeadLetterError("checkpoint.corrupt", `checkpoint ${prefix} lists no ${name} in its manifest`);
  }
  const bytes = await store.get(key);
  if (!bytes)
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `checkpoint file ${store.uri(key)} listed in the manifest is missing`,
    );
  const actual = sha256Hex(bytes);
  if (actual !== expected.sha256 || bytes.length !== expected.size) {
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `checkpoint file ${store.uri(key)} is corrupted: sha256 ${actual} (${bytes.length} bytes), manifest says ${expected.sha256} (${expected.size} bytes)`,
    );
  }
  return bytes;
}

/**
 * A committed checkpoint's tokenizer and Hugging Face source without its weights (what a sampler
 * that does not hold the weights itself needs), verified like loadCheckpoint.
 */
export async function loadCheckpointTokenizer(
  store: ObjectStore,
  prefix: string,
): Promise<{ tokenizerJson: unknown; huggingFace: HuggingFaceSource | undefined }> {
  const manifest = await readCheckpointManifest(store, prefix);
  const read = async (name: string) =>
    manifest.files[name] === undefined
      ? undefined
      : JSON.parse(new TextDecoder().decode(await readCheckpointFile(store, prefix, manifest, name)));
  const source = await read(HUGGINGFACE_SOURCE_FILE);
  return {
    tokenizerJson: await read("tokenizer.json"),
    huggingFace: source === undefined ? undefined : HuggingFaceSourceSchema.parse(source),
  };
}

/** reads and verifies a committed checkpoint; partial or corrupted checkpoints are refused */
export async function loadCheckpoint(store: ObjectStore, prefix: string): Promise<LoadedCheckpoint> {
  const manifest = await readCheckpointManifest(store, prefix);
  // the Hugging Face export is for users and servers, and torch.distributed.checkpoint state for
  // the torch learner: restoring the engine reads neither, unless the weights exist only in hf/
  const inFolder = (name: string, folder: string) => name.startsWith(`${folder}/`);
  const needed = new Map(
    Object.entries(manifest.files).filter(
      ([name]) => !inFolder(name, HF_EXPORT_FOLDER) && !inFolder(name, DCP_FOLDER),
    ),
  );
  const readVerified = (name: string): Promise<Uint8Array> =>
    readCheckpointFile(store, prefix, manifest, name);
  const modelFiles = [...needed.keys()].filter((n) => splitFile("model").test(n)).sort();
  const optimizerFiles = [...needed.keys()].filter((n) => splitFile("optimizer").test(n)).sort();
  const small: Record<string, Uint8Array> = {};
  for (const name of needed.keys()) {
    if (!modelFiles.includes(name) && !optimizerFiles.includes(name)) small[name] = await readVerified(name);
  }
  const hfBytes = small[HUGGINGFACE_SOURCE_FILE];
  const storedSource = hfBytes
    ? HuggingFaceSourceSchema.parse(JSON.parse(new TextDecoder().decode(hfBytes)))
    : undefined;
  if (modelFiles.length === 0 && manifest.files[`${HF_EXPORT_FOLDER}/config.json`] !== undefined) {
    // the torch learner's checkpoints: the weights are their Hugging Face folder
    const folder = await readHuggingFaceFolder(
      (name) => {
        const file = `${HF_EXPORT_FOLDER}/${name}`;
        return manifest.files[file] === undefined ? Promise.resolve(undefined) : readVerified(file);
      },
      { where: store.uri(keyOf(prefix, HF_EXPORT_FOLDER)) },
    );
    return {
      config: folder.config,
      params: folder.params,
      optimizerState: undefined,
      tokenizerJson: folder.tokenizerJson,
      huggingFace: storedSource ?? folder.source,
      manifest,
    };
  }
  if (!small["config.json"] || modelFiles.length === 0) {
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `checkpoint at ${prefix} has no config.json or model weights`,
    );
  }
  const config = ModelConfigSchema.parse(JSON.parse(new TextDecoder().decode(small["config.json"])));
  const layout = paramLayout(config);
  const specs = new Map(layout.specs.map((s) => [s.name, s]));
  const params = new Float32Array(layout.total);
  const seen = new Set<string>();
  for (const name of modelFiles) fillFrom(specs, name, await readVerified(name), { "": params }, seen);
  assertAllSeen(specs, [""], seen, modelFiles);
  let optimizerState: OptimizerState | undefined;
  if (optimizerFiles.length > 0) {
    const m = new Float32Array(layout.total);
    const v = new Float32Array(layout.total);
    let step = "0";
    for (const [i, name] of optimizerFiles.entries()) {
      const bytes = await readVerified(name);
      if (i === 0) step = readSafetensorsHeader(bytes).metadata.step ?? "0";
      fillFrom(specs, name, bytes, { "adam_m.": m, "adam_v.": v }, seen);
    }
    assertAllSeen(specs, ["adam_m.", "adam_v."], seen, optimizerFiles);
    optimizerState = { m, v, step: Number(step) };
  }
  const tokenizerJson = small["tokenizer.json"]
    ? JSON.parse(new TextDecoder().decode(small["tokenizer.json"]))
    : undefined;
  return { config, params, optimizerState, tokenizerJson, huggingFace: storedSource, manifest };
}
