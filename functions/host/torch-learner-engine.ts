/**
 * The learner's engine on PyTorch FSDP2 under torchrun (torch-learner/). questa keeps all I/O: this
 * module moves token batches and checkpoint files between the object store and the node's work
 * directory and talks JSON lines (functions/contracts/torch-learner-protocol.ts) with the node's
 * local rank 0. On the node whose Python is global rank 0 it is a LearnerEngine for the Learner
 * (the driver); on the others a node agent that only fetches and stores its ranks' checkpoint files.
 *
 * A checkpoint it writes keeps questa's format (manifest last, every file with its sha256):
 * `huggingface.json` and `tokenizer.json` as every checkpoint has them, `hf/` a Hugging Face folder
 * (config and tokenizer files always, the gathered weights as safetensors when the checkpoint has
 * weights for samplers and users), and `dcp/` the model and optimiser state written with
 * torch.distributed.checkpoint (each node uploads its own ranks' files) when it is for resuming.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { ObjectRef } from "../contracts/events.ts";
import type { LearnerSpec } from "../contracts/questatraining.ts";
import {
  type CheckpointFile,
  type TorchLearnerReply,
  TorchLearnerReplySchema,
  type TorchLearnerRequest,
  type TorchLoadRequest,
  type TorchReady,
  type TorchStepMetrics,
  type TorchTrainingOptions,
} from "../contracts/torch-learner-protocol.ts";
import { manifestRef, removeCheckpointFolder } from "../learn/checkpoint-folders.ts";
import type { LearnerEngine, PpoSample, PpoSettings, PpoStepMetrics } from "../learn/learner-engine.ts";
import {
  CHECKPOINT_FORMAT,
  type CheckpointManifest,
  CheckpointManifestSchema,
  commitCheckpointManifest,
  DCP_FOLDER,
  HF_EXPORT_FOLDER,
  HUGGINGFACE_SOURCE_FILE,
  MANIFEST_FILE,
  MAX_CHECKPOINT_FILE_BYTES,
} from "../model/checkpoint.ts";
import {
  type HuggingFaceSource,
  HuggingFaceSourceSchema,
  huggingFaceMetadataFiles,
  isHuggingFaceWeightFile,
} from "../model/hf-folder.ts";
import { DeadLetterError, RetryableError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { encodeTorchBatch } from "./torch-batch.ts";
import { isDriver, type TorchLaunchPlan, torchrunArguments, torchrunEnvironment } from "./torch-launch.ts";
import {
  SCHEMAS_DIR,
  startTorchrun,
  TORCH_LEARNER_PACKAGE_DIR,
  type TorchrunProcess,
} from "./torch-process.ts";

/** learner.torch as the Python side takes it */
export function torchTrainingOptions(learner: Pick<LearnerSpec, "torch">): TorchTrainingOptions {
  const t = learner.torch;
  return {
    microBatchSize: t.microBatchSize,
    activationCheckpointing: t.activationCheckpointing,
    precision: t.precision,
    sharding: t.sharding,
  };
}

/** what a node agent writes under a checkpoint's prefix for the driver: the files it stored */
const NodePartSchema = z.object({
  node: z.int().min(0),
  files: z.record(z.string(), z.object({ sha256: z.string(), size: z.int().min(0) })),
});
const nodePartKey = (prefix: string, node: number) => `${prefix}/nodes/node-${node}.json`;

/** a request as the caller gives it (the node numbers it) */
type Request = TorchLearnerRequest extends infer R
  ? R extends { type: "load" | "train" | "save" | "shutdown" }
    ? Omit<R, "id">
    : never
  : never;

/** the reply a request gets when it succeeds */
type ReplyOf<T extends Request["type"]> = Extract<
  TorchLearnerReply,
  { type: { load: "loaded"; train: "trained"; save: "saved"; shutdown: "closing" }[T] }
>;

