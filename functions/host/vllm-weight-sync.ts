/**
 * Keeps vLLM servers on the learner's newest policy: `questa function vllm-sync` (a sidecar beside
 * each server, on the volume the server reads its model from) and the same component in-process
 * (embedded runs, tests). On each checkpoint.published, and whenever its follow loop finds the
 * learner ahead or a server back on its initial weights (restarted), it writes the checkpoint's
 * Hugging Face folder into a new folder under the model directory (never over an existing one: a
 * folder rewritten in place can reload stale weights, vllm#32718) and has every server pause
 * (aborting in-flight requests, clearing the prefix cache), reload from that folder, tag the
 * version `<step>:<nonce>` and resume. The sampler reads the tags (vllm-policy-sampler.ts).
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CheckpointPublished, type CheckpointPublishedData } from "../contracts/events.ts";
import { readLearnerProgress } from "../contracts/learner-progress.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import {
  HF_EXPORT_FOLDER,
  loadCheckpoint,
  readCheckpointFile,
  readCheckpointManifest,
} from "../model/checkpoint.ts";
import { huggingFaceFolderFiles } from "../model/hf-folder.ts";
import { defineFunction, type FunctionDeps } from "../runtime/define-function.ts";
import { DeadLetterError, errorMessage, UnavailableError } from "../runtime/errors.ts";
import { type Logger, silentLogger } from "../runtime/logger.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import type { VllmEndpoint } from "./vllm-api.ts";

/** the tag a vLLM server reports before any reload: the model it started with, questa's step 0 */
export const INITIAL_WEIGHT_VERSION = "default";

export function weightVersionTag(step: number, nonce: string): string {
  return `${step}:${nonce}`;
}

/** the learner step a server's tag names; -1 for a tag questa did not set */
export function servedStep(tag: string): number {
  if (tag === INITIAL_WEIGHT_VERSION) return 0;
  const match = /^(\d+):[0-9a-f]+$/.exec(tag);
  return match ? Number(match[1]) : -1;
}

/** the store folder of the policy the learner published at `step` (the initial checkpoint at 0) */
export function policyFolder(keys: RunKeys, step: number): string {
  return step > 0 ? keys.policy(step) : keys.checkpoint(0);
}

export interface VllmWeightSyncOptions {
  /** the servers to keep in step: a sidecar's own server, or every local one in-process */
  endpoints: () => Promise<readonly VllmEndpoint[]>;
  /** where the servers read models from (QUESTA_VLLM_MODEL_DIR); versions are written under it */
  modelDir: string;
  store: ObjectStore;
  keys: RunKeys;
  logger?: Logger;
  /** told after each server reload: its step and seconds taken */
  onReload?: (reload: { url: string; step: number; seconds: number }) => void;
  now?: () => number;
}

interface Synced {
  step: number;
  /** the version's folder on the servers' file system; undefined for the initial model */
  folder: string | undefined;
  tag: string;
}

const VERSION_FOLDER = /^step-\d{6}-[0-9a-f]+$/;

