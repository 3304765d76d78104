/**
 * The protocol between questa (TypeScript: Kafka, S3, the Learner) and its PyTorch learner
 * (torch-learner/, FSDP2 under torchrun): JSON lines over the pipes of each node's local rank 0,
 * stdin one way and stdout the other (stderr stays the processes' log). Global rank 0 serves the
 * driver's requests and broadcasts each to every rank; on the other nodes local rank 0 only asks its
 * node agent to move checkpoint files to and from the object store.
 *
 * Big payloads never cross the pipe: a token batch and checkpoint files are local files named in
 * the messages, relative to each node's own work directory (`--workdir`), so the same message is
 * valid on every node. `npm run generate` writes these schemas as JSON Schemas
 * (manifests/schemas/torch-learner.*.json), which the Python side validates every line it reads
 * against.
 */
import { z } from "zod";

/** a folder or file under a node's work directory: relative, no `..`, no leading `/` */
const LocalName = z
  .string()
  .min(1)
  .max(512)
  .regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$))[A-Za-z0-9._\-/]+$/)
  .describe("a path relative to the node's work directory");

const RequestId = z.int().min(1).describe("the request this message belongs to");

/** a file of a checkpoint, as its manifest lists it */
export const CheckpointFileSchema = z.strictObject({
  name: z.string().min(1).describe("path under the checkpoint's prefix"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().min(0),
});
export type CheckpointFile = z.infer<typeof CheckpointFileSchema>;

export const TorchPpoSettingsSchema = z.strictObject({
  learningRate: z.number().gt(0),
  weightDecay: z.number().min(0),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  eps: z.number().gt(0),
  gradClip: z.number().gt(0),
  clipLow: z.number().gt(0),
  clipHigh: z.number().gt(0),
  importanceCap: z.number().gt(0),
  entropyCoef: z.number().min(0),
  klCoef: z
    .number()
    .min(0)
    .describe("weight of the k3 estimate of KL(policy || reference) per token; > 0 needs a reference loaded"),
});

/** how a process trains: learner.torch of the resource, resolved */
export const TorchTrainingOptionsSchema = z.strictObject({
  microBatchSize: z.int().min(1),
  activationCheckpointing: z.boolean(),
  precision: z.enum(["bf16", "fp32"]),
  sharding: z.enum(["full-shard", "shard-grad-op", "hybrid-shard"]),
});
export type TorchTrainingOptions = z.infer<typeof TorchTrainingOptionsSchema>;

/**
 * Loads a checkpoint: `folder` holds (or, on the other nodes, will hold once fetched) the checkpoint's
 * files as stored under `prefix`; `hf/` has config.json and the tokenizer files, and the weights
 * either as Hugging Face safetensors in `hf/` or as model + optimiser state in `dcp/`
 * (torch.distributed.checkpoint). The first load of a role builds its model.
 */
export const TorchLoadRequestSchema = z.strictObject({
  type: z.literal("load"),
  id: RequestId,
  role: z
    .enum(["policy", "reference"])
    .describe(
      "policy: the model trained (with its optimiser); reference: the frozen policy a KL penalty pulls towards",
    ),
  folder: LocalName,
  weights: z
    .enum(["huggingface", "dcp"])
    .describe("huggingface: hf/*.safetensors, fresh optimiser; dcp: model and optimiser from dcp/"),
  prefix: z.string().describe("the checkpoint's key prefix in the object store"),
  files: z.array(CheckpointFileSchema).describe("what each node fetches into folder before loading"),
  options: TorchTrainingOptionsSchema,
});

/**
 * One optimiser step over a batch whose token arrays are in `batch`, little-endian, one after the
 * other for N = sum(lengths) entries each: int32 tokens, float32 loss mask, float32 advantages,
 * float32 behaviour log-probs (entry 0 of each sample unused, as in PpoSample).
 */
export const TorchTrainRequestSchema = z.strictObject({
  type: z.literal("train"),
  id: RequestId,
  batch: LocalName,
  lengths: z.array(z.int().min(2)).min(1).describe("tokens of each sample, in batch order"),
  settings: TorchPpoSettingsSchema,
});

/** Writes a checkpoint into `folder`: the gathered weights as hf/*.safetensors, and/or dcp/. */
export const TorchSaveRequestSchema = z.strictObject({
  type: z.literal("save"),
  id: RequestId,
  folder: LocalName,
  prefix: z.string().describe("where the files go in the object store"),
  huggingFace: z
    .strictObject({ dtype: z.enum(["bfloat16", "float16", "float32"]) })
    .nullable()
    .describe("write the full weights as safetensors in hf/, in this dtype; null: not"),
  dcp: z.boolean().describe("write model and optimiser state with torch.distributed.checkpoint to dcp/"),
  maxFileBytes: z.int().min(1).describe("largest file written (shards split above it)"),
});

export const TorchShutdownRequestSchema = z.strictObject({
  type: z.literal("shutdown"),
  id: RequestId,
});

/** a node agent's answer to its local rank 0's `fetch` */
export const TorchFetchedSchema = z.strictObject({
  type: z.literal("fetched"),
  id: RequestId,
  error: z.string().optional().describe("why the files could not be fetched; absent when they were"),
});

/** every line the Python side reads */
export const TorchLearnerRequestSchema = z
  .discriminatedUnion("type", [
    TorchLoadRequestSchema,
    TorchTrainRequestSchema,
    TorchSaveRequestSchema,
    TorchShutdownRequestSchema,
    TorchFetchedSchema,
  ])
  .describe("a line questa writes to the torch learner's local rank 0");
export type TorchLearnerRequest = z.infer<typeof TorchLearnerRequestSchema>;
export type TorchLoadRequest = z.infer<typeof TorchLoadRequestSchema>;
export type TorchTrainRequest = z.infer<typeof TorchTrainRequestSchema>;
export type TorchSaveRequest = z.infer<typeof TorchSaveRequestSchema>;

export const TorchStepMetricsSchema = z.strictObject({
  loss: z.number(),
  entropy: z.number(),
  clipFraction: z.number(),
  approxKl: z.number(),
  gradNorm: z.number(),
  tokens: z.int().min(0),
  logProbGap: z.number(),
  klToReference: z
    .number()
    .optional()
    .describe("mean k3 KL(policy || reference) per trained token; present when klCoef > 0"),
});

export const TorchReadySchema = z.strictObject({
  type: z.literal("ready"),
  rank: z.int().min(0).describe("global rank of the process writing (a local rank 0)"),
  node: z.int().min(0).describe("the node's rank (torchrun's group rank)"),
  nodes: z.int().min(1),
  worldSize: z.int().min(1),
  device: z.string().describe("cpu, or cuda:<n>"),
  backend: z.string().describe("gloo or nccl"),
  threads: z.int().min(1).describe("intra-op threads per process"),
});

export const TorchLearnerReplySchema = z
  .discriminatedUnion("type", [
    TorchReadySchema,
    z.strictObject({ type: z.literal("loaded"), id: RequestId, optimizerStep: z.int().min(0) }),
    z.strictObject({ type: z.literal("trained"), id: RequestId, metrics: TorchStepMetricsSchema }),
    z.strictObject({
      type: z.literal("saved"),
      id: RequestId,
      files: z.array(LocalName).describe("files this node wrote, relative to the request's folder"),
    }),
    z.strictObject({ type: z.literal("closing"), id: RequestId }),
    z.strictObject({
      type: z.literal("failed"),
      id: z.int().min(0).describe("the request that failed; 0 when the line could not be read"),
      kind: z
        .enum(["input", "internal"])
        .describe("input: the request was refused (nothing changed); internal: the learner broke"),
      message: z.string(),
    }),
    // on nodes other than the driver's: the node agent moves this node's checkpoint files
    z.strictObject({
      type: z.literal("fetch"),
      id: RequestId,
      prefix: z.string(),
      folder: LocalName,
      files: z.array(CheckpointFileSchema),
    }),
    z.strictObject({
      type: z.literal("store"),
      id: RequestId,
      prefix: z.string(),
      folder: LocalName,
      node: z.int().min(0),
      files: z.array(LocalName),
    }),
  ])
  .describe("a line the torch learner's local rank 0 writes to questa");
export type TorchLearnerReply = z.infer<typeof TorchLearnerReplySchema>;
export type TorchReady = z.infer<typeof TorchReadySchema>;
export type TorchStepMetrics = z.infer<typeof TorchStepMetricsSchema>;