export interface TorchNodeOptions {
  python: string;
  plan: TorchLaunchPlan;
  /** this node's folder for batches and checkpoint files (created; emptied on close) */
  workDir: string;
  env: Record<string, string | undefined>;
  logger: Logger;
}

/**
 * The torch learner's processes exited without being asked to (a rank crashed, was killed, ran
 * out of memory), or before they were ready: the run stops. Its state is safe: the last committed
 * step is in the store, and the next start resumes from it. The message carries torchrun's last
 * log lines, which say why.
 */
export class TorchLearnerStopped extends Error {
  override readonly name = "TorchLearnerStopped";
}

/**
 * torchrun on this node and the protocol with its local rank 0: requests matched to their replies
 * by id, the node agent's messages handed to `onAgentMessage`.
 */
export class TorchNode {
  readonly ready: TorchReady;
  readonly workDir: string;
  readonly logger: Logger;
  readonly #process: TorchrunProcess;
  readonly #pending = new Map<
    number,
    { resolve: (r: TorchLearnerReply) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  #exitError: Error | undefined;
  #closing = false;
  #reportUnexpectedExit: (error: Error) => void = () => {};
  /** settles when torchrun exits without close() asking it to: the job is gone */
  readonly unexpectedExit: Promise<Error> = new Promise((resolve) => {
    this.#reportUnexpectedExit = resolve;
  });
  onAgentMessage: ((message: Extract<TorchLearnerReply, { type: "fetch" | "store" }>) => void) | undefined;

  private constructor(process: TorchrunProcess, ready: TorchReady, workDir: string, logger: Logger) {
    this.#process = process;
    this.ready = ready;
    this.workDir = workDir;
    this.logger = logger;
  }

  /** starts torchrun and waits until this node's local rank 0 says it is ready */
  static async start(options: TorchNodeOptions): Promise<TorchNode> {
    const { logger } = options;
    await rm(options.workDir, { recursive: true, force: true });
    await mkdir(options.workDir, { recursive: true });
    let node: TorchNode | undefined;
    let onReady: ((ready: TorchReady) => void) | undefined;
    const early: TorchLearnerReply[] = [];
    const process = startTorchrun({
      python: options.python,
      args: torchrunArguments(options.plan, { workDir: options.workDir, schemasDir: SCHEMAS_DIR }),
      env: torchrunEnvironment(options.env, options.plan, TORCH_LEARNER_PACKAGE_DIR),
      cwd: options.workDir,
      onLog: (line) => logger.info({ torch: true }, line),
      onLine: (line) => {
        const reply = parseReply(line, logger);
        if (!reply) return;
        if (reply.type === "ready") onReady?.(reply);
        else if (node) node.#receive(reply);
        else early.push(reply);
      },
    });
    const ready = await new Promise<TorchReady>((resolve, reject) => {
      onReady = resolve;
      void process.exited.then((status) =>
        reject(
          new TorchLearnerStopped(
            `the torch learner did not start: torchrun exited (${status.signal ?? `code ${status.code}`}) before the learner was ready; ${lastLogLines(process.recentLog())}`,
          ),
        ),
      );
    });
    node = new TorchNode(process, ready, options.workDir, logger);
    for (const reply of early) node.#receive(reply);
    void process.exited.then((status) => node.#exited(status));
    logger.info(
      {
        rank: ready.rank,
        node: ready.node,
        nodes: ready.nodes,
        worldSize: ready.worldSize,
        device: ready.device,
      },
      "torch learner ready",
    );
    return node;
  }

  get isDriver(): boolean {
    return isDriver(this.ready);
  }

  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.#process.exited;
  }

  /** set once torchrun has exited: what every later request fails with */
  get failure(): Error | undefined {
    return this.#exitError;
  }

  request<R extends Request>(request: R): Promise<ReplyOf<R["type"]>> {
    if (this.#exitError) return Promise.reject(this.#exitError);
    const id = this.#nextId++;
    return new Promise<TorchLearnerReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#process.writeLine(JSON.stringify({ ...request, id }));
    }) as Promise<ReplyOf<R["type"]>>;
  }