/** See the module comment. Every operation runs after the previous one finished. */
export class VllmWeightSync {
  readonly #o: VllmWeightSyncOptions;
  readonly #logger: Logger;
  #synced: Synced = { step: -1, folder: undefined, tag: "" };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: VllmWeightSyncOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger();
  }

  /** the newest step written and sent to the servers (-1 before the first) */
  get step(): number {
    return this.#synced.step;
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * A published checkpoint: the servers move to it, or straight to the learner's newest policy
   * when that is further on (a sync that starts late or replays old events reloads once).
   */
  onCheckpoint(checkpoint: Pick<CheckpointPublishedData, "step" | "manifest">): Promise<void> {
    return this.#serial(async () => {
      if (checkpoint.step <= this.#synced.step) return;
      const progress = await readLearnerProgress(this.#o.store, this.#o.keys);
      if (progress.step > checkpoint.step) {
        await this.#syncTo(policyFolder(this.#o.keys, progress.step), progress.step);
      } else {
        await this.#syncTo(checkpoint.manifest.key.replace(/\/manifest\.json$/, ""), checkpoint.step);
      }
    });
  }

  /**
   * The follow loop's turn: catch up with the learner's stored progress, and give the synced
   * version again to any server that lost it (a restarted server is back on its initial model).
   */
  reconcile(): Promise<void> {
    return this.#serial(async () => {
      const progress = await readLearnerProgress(this.#o.store, this.#o.keys);
      if (progress.step > this.#synced.step) {
        await this.#syncTo(policyFolder(this.#o.keys, progress.step), progress.step);
        return;
      }
      const synced = this.#synced;
      if (synced.step <= 0 || synced.folder === undefined) return;
      for (const endpoint of await this.#o.endpoints()) {
        const tag = await endpoint.weightVersion().catch(() => undefined);
        if (tag === undefined || servedStep(tag) >= synced.step) continue;
        this.#logger.warn(
          { url: endpoint.url, tag, step: synced.step },
          "vLLM server lost its weights; reloading",
        );
        await this.#reload(endpoint, synced);
      }
    });
  }

  async #syncTo(checkpointFolder: string, step: number): Promise<void> {
    if (step === 0) {
      // servers start on the initial model (and a restarted one comes back to it by itself); one
      // that serves something else (another run's weights) gets the initial checkpoint's export
      const tags = await Promise.all(
        (await this.#o.endpoints()).map((e) => e.weightVersion().catch(() => INITIAL_WEIGHT_VERSION)),
      );
      if (tags.every((tag) => tag === INITIAL_WEIGHT_VERSION)) {
        this.#synced = { step: 0, folder: undefined, tag: INITIAL_WEIGHT_VERSION };
        return;
      }
    }
    const nonce = randomBytes(6).toString("hex");
    const folder = await this.#writeVersion(checkpointFolder, step, nonce);
    const version: Synced = { step, folder, tag: weightVersionTag(step, nonce) };
    const endpoints = await this.#o.endpoints();
    const failures: string[] = [];
    for (const endpoint of endpoints) {
      try {
        await this.#reload(endpoint, version);
      } catch (error) {
        // a server that is down gets the version from reconcile once it is back
        failures.push(`${endpoint.url}: ${errorMessage(error)}`);
      }
    }
    if (endpoints.length > 0 && failures.length === endpoints.length) {
      await rm(folder, { recursive: true, force: true });
      throw new UnavailableError(
        "vllm_unavailable",
        `no vLLM server took policy ${step}: ${failures.join("; ")}`,
      );
    }
    for (const failure of failures) this.#logger.warn({ step, failure }, "a vLLM server missed a reload");
    const previous = this.#synced.folder;
    this.#synced = version;
    await this.#prune([folder, ...(previous === undefined ? [] : [previous])]);
  }

  /** pause (abort in flight, clear the cache), reload, tag, resume; resumed whatever happens */
  async #reload(endpoint: VllmEndpoint, version: Synced): Promise<void> {
    if (version.folder === undefined) return;
    const started = (this.#o.now ?? Date.now)();
    await endpoint.pause();
    try {
      await endpoint.reloadWeights(version.folder);
      await endpoint.setWeightVersion(version.tag);
    } finally {
      await endpoint.resume();
    }
    const seconds = ((this.#o.now ?? Date.now)() - started) / 1000;
    this.#o.onReload?.({ url: endpoint.url, step: version.step, seconds });
    this.#logger.info({ url: endpoint.url, step: version.step, seconds }, "vLLM server reloaded");
  }

  /** the checkpoint's Hugging Face folder in a new folder `step-<step>-<nonce>` under the model directory */
  async #writeVersion(checkpointFolder: string, step: number, nonce: string): Promise<string> {
    const folder = join(this.#o.modelDir, `step-${String(step).padStart(6, "0")}-${nonce}`);
    await writeHuggingFaceFolder(this.#o.store, checkpointFolder, folder);
    return folder;
  }

  /** removes the version folders other than `keep` (the initial model is not one of them) */
  async #prune(keep: readonly string[]): Promise<void> {
    const names = await readdir(this.#o.modelDir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(this.#o.modelDir, name);
      if (VERSION_FOLDER.test(name) && !keep.includes(path)) await rm(path, { recursive: true, force: true });
    }
  }
}

/**
 * A checkpoint's Hugging Face folder (its `hf/` export, else converted from its weights) written
 * to `folder`: into a sibling `.incoming-*` folder first, renamed into place when complete, so a
 * server never reads half a folder.
 */
export async function writeHuggingFaceFolder(
  store: ObjectStore,
  checkpointFolder: string,
  folder: string,
): Promise<void> {
  const manifest = await readCheckpointManifest(store, checkpointFolder);
  const exported = Object.keys(manifest.files).filter((name) => name.startsWith(`${HF_EXPORT_FOLDER}/`));
  const incoming = join(dirname(folder), `.incoming-${randomBytes(6).toString("hex")}`);
  await mkdir(incoming, { recursive: true });
  try {
    const write = async (name: string, bytes: Uint8Array) => {
      await mkdir(dirname(join(incoming, name)), { recursive: true });
      await writeFile(join(incoming, name), bytes);
    };
    if (exported.length > 0) {
      for (const name of exported) {
        await write(
          name.slice(HF_EXPORT_FOLDER.length + 1),
          await readCheckpointFile(store, checkpointFolder, manifest, name),
        );
      }
    } else {
      const loaded = await loadCheckpoint(store, checkpointFolder);
      if (!loaded.huggingFace || loaded.tokenizerJson === undefined) {
        throw new DeadLetterError(
          "checkpoint.not_huggingface",
          `the checkpoint at ${checkpointFolder} has neither a Hugging Face export nor the source to write one; rollout.engine vllm needs model.source huggingface`,
        );
      }
      const files = huggingFaceFolderFiles({
        config: loaded.config,
        params: loaded.params,
        source: loaded.huggingFace,
        tokenizerJson: loaded.tokenizerJson,
      });
      for (const file of files) await write(file.name, file.bytes);
    }
    await rename(incoming, folder);
  } catch (error) {
    await rm(incoming, { recursive: true, force: true });
    throw error;
  }
}

export interface VllmSyncServices {
  sync: VllmWeightSync;
}

/** The weight sync as a function over the bus: each published checkpoint moves the servers. */
export const vllmSyncFunction = defineFunction({
  name: "vllm-sync",
  consumes: [CheckpointPublished] as const,
  emits: [],
  async handle(event, deps: FunctionDeps<VllmSyncServices>) {
    await deps.services.sync.onCheckpoint(event.data as CheckpointPublishedData);
    return [];
  },
});
