/**
 * Checkpoints in an ObjectStore: model.safetensors, optimizer.safetensors, config.json,
 * tokenizer.json and manifest.json (step, parent, sha256 of each file). The manifest is written last
 * and only if absent, so a checkpoint is visible exactly when complete; loading verifies every hash.
 */
import { z } from "zod";
import { DeadLetterError, RetryableError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { type ModelConfig, type ModelConfigInput, ModelConfigSchema } from "./config.ts";
import { paramLayout } from "./params.ts";
import { decodeSafetensors, encodeSafetensors, type NamedTensor } from "./safetensors.ts";

export const CHECKPOINT_FORMAT = "questa.checkpoint.v1";
export const MANIFEST_FILE = "manifest.json";

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
  readonly step: number;
  readonly parent?: string | null;
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface LoadedCheckpoint {
  readonly config: ModelConfig;
  readonly params: Float32Array;
  readonly optimizerState: OptimizerState | undefined;
  readonly tokenizerJson: unknown;
  readonly manifest: CheckpointManifest;
}

function keyOf(prefix: string, file: string): string {
  return prefix === "" ? file : `${prefix.replace(/\/+$/, "")}/${file}`;
}

function split(config: ModelConfig, flat: Float32Array, namePrefix = ""): Record<string, NamedTensor> {
  const out: Record<string, NamedTensor> = {};
  for (const s of paramLayout(config).specs) {
    out[`${namePrefix}${s.name}`] = { shape: s.shape, data: flat.subarray(s.offset, s.offset + s.size) };
  }
  return out;
}

function join(
  config: ModelConfig,
  tensors: Record<string, NamedTensor>,
  namePrefix: string,
  file: string,
): Float32Array {
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  for (const s of layout.specs) {
    const t = tensors[`${namePrefix}${s.name}`];
    if (!t || t.data.length !== s.size || t.shape.join(",") !== s.shape.join(",")) {
      throw new DeadLetterError(
        "checkpoint.mismatch",
        `${file}: tensor ${namePrefix}${s.name} is missing or has the wrong shape for config.json`,
      );
    }
    flat.set(t.data, s.offset);
  }
  return flat;
}

/** writes a checkpoint under `prefix`; idempotent for identical content, refuses to overwrite a different one */
export async function saveCheckpoint(
  store: ObjectStore,
  prefix: string,
  data: CheckpointData,
): Promise<{ manifest: CheckpointManifest; manifestKey: string }> {
  const config = ModelConfigSchema.parse(data.config);
  const files: Record<string, Uint8Array> = {
    "config.json": new TextEncoder().encode(`${JSON.stringify(config, null, 2)}\n`),
    "model.safetensors": encodeSafetensors(split(config, data.params), { format: "pt" }),
  };
  if (data.optimizerState) {
    const s = data.optimizerState;
    files["optimizer.safetensors"] = encodeSafetensors(
      { ...split(config, s.m, "adam_m."), ...split(config, s.v, "adam_v.") },
      { step: String(s.step) },
    );
  }
  if (data.tokenizerJson !== undefined) {
    files["tokenizer.json"] = new TextEncoder().encode(JSON.stringify(data.tokenizerJson));
  }
  const manifest: CheckpointManifest = {
    format: CHECKPOINT_FORMAT,
    step: data.step,
    parent: data.parent ?? null,
    files: {},
    metadata: { ...(data.metadata ?? {}) },
  };
  for (const [name, bytes] of Object.entries(files)) {
    const put = await store.put(keyOf(prefix, name), bytes);
    manifest.files[name] = { sha256: put.info.sha256, size: put.info.size };
  }
  const manifestKey = keyOf(prefix, MANIFEST_FILE);
  const body = `${JSON.stringify(manifest, null, 2)}\n`;
  const written = await store.put(manifestKey, body, { ifAbsent: true, contentType: "application/json" });
  if (!written.created && written.info.sha256 !== sha256Hex(body)) {
    throw new DeadLetterError(
      "checkpoint.exists",
      `a different checkpoint is already committed at ${manifestKey}; checkpoints are immutable, write to a new prefix`,
    );
  }
  return { manifest, manifestKey };
}

/** reads and verifies a committed checkpoint; partial or corrupted checkpoints are refused */
export async function loadCheckpoint(store: ObjectStore, prefix: string): Promise<LoadedCheckpoint> {
  const manifestKey = keyOf(prefix, MANIFEST_FILE);
  const raw = await store.get(manifestKey);
  if (!raw) {
    throw new RetryableError(
      "checkpoint.not_committed",
      `no ${MANIFEST_FILE} at ${store.uri(manifestKey)}: the checkpoint is partial or not written yet`,
    );
  }
  let manifest: CheckpointManifest;
  try {
    manifest = CheckpointManifestSchema.parse(JSON.parse(new TextDecoder().decode(raw)));
  } catch (error) {
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `${store.uri(manifestKey)} is not a valid checkpoint manifest`,
      {
        cause: error,
      },
    );
  }
  const files: Record<string, Uint8Array> = {};
  for (const [name, expected] of Object.entries(manifest.files)) {
    const key = keyOf(prefix, name);
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
    files[name] = bytes;
  }
  for (const required of ["config.json", "model.safetensors"]) {
    if (!files[required])
      throw new DeadLetterError("checkpoint.corrupt", `checkpoint at ${prefix} has no ${required}`);
  }
  const config = ModelConfigSchema.parse(JSON.parse(new TextDecoder().decode(files["config.json"])));
  const params = join(
    config,
    decodeSafetensors(files["model.safetensors"]!).tensors,
    "",
    "model.safetensors",
  );
  let optimizerState: OptimizerState | undefined;
  if (files["optimizer.safetensors"]) {
    const decoded = decodeSafetensors(files["optimizer.safetensors"]);
    optimizerState = {
      m: join(config, decoded.tensors, "adam_m.", "optimizer.safetensors"),
      v: join(config, decoded.tensors, "adam_v.", "optimizer.safetensors"),
      step: Number(decoded.metadata.step ?? "0"),
    };
  }
  const tokenizerJson = files["tokenizer.json"]
    ? JSON.parse(new TextDecoder().decode(files["tokenizer.json"]))
    : undefined;
  return { config, params, optimizerState, tokenizerJson, manifest };
}