  /** a node agent's answer to its local rank 0 */
  answer(message: { type: "fetched"; id: number; error?: string }): void {
    this.#process.writeLine(JSON.stringify(message));
  }

  #receive(reply: TorchLearnerReply): void {
    if (reply.type === "fetch" || reply.type === "store") {
      this.onAgentMessage?.(reply);
      return;
    }
    if (reply.type === "ready") return;
    const waiting = this.#pending.get(reply.id);
    if (!waiting) return;
    this.#pending.delete(reply.id);
    if (reply.type !== "failed") waiting.resolve(reply);
    else if (reply.kind === "input")
      waiting.reject(
        new DeadLetterError(
          "torch_learner.refused",
          `the torch learner refused the request: ${reply.message}`,
        ),
      );
    else
      waiting.reject(
        new RetryableError("torch_learner.failed", `the torch learner failed: ${reply.message}`),
      );
  }

  #exited(status: { code: number | null; signal: NodeJS.Signals | null }): void {
    this.#exitError = new RetryableError(
      "torch_learner.exited",
      `torchrun exited (${status.signal ?? `code ${status.code}`}); ${lastLogLines(this.#process.recentLog().slice(-15))}`,
    );
    for (const waiting of this.#pending.values()) waiting.reject(this.#exitError);
    if (!this.#closing) {
      this.#reportUnexpectedExit(
        new TorchLearnerStopped(`the torch learner stopped: ${this.#exitError.message}`, {
          cause: this.#exitError,
        }),
      );
    }
    this.#pending.clear();
  }

  /** asks every rank to stop (the driver's request; on other nodes the end of input), then waits */
  async close(): Promise<void> {
    this.#closing = true;
    if (!this.#exitError) {
      if (this.isDriver) await this.request({ type: "shutdown" }).catch(() => undefined);
      this.#process.endInput();
      const timer = setTimeout(() => void this.#process.kill(), 60_000);
      await this.#process.exited;
      clearTimeout(timer);
    }
    await rm(this.workDir, { recursive: true, force: true });
  }
}

/** torchrun's last stderr lines for an error message, indented under it */
function lastLogLines(lines: readonly string[]): string {
  if (lines.length === 0) return "it wrote nothing to stderr";
  return `its last log lines:\n${lines.map((line) => `  ${line}`).join("\n")}`;
}

function parseReply(line: string, logger: Logger): TorchLearnerReply | undefined {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    logger.warn({ line: line.slice(0, 200) }, "torch learner wrote a line that is not JSON");
    return undefined;
  }
  const parsed = TorchLearnerReplySchema.safeParse(json);
  if (!parsed.success) {
    logger.warn(
      { line: line.slice(0, 200), problem: parsed.error.message },
      "torch learner wrote an invalid reply",
    );
    return undefined;
  }
  return parsed.data;
}

async function readManifest(store: ObjectStore, prefix: string): Promise<CheckpointManifest> {
  const key = `${prefix}/${MANIFEST_FILE}`;
  const raw = await store.get(key);
  if (!raw) {
    throw new RetryableError(
      "checkpoint.not_committed",
      `no ${MANIFEST_FILE} at ${store.uri(key)}: the checkpoint is partial or not written yet`,
    );
  }
  const parsed = CheckpointManifestSchema.safeParse(JSON.parse(new TextDecoder().decode(raw)));
  if (!parsed.success)
    throw new DeadLetterError("checkpoint.corrupt", `${store.uri(key)} is not a valid checkpoint manifest`);
  return parsed.data;
}

/** a checkpoint file from the store, refused unless it matches its manifest entry */
async function fetchVerified(store: ObjectStore, prefix: string, file: CheckpointFile): Promise<Uint8Array> {
  const key = `${prefix}/${file.name}`;
  const bytes = await store.get(key);
  if (!bytes)
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `checkpoint file ${store.uri(key)} listed in the manifest is missing`,
    );
  if (bytes.length !== file.size || sha256Hex(bytes) !== file.sha256)
    throw new DeadLetterError(
      "checkpoint.corrupt",
      `checkpoint file ${store.uri(key)} does not match its manifest`,
    );
  return bytes;
}

async function fetchInto(
  store: ObjectStore,
  prefix: string,
  files: readonly CheckpointFile[],
  folder: string,
) {
  await rm(folder, { recursive: true, force: true });
  for (const file of files) {
    const target = join(folder, file.name);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await fetchVerified(store, prefix, file));
  }
}

/** uploads `names` (relative to `folder`) under `prefix`; their manifest entries */
async function storeFrom(store: ObjectStore, prefix: string, folder: string, names: readonly string[]) {
  const files: Record<string, { sha256: string; size: number }> = {};
  for (const name of names) {
    const put = await store.put(`${prefix}/${name}`, new Uint8Array(await readFile(join(folder, name))));
    files[name] = { sha256: put.info.sha256, size: put.info.size };
  }
  return files;
}

export interface TorchLearnerEngineOptions {
  node: TorchNode;
  options: TorchTrainingOptions;
  /** how long the driver waits for the other nodes' checkpoint files; default 30 minutes */
  nodeFilesTimeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** The LearnerEngine of the driver node: every call one request to the whole torchrun job. */
export class TorchLearnerEngine implements LearnerEngine {
  readonly #node: TorchNode;
  readonly #options: TorchTrainingOptions;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  #source: HuggingFaceSource | undefined;
  #tokenizerJson: unknown;
  #folders = 0;

  constructor(o: TorchLearnerEngineOptions) {
    if (!o.node.isDriver) throw new Error("only the node of global rank 0 drives the torch learner");
    this.#node = o.node;
    this.#options = o.options;
    this.#timeoutMs = o.nodeFilesTimeoutMs ?? 30 * 60_000;
    this.#sleep = o.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  get node(): TorchNode {
    return this.#node;
  }

  #folder(kind: string): string {
    this.#folders++;
    return `${kind}-${this.#folders}`;
  }

  async trainPpo(samples: readonly PpoSample[], s: PpoSettings): Promise<PpoStepMetrics> {
    const { bytes, lengths } = encodeTorchBatch(samples);
    const batch = `${this.#folder("batch")}.bin`;
    const path = join(this.#node.workDir, batch);
    await writeFile(path, bytes);
    try {
      const reply = await this.#node.request({
        type: "train",
        batch,
        lengths,
        settings: {
          learningRate: s.learningRate,
          weightDecay: s.weightDecay,
          beta1: s.beta1,
          beta2: s.beta2,
          eps: s.eps,
          gradClip: s.gradClip,
          clipLow: s.clipLow,
          clipHigh: s.clipHigh,
          importanceCap: s.importanceCap,
          entropyCoef: s.entropyCoef,
          klCoef: s.klCoef,
        },
      });
      return stepMetrics(reply.metrics);
    } finally {
      await rm(path, { force: true });
    }
  }

  async saveCheckpoint(
    store: ObjectStore,
    prefix: string,
    meta: { step: number; parentStep?: number; withOptimizer: boolean; publish?: boolean },
  ): Promise<ObjectRef> {
    const source = this.#requireSource();
    // a step redone after a crash rewrites its folder: whatever a dead process left there goes first
    await removeCheckpointFolder(store, prefix);
    const folder = this.#folder("save");
    const withWeights = !meta.withOptimizer || meta.publish === true;
    const saved = await this.#node.request({
      type: "save",
      folder,
      prefix,
      huggingFace: withWeights ? { dtype: source.dtype } : null,
      dcp: meta.withOptimizer,
      maxFileBytes: MAX_CHECKPOINT_FILE_BYTES,
    });
    const local = join(this.#node.workDir, folder);
    try {
      const files = await storeFrom(store, prefix, local, saved.files);
      const put = async (name: string, bytes: Uint8Array) => {
        const r = await store.put(`${prefix}/${name}`, bytes);
        files[name] = { sha256: r.info.sha256, size: r.info.size };
      };
      // the folder's config and tokenizer files, always: every node builds the model from hf/
      for (const f of huggingFaceMetadataFiles(source, this.#tokenizerJson))
        await put(`${HF_EXPORT_FOLDER}/${f.name}`, f.bytes);
      await put(HUGGINGFACE_SOURCE_FILE, new TextEncoder().encode(`${JSON.stringify(source, null, 2)}\n`));
      await put("tokenizer.json", new TextEncoder().encode(JSON.stringify(this.#tokenizerJson)));
      if (meta.withOptimizer) Object.assign(files, await this.#otherNodesFiles(store, prefix));
      const manifest: CheckpointManifest = {
        format: CHECKPOINT_FORMAT,
        step: meta.step,
        parent: meta.parentStep === undefined ? null : `step-${meta.parentStep}`,
        files,
        metadata: { engine: "torch", weights: withWeights ? "huggingface" : "dcp" },
      };
      await commitCheckpointManifest(store, prefix, manifest);
    } finally {
      await rm(local, { recursive: true, force: true });
    }
    const ref = await manifestRef(store, prefix);
    if (!ref)
      throw new DeadLetterError(
        "checkpoint.missing",
        `checkpoint manifest under ${prefix} vanished after writing`,
      );
    return ref;
  }

  /** the DCP files the node agents stored, once each has said so under the prefix */
  async #otherNodesFiles(store: ObjectStore, prefix: string) {
    const files: Record<string, { sha256: string; size: number }> = {};
    const { nodes, node: own } = this.#node.ready;
    const started = Date.now();
    for (let node = 0; node < nodes; node++) {
      if (node === own) continue;
      for (;;) {
        const bytes = await store.get(nodePartKey(prefix, node));
        if (bytes) {
          Object.assign(files, NodePartSchema.parse(JSON.parse(new TextDecoder().decode(bytes))).files);
          break;
        }
        if (this.#node.failure) throw this.#node.failure;
        if (Date.now() - started > this.#timeoutMs)
          throw new RetryableError(
            "torch_learner.node_files",
            `node ${node} did not store its files of ${prefix}`,
          );
        await this.#sleep(250);
      }
    }
    return files;
  }

  async loadCheckpoint(store: ObjectStore, prefix: string): Promise<void> {
    const { source, tokenizerJson } = await this.#load(store, prefix, "policy");
    this.#source = source;
    this.#tokenizerJson = tokenizerJson;
  }

  /** the frozen policy of a KL penalty (the run's step 0), sharded beside the policy */
  async loadReference(store: ObjectStore, prefix: string): Promise<void> {
    await this.#load(store, prefix, "reference");
  }

  async #load(
    store: ObjectStore,
    prefix: string,
    role: TorchLoadRequest["role"],
  ): Promise<{ source: HuggingFaceSource; tokenizerJson: unknown }> {
    const manifest = await readManifest(store, prefix);
    const entries: CheckpointFile[] = Object.entries(manifest.files).map(([name, f]) => ({ name, ...f }));
    const entry = (name: string) => entries.find((e) => e.name === name);
    const sourceFile = entry(HUGGINGFACE_SOURCE_FILE);
    const tokenizerFile = entry("tokenizer.json");
    if (!sourceFile || !tokenizerFile || !entry(`${HF_EXPORT_FOLDER}/config.json`)) {
      throw new DeadLetterError(
        "torch_learner.not_huggingface",
        `${store.uri(prefix)} is no Hugging Face checkpoint (huggingface.json, tokenizer.json, hf/config.json): the torch learner trains model.source huggingface`,
      );
    }
    const source = HuggingFaceSourceSchema.parse(
      JSON.parse(new TextDecoder().decode(await fetchVerified(store, prefix, sourceFile))),
    );
    const tokenizerJson: unknown = JSON.parse(
      new TextDecoder().decode(await fetchVerified(store, prefix, tokenizerFile)),
    );
    const inHf = (e: CheckpointFile) => e.name.startsWith(`${HF_EXPORT_FOLDER}/`);
    const hfWeight = (e: CheckpointFile) =>
      inHf(e) && isHuggingFaceWeightFile(e.name.slice(HF_EXPORT_FOLDER.length + 1));
    // the policy resumes with its optimiser from dcp/ when there is one; the frozen reference needs
    // the weights only, and takes them from hf/
    const dcp = role === "policy" && entry(`${DCP_FOLDER}/.metadata`) !== undefined;
    if (role === "reference" && !entries.some(hfWeight)) {
      throw new DeadLetterError(
        "torch_learner.reference_without_weights",
        `${store.uri(prefix)} has no Hugging Face weights (hf/*.safetensors), which the KL reference loads`,
      );
    }
    // every node: hf/'s config and tokenizer files (to build the model) and the DCP files; the
    // safetensors weights only here (rank 0 reads them and broadcasts)
    const everyNode = entries.filter(
      (e) => (inHf(e) && !hfWeight(e)) || (dcp && e.name.startsWith(`${DCP_FOLDER}/`)),
    );
    const here = dcp ? everyNode : [...everyNode, ...entries.filter(hfWeight)];
    const folder = this.#folder("load");
    const local = join(this.#node.workDir, folder);
    try {
      await fetchInto(store, prefix, here, local);
      const loaded = await this.#node.request({
        type: "load",
        role,
        folder,
        weights: dcp ? "dcp" : "huggingface",
        prefix,
        files: everyNode,
        options: this.#options,
      });
      this.#node.logger.info(
        { prefix, role, weights: dcp ? "dcp" : "huggingface", optimizerStep: loaded.optimizerStep },
        "torch learner loaded a checkpoint",
      );
    } finally {
      await rm(local, { recursive: true, force: true });
    }
    return { source, tokenizerJson };
  }

  #requireSource(): HuggingFaceSource {
    if (!this.#source) throw new Error("the torch learner has no checkpoint loaded");
    return this.#source;
  }

  async dispose(): Promise<void> {
    await this.#node.close();
  }
}

function stepMetrics(m: TorchStepMetrics): PpoStepMetrics {
  return {
    loss: m.loss,
    entropy: m.entropy,
    clipFraction: m.clipFraction,
    approxKl: m.approxKl,
    gradNorm: m.gradNorm,
    tokens: m.tokens,
    logProbGap: m.logProbGap,
    ...(m.klToReference === undefined ? {} : { klToReference: m.klToReference }),
  };
}

/**
 * A node other than the driver's: moves its ranks' checkpoint files between the object store and
 * the node's work directory when its local rank 0 asks, until torchrun exits (its exit code).
 */
export async function serveTorchNodeAgent(
  node: TorchNode,
  store: ObjectStore,
  logger: Logger,
): Promise<number> {
  const work: Promise<void>[] = [];
  node.onAgentMessage = (message) => {
    const folder = join(node.workDir, message.folder);
    if (message.type === "fetch") {
      work.push(
        fetchInto(store, message.prefix, message.files, folder).then(
          () => node.answer({ type: "fetched", id: message.id }),
          (error: unknown) => node.answer({ type: "fetched", id: message.id, error: String(error) }),
        ),
      );
    } else {
      work.push(
        (async () => {
          const files = await storeFrom(store, message.prefix, folder, message.files);
          await store.put(
            nodePartKey(message.prefix, message.node),
            JSON.stringify({ node: message.node, files }),
          );
          await rm(folder, { recursive: true, force: true });
        })().catch((error: unknown) =>
          logger.error({ error: String(error), prefix: message.prefix }, "storing checkpoint files failed"),
        ),
      );
    }
  };
  const status = await node.exited;
  await Promise.allSettled(work);
  await node.close();
  logger.info({ code: status.code, signal: status.signal }, "torchrun exited");
  return status.code ?? 1;
}
