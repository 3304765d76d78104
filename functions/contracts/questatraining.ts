import { z } from "zod";
import { DEFAULT_REPORT_MODE, DEFAULT_REWARD_MODE, GradingModeSchema } from "./grading-mode.ts";
import { localDirProblem, storagePrefixProblem, topicPrefixProblem } from "./run-names.ts";

/**
 * The `QuestATraining` custom resource: the single source of truth for the CRD's OpenAPI schema,
 * the validation of example files and the config every function reads at start-up. Every default
 * is the official QuestA value (arXiv 2507.13266 and its AReaL-based code), see DESIGN.md §1.
 */
export const GROUP = "questa.dev";
export const VERSION = "v1alpha1";
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = "QuestATraining";
export const PLURAL = "questatrainings";
export const SINGULAR = "questatraining";
export const SHORT_NAMES = ["qt"] as const;

/** the official hint template: `problem + "\n\n" + "## Hint." + prefix` */
export const OFFICIAL_HINT_TEMPLATE = "{problem}\n\n## Hint.{hint}";
/** the official prompt without a hint: the problem and a blank line */
export const OFFICIAL_UNHINTED_TEMPLATE = "{problem}\n\n";

/** CEL rules (`x-kubernetes-validations`) that mirror a schema's `.refine` checks in the CRD */
function cel(...rules: [rule: string, message: string, fieldPath?: string][]) {
  return {
    "x-kubernetes-validations": rules.map(([rule, message, fieldPath]) =>
      fieldPath === undefined ? { rule, message } : { rule, message, fieldPath },
    ),
  };
}

const positiveInt = () => z.int().min(1);
const probability = () => z.number().min(0).max(1);
// a DNS-1123 label: run names become topic names, object-key prefixes and Kubernetes object names
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Kubernetes quantities: "500m", "2", "4Gi", "1.5"
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

export const SecretRefSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/)
      .max(253)
      .describe("name of a Secret in the resource's namespace"),
  })
  .describe("reference to a Kubernetes Secret; credentials never appear in the spec itself");

export const ResourcesSchema = z
  .strictObject({
    cpu: z
      .string()
      .regex(QUANTITY)
      .default("2")
      .describe("CPU request and limit, as a Kubernetes quantity (e.g. 4, 500m)"),
    memory: z
      .string()
      .regex(QUANTITY)
      .default("8Gi")
      .describe("memory request and limit, as a Kubernetes quantity (e.g. 16Gi)"),
    gpus: z
      .int()
      .min(0)
      .max(64)
      .default(0)
      .describe("NVIDIA GPUs per pod (nvidia.com/gpu); 0 runs on the CPU"),
    scratch: z
      .string()
      .regex(QUANTITY)
      .default("10Gi")
      .describe(
        "size of the pod's /tmp scratch volume (model cache, temp files): the emptyDir's sizeLimit, requested and limited as ephemeral-storage",
      ),
  })
  .describe("compute resources of each pod of this function");

export const TolerationSchema = z
  .strictObject({
    key: z.string().optional().describe("taint key the toleration applies to; empty matches all keys"),
    operator: z
      .enum(["Exists", "Equal"])
      .default("Equal")
      .describe("Exists matches any value; Equal matches value"),
    value: z.string().optional().describe("taint value to match when operator is Equal"),
    effect: z
      .enum(["NoSchedule", "PreferNoSchedule", "NoExecute"])
      .optional()
      .describe("taint effect to match; empty matches all effects"),
    tolerationSeconds: z
      .int()
      .min(0)
      .optional()
      .describe("for NoExecute: how long the pod stays bound after the taint appears"),
  })
  .describe("a Kubernetes toleration, copied onto the function's pods");

const placement = {
  nodeSelector: z
    .record(z.string(), z.string())
    .optional()
    .describe("node labels the pods must match (e.g. nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3)"),
  tolerations: z
    .array(TolerationSchema)
    .max(32)
    .optional()
    .describe("tolerations for tainted (e.g. GPU) nodes"),
};

export const SyntheticDatasetSchema = z
  .strictObject({
    split: z
      .enum(["train", "eval"])
      .default("train")
      .describe("which split; train and eval are disjoint by construction"),
    difficulty: z
      .enum(["easy", "hard", "mixed"])
      .default("hard")
      .describe(
        "easy problems are mostly addition and subtraction, with multiplication rare; hard ones are chains of multiplications, the skill the policy must learn",
      ),
    count: positiveInt().max(1_000_000).default(512).describe("number of problems generated"),
    seed: z.int().min(0).default(0).describe("generator seed; the same seed gives the same problems"),
  })
  .describe("the built-in synthetic arithmetic task (embedded default)");

export const DatasetMappingSchema = z
  .enum(["openr1", "questa", "aime24", "aime25", "hmmt-feb-2025", "math-500", "deepscaler-aime", "auto"])
  .describe("how records map to problem, answer and solution: a known source's field names, or auto-detect");

export const BuiltinDatasetNameSchema = z
  .enum(["aime24", "aime25", "hmmt-feb-2025", "math-500", "deepscaler-aime"])
  .describe(
    "a dataset that ships with questa (datasets/ in the repository and the image): the AIME 2024, AIME 2025, HMMT February 2025 and MATH-500 benchmarks, or DeepScaleR's AIME training sample",
  );
export type BuiltinDatasetName = z.infer<typeof BuiltinDatasetNameSchema>;

export const DatasetRefSchema = z
  .strictObject({
    name: z.string().regex(DNS_LABEL).max(63).describe("short name used in events, object keys and reports"),
    uri: z
      .string()
      .min(1)
      .optional()
      .describe(
        "object-store URI (s3://bucket/key) or local path of the data file; omit for a built-in or synthetic set",
      ),
    builtin: BuiltinDatasetNameSchema.optional(),
    format: z
      .enum(["jsonl", "json", "parquet"])
      .default("jsonl")
      .describe("file format: JSON lines, a JSON array, or Parquet"),
    mapping: DatasetMappingSchema.default("auto"),
    synthetic: SyntheticDatasetSchema.optional(),
    where: z
      .record(z.string().min(1).max(128), z.array(z.string().max(256)).min(1).max(256))
      .optional()
      .describe(
        'keep only rows whose field equals one of the listed values, compared as text, e.g. {level: ["1", "2"]} (a field the file names; applied before offset and limit)',
      ),
    offset: z
      .int()
      .min(0)
      .max(10_000_000)
      .optional()
      .describe(
        "skip this many records (after reading, where and mapping), e.g. to keep evaluation problems apart",
      ),
    limit: positiveInt()
      .max(10_000_000)
      .optional()
      .describe("use at most this many records (after offset), e.g. a quick evaluation on a CPU"),
  })
  .refine((d) => [d.uri, d.builtin, d.synthetic].filter((x) => x !== undefined).length === 1, {
    message: "set exactly one of uri, builtin and synthetic",
    path: ["uri"],
  })
  .refine((d) => d.where === undefined || d.synthetic === undefined, {
    message: "where selects rows of a file; the synthetic task has no fields to select on",
    path: ["where"],
  })
  .meta({
    description: "a dataset: a file in the object store, one that ships with questa, or the synthetic task",
    ...cel(
      [
        "(has(self.uri) ? 1 : 0) + (has(self.builtin) ? 1 : 0) + (has(self.synthetic) ? 1 : 0) == 1",
        "set exactly one of uri, builtin and synthetic",
        ".uri",
      ],
      [
        "!has(self.where) || !has(self.synthetic)",
        "where selects rows of a file; the synthetic task has no fields to select on",
        ".where",
      ],
    ),
  });

export const ModelArchitectureSchema = z
  .strictObject({
    layers: positiveInt().max(64).default(2).describe("transformer blocks"),
    width: positiveInt().max(8192).default(128).describe("model (embedding) width"),
    heads: positiveInt().max(128).default(4).describe("attention heads"),
    kvHeads: positiveInt()
      .max(128)
      .default(4)
      .describe("key/value heads (grouped-query attention when below heads)"),
    mlpWidth: positiveInt().max(32768).default(512).describe("hidden width of the MLP"),
    activation: z.enum(["gelu", "swiglu"]).default("gelu").describe("MLP activation"),
    norm: z.enum(["layernorm", "rmsnorm"]).default("layernorm").describe("normalisation layer"),
    positions: z.enum(["learned", "rotary"]).default("learned").describe("position encoding"),
    contextLength: positiveInt().max(131072).default(128).describe("maximum sequence length in tokens"),
    tiedEmbeddings: z.boolean().default(true).describe("share the input embedding and the output projection"),
  })
  .refine((a) => a.width % a.heads === 0, { message: "width must be divisible by heads", path: ["width"] })
  .refine((a) => a.heads % a.kvHeads === 0, {
    message: "heads must be divisible by kvHeads",
    path: ["kvHeads"],
  })
  .meta({
    description:
      "architecture of the built-in policy (ignored for checkpoint and huggingface models, which carry their own config.json)",
    ...cel(
      ["self.width % self.heads == 0", "width must be divisible by heads", ".width"],
      ["self.heads % self.kvHeads == 0", "heads must be divisible by kvHeads", ".kvHeads"],
    ),
  });

export const WarmStartSchema = z
  .strictObject({
    steps: z
      .int()
      .min(0)
      .max(1_000_000)
      .default(2000)
      .describe("supervised steps on easy problems before RL; 0 skips the warm start"),
    batchSize: positiveInt().max(4096).default(64).describe("sequences per supervised step"),
    learningRate: z.number().gt(0).max(1).default(1e-3).describe("Adam learning rate of the warm start"),
    stopAtSkillAccuracy: z
      .number()
      .gt(0)
      .max(1)
      .optional()
      .describe(
        "stop early, checked every 10 steps, once the policy writes the hard skill's results right this often (the products of hard problems, teacher-forced: the chance that sampling at temperature 1 gets one right); steps is then the most it trains. The rare products are learned late, at a step that depends on the seed, so a fixed step count leaves some seeds near guessing and others fluent",
      ),
  })
  .describe(
    "supervised warm start of the built-in policy on easy problems, so RL starts from a model that solves easy problems (synthetic source only)",
  );

export const PromptSchema = z
  .strictObject({
    format: z
      .enum(["auto", "raw", "chat"])
      .default("auto")
      .describe(
        "chat: the (hinted) problem as one user message through the model's chat template, no system prompt or added instruction (the official QuestA format); raw: the text itself; auto: chat when the model has a chat template, else raw",
      ),
    enableThinking: z
      .boolean()
      .default(true)
      .describe(
        "passed to the chat template as enable_thinking (Qwen3's thinking switch; templates without it ignore it)",
      ),
  })
  .describe("how prompts reach the policy, in training and evaluation alike");

export const ModelSchema = z
  .strictObject({
    source: z
      .enum(["synthetic", "checkpoint", "huggingface"])
      .default("synthetic")
      .describe(
        "synthetic: the built-in small policy for the synthetic task; huggingface: a Hugging Face model folder at uri (qwen2, llama or qwen3); checkpoint: a questa checkpoint at uri",
      ),
    uri: z
      .string()
      .min(1)
      .optional()
      .describe(
        "object-store URI (s3://bucket/prefix/) or local directory of the starting model: a Hugging Face folder (config.json, *.safetensors, tokenizer.json) or a questa checkpoint (manifest.json)",
      ),
    prompt: PromptSchema.prefault({}),
    architecture: ModelArchitectureSchema.prefault({}),
    warmStart: WarmStartSchema.prefault({}),
    executionProvider: z
      .enum(["cpu", "cuda"])
      .default("cpu")
      .describe("onnxruntime execution provider; cuda needs a GPU image and gpus > 0"),
    threads: z.int().min(0).max(1024).default(0).describe("intra-op threads; 0 = one per core"),
  })
  .refine((m) => m.source === "synthetic" || m.uri !== undefined, {
    message: "source checkpoint or huggingface needs uri",
    path: ["uri"],
  })
  .refine((m) => m.source !== "synthetic" || m.prompt.format !== "chat", {
    message: "the built-in synthetic policy has no chat template; use prompt.format auto or raw",
    path: ["prompt", "format"],
  })
  .meta({
    description:
      "the policy being trained; the engine computes in float32 whatever dtype (bf16, fp16, fp32) the weights come in",
    ...cel(
      ["self.source == 'synthetic' || has(self.uri)", "source checkpoint or huggingface needs uri", ".uri"],
      [
        "self.source != 'synthetic' || self.prompt.format != 'chat'",
        "the built-in synthetic policy has no chat template; use prompt.format auto or raw",
        ".prompt.format",
      ],
    ),
  });

export const StageEndSchema = z
  .strictObject({
    steps: positiveInt()
      .optional()
      .describe("the stage ends after this many learner steps in total (counted from step 0)"),
    entropyBelow: z
      .number()
      .gt(0)
      .optional()
      .describe("the stage ends when the policy's mean token entropy falls below this value"),
  })
  .refine((u) => u.steps !== undefined || u.entropyBelow !== undefined, {
    message: "set steps, entropyBelow or both (whichever comes first ends the stage)",
  })
  .meta({
    description: "when a curriculum stage ends; whichever condition is met first",
    ...cel(["has(self.steps) || has(self.entropyBelow)", "set steps, entropyBelow or both"]),
  });

export const CurriculumStageSchema = z
  .strictObject({
    ratio: probability().describe(
      "hint ratio p: the fraction of the reference solution given as a hint (0 = no hint)",
    ),
    until: StageEndSchema.optional().describe(
      "end condition; omit on the last stage to run until learner.totalSteps",
    ),
  })
  .describe("one stage of the hint curriculum");

export const HardFilterSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe("probe each training problem and keep only the hard ones"),
    samples: positiveInt()
      .max(256)
      .default(8)
      .describe("samples per hinted problem when probing the policy about to be trained"),
    minPasses: z
      .int()
      .min(0)
      .default(0)
      .describe("keep problems solved at least this many times out of samples"),
    maxPasses: z
      .int()
      .min(0)
      .default(4)
      .describe("keep problems solved at most this many times out of samples"),
  })
  .refine((f) => f.minPasses <= f.maxPasses, {
    message: "minPasses must be <= maxPasses",
    path: ["minPasses"],
  })
  .refine((f) => f.maxPasses <= f.samples, { message: "maxPasses must be <= samples", path: ["maxPasses"] })
  .meta({
    description:
      "hard-problem filter: keep problems whose hinted prompt the policy solves minPasses..maxPasses times",
    ...cel(
      ["self.minPasses <= self.maxPasses", "minPasses must be <= maxPasses", ".minPasses"],
      ["self.maxPasses <= self.samples", "maxPasses must be <= samples", ".maxPasses"],
    ),
  });

export const DecontaminationSchema = z
  .strictObject({
    enabled: z
      .boolean()
      .default(true)
      .describe("drop training problems that overlap an evaluation benchmark"),
    ngram: z
      .int()
      .min(3)
      .max(64)
      .default(13)
      .describe("overlap = a shared word n-gram of this length after normalisation"),
    minOverlap: z
      .number()
      .gt(0)
      .max(1)
      .default(0.5)
      .describe(
        "drop a problem covering at least this fraction of one benchmark problem's n-grams (stock phrases alone don't count)",
      ),
  })
  .describe("decontamination of the training set against the evaluation benchmarks");

export const AugmentationSchema = z
  .strictObject({
    template: z
      .string()
      .max(8192)
      .refine((t) => t.includes("{problem}") && t.includes("{hint}"), {
        message: "template must contain {problem} and {hint}",
      })
      .default(OFFICIAL_HINT_TEMPLATE)
      .meta({
        description:
          "prompt template with {problem} and {hint} placeholders; the default is the official QuestA format",
        ...cel([
          "self.contains('{problem}') && self.contains('{hint}')",
          "template must contain {problem} and {hint}",
        ]),
      }),
    unhintedTemplate: z
      .string()
      .max(8192)
      .refine((t) => t.includes("{problem}"), { message: "unhintedTemplate must contain {problem}" })
      .default(OFFICIAL_UNHINTED_TEMPLATE)
      .meta({
        description:
          'prompt when there is no hint (p = 0 or a prefix shorter than minPrefixChars); the official code keeps the blank line: problem + "\\n\\n"',
        ...cel(["self.contains('{problem}')", "unhintedTemplate must contain {problem}"]),
      }),
    unit: z
      .enum(["chars", "tokens", "lines"])
      .default("chars")
      .describe("what the hint ratio measures: characters (official code), tokens (the paper) or lines"),
    minPrefixChars: z
      .int()
      .min(0)
      .default(10)
      .describe("a hint shorter than this many characters is dropped (un-hinted prompt)"),
    requireAnswerInSolution: z
      .boolean()
      .default(true)
      .describe("drop rows whose final answer does not appear in the reference solution (official filter)"),
    curriculum: z
      .array(CurriculumStageSchema)
      .min(1)
      .max(16)
      .default([{ ratio: 0.5, until: { steps: 100 } }, { ratio: 0.25 }])
      .superRefine((stages, ctx) => {
        // the stage that raises the ratio, by index, so the message points at the line to change
        for (let i = 1; i < stages.length; i++) {
          const previous = stages[i - 1]?.ratio ?? 1;
          const ratio = stages[i]?.ratio ?? 0;
          if (ratio > previous) {
            ctx.addIssue({
              code: "custom",
              path: [i, "ratio"],
              message: `stage ratios must not increase from one stage to the next: ${ratio} is above the previous stage's ${previous}`,
            });
          }
        }
      })
      .refine((stages) => stages.slice(0, -1).every((s) => s.until !== undefined), {
        message: "every stage but the last needs an until condition",
      })
      .meta({
        description:
          "hint curriculum: stage 1 p=0.5, then p=0.25 from the stage-1 checkpoint (official schedule)",
        ...cel(
          [
            "self.map(s, 0.0 - s.ratio).isSorted()",
            "stage ratios must not increase from one stage to the next",
          ],
          [
            "self.filter(s, !has(s.until)).size() == 0 || (self.filter(s, !has(s.until)).size() == 1 && !has(self[self.size() - 1].until))",
            "every stage but the last needs an until condition",
          ],
        ),
      }),
    hardFilter: HardFilterSchema.prefault({}),
    decontamination: DecontaminationSchema.prefault({}),
  })
  .describe("question augmentation with partial solutions (QuestA)");

export const ReplicasSchema = z
  .strictObject({
    min: z
      .int()
      .min(0)
      .max(1024)
      .default(0)
      .describe("fewest rollout workers; 0 lets them scale to zero when idle"),
    max: positiveInt()
      .max(1024)
      .default(4)
      .describe("most rollout workers, reached when consumer lag is high"),
  })
  .refine((r) => r.min <= r.max, { message: "min must be <= max", path: ["min"] })
  .meta({
    description: "rollout worker autoscaling bounds (driven by consumer lag)",
    ...cel(["self.min <= self.max", "min must be <= max", ".min"]),
  });

export const VllmSchema = z
  .strictObject({
    image: z
      .string()
      .min(1)
      .default("vllm/vllm-openai:v0.32.0")
      .describe("container image of the vLLM OpenAI-compatible server"),
    replicas: positiveInt()
      .max(1024)
      .default(1)
      .describe("vLLM servers in a cluster; rollout requests spread over them (questa run starts one)"),
    tensorParallelSize: positiveInt()
      .max(64)
      .default(1)
      .describe("GPUs one server shards the model over (--tensor-parallel-size); at most resources.gpus"),
    dtype: z
      .enum(["auto", "bfloat16", "float16", "float32"])
      .default("auto")
      .describe("weight and activation dtype of the server (--dtype); auto follows config.json"),
    maxModelLength: positiveInt()
      .max(1_048_576)
      .optional()
      .describe(
        "longest prompt + response the server accepts (--max-model-len); default: the model's own. On vLLM's CPU build (questa run's local server) set it to what the run needs: the server prefills up to 256 x this many tokens in one step, and warms up with that many",
      ),
    gpuMemoryUtilization: z
      .number()
      .gt(0)
      .max(1)
      .default(0.9)
      .describe(
        "share of each GPU's memory the server may take for weights and KV cache (a local server on vLLM's CPU build sizes its KV cache from the run instead)",
      ),
    extraArgs: z
      .array(z.string().min(1))
      .max(64)
      .default([])
      .describe("more command-line arguments of the server, passed as given (e.g. --enable-prefix-caching)"),
    resources: ResourcesSchema.prefault({ gpus: 1 }),
    ...placement,
  })
  .refine((v) => v.resources.gpus === 0 || v.tensorParallelSize <= v.resources.gpus, {
    message: "tensorParallelSize must be <= resources.gpus (each server shards over its own GPUs)",
    path: ["tensorParallelSize"],
  })
  .meta({
    description:
      "the vLLM servers rollouts sample from when rollout.engine is vllm. In a cluster the operator runs `replicas` servers; `questa run` (embedded or --kafka --s3) starts one local server on 127.0.0.1 itself, from QUESTA_VLLM_PYTHON or the venv of scripts/install-reference-venv.sh --kind vllm (with dtype, maxModelLength and extraArgs; on a GPU also tensorParallelSize and gpuMemoryUtilization), unless QUESTA_VLLM_ENDPOINTS names servers",
    ...cel([
      "self.resources.gpus == 0 || self.tensorParallelSize <= self.resources.gpus",
      "tensorParallelSize must be <= resources.gpus (each server shards over its own GPUs)",
      ".tensorParallelSize",
    ]),
  });

export const RolloutSchema = z
  .strictObject({
    engine: z
      .enum(["onnx", "vllm"])
      .default("onnx")
      .describe(
        "onnx: questa's onnxruntime engine in the rollout workers (CPU); vllm: the workers sample through vLLM servers (rollout.vllm), which needs a huggingface model",
      ),
    vllm: VllmSchema.prefault({}),
    groupSize: positiveInt().max(1024).default(16).describe("responses sampled per prompt (a group)"),
    temperature: z.number().gt(0).max(10).default(1.0).describe("sampling temperature"),
    topP: z.number().gt(0).max(1).default(1.0).describe("nucleus sampling threshold; 1 disables it"),
    topK: z.int().min(0).default(0).describe("sample among the k most likely tokens; 0 disables it"),
    maxNewTokens: positiveInt().max(1_048_576).default(24576).describe("most tokens generated per response"),
    gradingMode: GradingModeSchema.default(DEFAULT_REWARD_MODE).describe(
      "how the reward reads a response's answer: strict counts only marked answers (\\boxed{}, 'the answer is', 'Final Answer:'), so the policy learns to mark its answer; lenient also reads free-form answers (last math span, bare answer, last number)",
    ),
    replicas: ReplicasSchema.prefault({}),
    resources: ResourcesSchema.prefault({ gpus: 1 }),
    ...placement,
  })
  .refine((r) => r.engine !== "vllm" || r.temperature <= 2, {
    message: "vLLM samples at temperatures up to 2: lower rollout.temperature, or use rollout.engine onnx",
    path: ["temperature"],
  })
  .meta({
    description: "rollout generation: sampling parameters and the rollout workers",
    ...cel([
      "self.engine != 'vllm' || self.temperature <= 2.0",
      "vLLM samples at temperatures up to 2: lower rollout.temperature, or use rollout.engine onnx",
      ".temperature",
    ]),
  });

export const GroupFilterSchema = z
  .strictObject({
    minSuccessRate: probability()
      .default(0.05)
      .describe("reject groups whose success rate is below this (all-wrong groups)"),
    maxSuccessRate: probability()
      .default(0.95)
      .describe("reject groups whose success rate is above this (all-right groups)"),
  })
  .refine((g) => g.minSuccessRate <= g.maxSuccessRate, {
    message: "minSuccessRate must be <= maxSuccessRate",
    path: ["minSuccessRate"],
  })
  .meta({
    description: "dynamic sampling (DAPO): groups with no reward variance carry no gradient and are dropped",
    ...cel([
      "self.minSuccessRate <= self.maxSuccessRate",
      "minSuccessRate must be <= maxSuccessRate",
      ".minSuccessRate",
    ]),
  });

export const TorchLearnerSchema = z
  .strictObject({
    image: z
      .string()
      .min(1)
      .optional()
      .describe("container image with questa and its PyTorch learner; default: the run's image"),
    nodes: positiveInt().max(1024).default(1).describe("learner pods (torchrun nodes)"),
    processesPerNode: positiveInt()
      .max(64)
      .optional()
      .describe("torchrun processes per node; default: learner.resources.gpus, or 1 on the CPU"),
    microBatchSize: positiveInt()
      .max(4096)
      .default(4)
      .describe("sequences per forward/backward of one process (gradient accumulation over the rest)"),
    activationCheckpointing: z
      .boolean()
      .default(true)
      .describe(
        "recompute each decoder layer's activations in the backward pass (less memory, ~30% more compute)",
      ),
    precision: z
      .enum(["bf16", "fp32"])
      .default("bf16")
      .describe(
        "bf16: parameters computed in bfloat16, gradients reduced and the optimiser kept in float32; fp32: float32 throughout",
      ),
    sharding: z
      .enum(["full-shard", "shard-grad-op", "hybrid-shard"])
      .default("full-shard")
      .describe(
        "FSDP2 sharding: full-shard re-shards parameters after forward (least memory, ZeRO-3); shard-grad-op keeps them gathered until backward (ZeRO-2); hybrid-shard shards within a node and replicates across nodes",
      ),
  })
  .describe("the PyTorch FSDP2 learner under torchrun, when learner.engine is torch");

export const LearnerSchema = z
  .strictObject({
    engine: z
      .enum(["onnx", "torch"])
      .default("onnx")
      .describe(
        "onnx: questa's onnxruntime learner (one CPU process); torch: PyTorch FSDP2 under torchrun (learner.torch), which needs a huggingface model",
      ),
    torch: TorchLearnerSchema.prefault({}),
    algorithm: z
      .enum(["ppo"])
      .default("ppo")
      .describe("decoupled PPO with recomputed proximal log-probs (AReaL), no critic"),
    advantage: z
      .enum(["batch", "group", "dr-grpo"])
      .default("batch")
      .describe(
        "batch: reward normalised over the whole batch (official); group: per group (GRPO); dr-grpo: group mean only",
      ),
    rewardScale: z.number().gt(0).default(5).describe("reward of a correct answer (0 otherwise)"),
    clipLow: z.number().gt(0).max(1).default(0.2).describe("PPO clip epsilon below 1"),
    clipHigh: z.number().gt(0).max(10).default(0.2).describe("PPO clip epsilon above 1"),
    importanceCap: z
      .number()
      .gt(1)
      .default(5)
      .describe("cap on the behaviour importance weight of the decoupled loss"),
    learningRate: z.number().gt(0).max(1).default(2e-5).describe("Adam learning rate (constant)"),
    weightDecay: z.number().min(0).max(1).default(0.05).describe("decoupled weight decay (AdamW)"),
    betas: z.array(z.number().min(0).lt(1)).length(2).default([0.9, 0.95]).describe("Adam beta1 and beta2"),
    eps: z.number().gt(0).default(1e-5).describe("Adam epsilon"),
    gradClip: z.number().gt(0).default(1.0).describe("global gradient-norm clip"),
    klCoef: z
      .number()
      .min(0)
      .default(0)
      .describe("KL penalty to the initial policy; 0 = no reference model (official)"),
    entropyCoef: z.number().min(0).default(0).describe("entropy bonus coefficient"),
    promptsPerStep: positiveInt().max(65536).default(128).describe("groups (prompts) per policy update"),
    groupFilter: GroupFilterSchema.prefault({}),
    maxStaleness: z
      .int()
      .min(0)
      .max(64)
      .default(4)
      .describe("rollouts may lag the learner by at most this many policy versions"),
    totalSteps: z
      .int()
      .min(0)
      .max(10_000_000)
      .default(300)
      .describe("policy updates in the whole run; 0 evaluates the starting model and trains nothing"),
    checkpointInterval: positiveInt()
      .default(10)
      .describe("publish a checkpoint every this many steps (and at each stage end)"),
    microBatchTokens: positiveInt()
      .optional()
      .describe(
        "tokens per micro-batch for gradient accumulation (rows = this / the longest sequence); default: 32 sequences, fewer when their logits would pass 2^26 floats",
      ),
    resources: ResourcesSchema.prefault({ gpus: 1 }),
    ...placement,
  })
  .describe("the learner: policy optimisation");

export const EvaluationSchema = z
  .strictObject({
    benchmarks: z
      .array(DatasetRefSchema)
      .max(32)
      .default([])
      .describe("benchmarks evaluated without hints (e.g. AIME24, AIME25, HMMT Feb 2025)"),
    samples: positiveInt()
      .max(1024)
      .default(32)
      .describe("samples per problem; pass@1 is the mean over them"),
    temperature: z.number().gt(0).max(10).default(0.6).describe("sampling temperature at evaluation"),
    topP: z.number().gt(0).max(1).default(0.95).describe("nucleus sampling threshold at evaluation"),
    maxNewTokens: positiveInt()
      .max(1_048_576)
      .default(32768)
      .describe("most tokens generated per evaluation response"),
    k: z
      .array(positiveInt())
      .min(1)
      .max(16)
      .default([1, 4, 8, 16, 32])
      .describe("k values of the unbiased pass@k (each <= samples)"),
    interval: positiveInt()
      .default(20)
      .describe("evaluate every this many learner steps (and the final checkpoint)"),
    atStart: z
      .boolean()
      .default(true)
      .describe("also evaluate the starting policy (step 0), as the baseline"),
    gradingMode: GradingModeSchema.default(DEFAULT_REPORT_MODE).describe(
      "how evaluation reads a response's answer: lenient (also free-form answers, as math-verify reads them) or strict (only marked answers, as the default reward)",
    ),
    resources: ResourcesSchema.prefault({ gpus: 1 }),
    ...placement,
  })
  .refine((e) => e.k.every((k) => k <= e.samples), { message: "every k must be <= samples", path: ["k"] })
  .meta({
    description: "periodic evaluation on the original problems, without hints",
    ...cel(["self.k.all(k, k <= self.samples)", "every k must be <= samples", ".k"]),
  });

export const StorageSchema = z
  .strictObject({
    bucket: z.string().min(3).max(63).optional().describe("S3 bucket; omit in embedded mode to use localDir"),
    prefix: z
      .string()
      .max(512)
      .default("questa")
      .superRefine((prefix, ctx) => {
        const problem = storagePrefixProblem(prefix);
        if (problem !== undefined) ctx.addIssue({ code: "custom", message: `storage.prefix ${problem}` });
      })
      .meta({
        description:
          "key prefix of the run's objects: each run writes <prefix>/namespaces/<namespace>/<run name>/...; a relative path without ., .. or namespaces segments",
        ...cel(
          ["!self.startsWith('/')", "storage.prefix must be relative (no leading /)"],
          [
            "!self.matches('(^|/)[.]{1,2}(/|$)')",
            "storage.prefix must not have . or .. segments (climbing out)",
          ],
          [
            "!self.matches('[^/]//+[^/]') && !self.contains('\\\\')",
            "storage.prefix has an empty segment or a backslash",
          ],
          [
            "!self.matches('(^|/)namespaces(/|$)')",
            "storage.prefix must not have a namespaces segment (reserved for the <namespace>/<name> layout)",
          ],
        ),
      }),
    endpoint: z
      .url()
      .optional()
      .describe("S3 endpoint URL for S3-compatible stores (e.g. MinIO); omit for AWS"),
    region: z.string().default("us-east-1").describe("S3 region"),
    forcePathStyle: z.boolean().default(false).describe("path-style addressing (needed by MinIO)"),
    credentialsSecretRef: SecretRefSchema.optional().describe(
      "Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; omit to use the pod's identity",
    ),
    caSecretRef: SecretRefSchema.optional().describe(
      "Secret with ca.crt: the CA that signed an https endpoint's certificate (a private CA); omit to trust the system's CAs",
    ),
    localDir: z
      .string()
      .default(".questa")
      .superRefine((dir, ctx) => {
        const problem = localDirProblem(dir);
        if (problem !== undefined) {
          ctx.addIssue({
            code: "custom",
            message: `storage.localDir ${problem}; use a relative path inside the working directory (e.g. .questa)`,
          });
        }
      })
      .meta({
        description:
          "embedded mode: directory holding runs (./.questa/runs/<name>), relative to the working directory and inside it",
        ...cel([
          "!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",
          "storage.localDir must be a relative path inside the working directory (no leading /, no ..)",
        ]),
      }),
  })
  .describe("where rollouts, checkpoints and evaluation results are written");

export const KafkaSchema = z
  .strictObject({
    brokers: z
      .array(z.string().regex(/^[^\s:]+:\d+$/))
      .max(64)
      .default([])
      .describe("bootstrap brokers host:port; empty in embedded mode"),
    topicPrefix: z
      .string()
      .regex(/^[a-zA-Z0-9._-]+$/)
      .max(200)
      .optional()
      .describe(
        "prefix of the run's topics and consumer groups: questa.<namespace>.<name> (the default) or questa.<namespace>.<name>.<suffix>; any other prefix is refused",
      ),
    partitions: positiveInt().max(10000).default(8).describe("partitions of each topic the operator creates"),
    replicationFactor: positiveInt().max(16).default(1).describe("replication factor of each topic"),
    retentionMs: z
      .int()
      .min(-1)
      .optional()
      .describe("topic retention in milliseconds; -1 keeps forever; default: broker's"),
    tls: z
      .strictObject({
        secretRef: SecretRefSchema.describe(
          "Secret with ca.crt, and tls.crt and tls.key when clientCertificate is true",
        ),
        clientCertificate: z
          .boolean()
          .default(false)
          .describe("mutual TLS: present the Secret's tls.crt and tls.key as the client certificate"),
      })
      .optional()
      .describe("TLS to the brokers"),
    sasl: z
      .strictObject({
        mechanism: z
          .enum(["plain", "scram-sha-256", "scram-sha-512"])
          .describe("SASL mechanism; plain sends the password as is, so it needs tls"),
        secretRef: SecretRefSchema.describe("Secret with username and password"),
      })
      .optional()
      .describe("SASL authentication"),
  })
  .refine((k) => k.sasl?.mechanism !== "plain" || k.tls !== undefined, {
    message: "SASL plain sends the password in clear text: set tls too, or use scram-sha-512",
    path: ["sasl", "mechanism"],
  })
  .meta({
    description: "the Kafka cluster carrying the run's events",
    ...cel([
      "!has(self.sasl) || self.sasl.mechanism != 'plain' || has(self.tls)",
      "SASL plain sends the password in clear text: set tls too, or use scram-sha-512",
      ".sasl.mechanism",
    ]),
  });

export const QuestATrainingSpecSchema = z
  .strictObject({
    seed: z
      .int()
      .min(0)
      .default(0)
      .describe("seed of every random choice in the run (sampling, data order, init)"),
    image: z
      .string()
      .optional()
      .describe("container image of the functions; default: the operator's own image"),
    model: ModelSchema.prefault({}),
    datasets: z
      .strictObject({
        train: z
          .array(DatasetRefSchema)
          .max(64)
          .describe(
            "training problems (with reference solutions for hints); may be empty when learner.totalSteps is 0",
          ),
      })
      .describe("datasets of the run"),
    augmentation: AugmentationSchema.prefault({}),
    rollout: RolloutSchema.prefault({}),
    learner: LearnerSchema.prefault({}),
    evaluation: EvaluationSchema.prefault({}),
    storage: StorageSchema.prefault({}),
    kafka: KafkaSchema.prefault({}),
    suspend: z.boolean().default(false).describe("true scales the run's workloads to zero; false resumes"),
    activeDeadlineSeconds: positiveInt()
      .optional()
      .describe("fail the run (reason DeadlineExceeded) if it runs longer than this many seconds"),
  })
  .refine((s) => s.evaluation.interval % s.learner.checkpointInterval === 0, {
    message:
      "evaluation.interval must be a multiple of learner.checkpointInterval (evaluations run on checkpoints)",
    path: ["evaluation", "interval"],
  })
  .refine((s) => s.learner.totalSteps === 0 || s.datasets.train.length > 0, {
    message: "datasets.train needs at least one dataset (or set learner.totalSteps: 0 to only evaluate)",
    path: ["datasets", "train"],
  })
  .refine((s) => s.learner.totalSteps > 0 || s.evaluation.benchmarks.length > 0, {
    message:
      "learner.totalSteps: 0 only evaluates the starting model; add evaluation.benchmarks, or train for at least one step",
    path: ["evaluation", "benchmarks"],
  })
  .refine((s) => s.learner.engine !== "torch" || s.model.source === "huggingface", {
    message:
      "learner.engine torch trains a Hugging Face model: set model.source huggingface (or learner.engine onnx)",
    path: ["learner", "engine"],
  })
  .refine((s) => s.rollout.engine !== "vllm" || s.model.source === "huggingface", {
    message:
      "rollout.engine vllm serves a Hugging Face model: set model.source huggingface (or rollout.engine onnx)",
    path: ["rollout", "engine"],
  })
  .meta({
    description: "desired state of a QuestA training run",
    ...cel(
      [
        "self.evaluation.interval % self.learner.checkpointInterval == 0",
        "evaluation.interval must be a multiple of learner.checkpointInterval (evaluations run on checkpoints)",
        ".evaluation.interval",
      ],
      [
        "self.learner.totalSteps == 0 || size(self.datasets.train) > 0",
        "datasets.train needs at least one dataset (or set learner.totalSteps: 0 to only evaluate)",
        ".datasets.train",
      ],
      [
        "self.learner.totalSteps > 0 || size(self.evaluation.benchmarks) > 0",
        "learner.totalSteps: 0 only evaluates the starting model; add evaluation.benchmarks, or train for at least one step",
        ".evaluation.benchmarks",
      ],
      [
        "self.learner.engine != 'torch' || self.model.source == 'huggingface'",
        "learner.engine torch trains a Hugging Face model: set model.source huggingface (or learner.engine onnx)",
        ".learner.engine",
      ],
      [
        "self.rollout.engine != 'vllm' || self.model.source == 'huggingface'",
        "rollout.engine vllm serves a Hugging Face model: set model.source huggingface (or rollout.engine onnx)",
        ".rollout.engine",
      ],
    ),
  });

export const PhaseSchema = z
  .enum(["Pending", "Running", "Suspended", "Succeeded", "Failed"])
  .describe("lifecycle phase of the run");

export const ConditionSchema = z
  .strictObject({
    type: z.string().min(1).max(316).describe("condition type, e.g. Ready, Progressing, Failed"),
    status: z.enum(["True", "False", "Unknown"]).describe("whether the condition holds"),
    reason: z
      .string()
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .max(1024)
      .describe("CamelCase machine-readable reason"),
    message: z.string().max(32768).default("").describe("human-readable detail"),
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .describe("metadata.generation the condition was computed from"),
    lastTransitionTime: z.iso.datetime({ offset: true }).describe("when the status last changed (RFC 3339)"),
  })
  .describe("a standard Kubernetes condition");

export const BenchmarkScoreSchema = z
  .strictObject({
    step: z.int().min(0).describe("learner step of the evaluated checkpoint"),
    passAt1: probability().describe("pass@1: mean correctness over all samples"),
    passAtK: z.record(z.string(), probability()).optional().describe("unbiased pass@k keyed by k"),
    time: z.iso.datetime({ offset: true }).describe("when the evaluation finished"),
  })
  .describe("latest evaluation of one benchmark");

export const ObjectStoreRootSchema = z
  .strictObject({
    endpoint: z.string().optional().describe("S3 endpoint URL; absent for AWS"),
    bucket: z.string().describe("S3 bucket"),
    root: z
      .string()
      .describe("key prefix every object of the run starts with: <prefix>/namespaces/<namespace>/<name>/"),
  })
  .describe("where the run's functions write objects");

export const OwnedNamesSchema = z
  .strictObject({
    layout: z
      .enum(["namespaced", "legacy"])
      .describe(
        "namespaced: names derived from the run's namespace and name; legacy: the names of a run created before they were (kept so it resumes; the operator never deletes legacy names outside the run's own prefix)",
      ),
    topicPrefix: z.string().describe("prefix of the run's topics and consumer groups"),
    topics: z
      .array(z.string())
      .max(64)
      .describe(
        "the run's Kafka topics, recorded before they were created; the finalizer deletes only these",
      ),
    objectStores: z
      .array(ObjectStoreRootSchema)
      .max(16)
      .describe(
        "object-store locations the run was given, recorded before its workloads; questa.dev/delete-artifacts deletes only these",
      ),
  })
  .describe(
    "names the operator gave the run outside Kubernetes, recorded before anything was created under them",
  );

export const QuestATrainingStatusSchema = z
  .strictObject({
    owned: OwnedNamesSchema.optional(),
    phase: PhaseSchema.optional(),
    conditions: z.array(ConditionSchema).max(32).optional().describe("current state, as standard conditions"),
    observedGeneration: z.int().min(0).optional().describe("metadata.generation the status reflects"),
    stage: z.int().min(0).optional().describe("index of the current curriculum stage (0-based)"),
    hintRatio: probability().optional().describe("hint ratio of the current stage"),
    step: z.int().min(0).optional().describe("learner steps completed"),
    latestCheckpoint: z
      .strictObject({
        step: z.int().min(0).describe("learner step of the checkpoint"),
        uri: z.string().describe("object-store URI of the checkpoint's manifest"),
        time: z.iso.datetime({ offset: true }).describe("when it was published"),
      })
      .optional()
      .describe("the newest published checkpoint"),
    latestEvaluation: z
      .record(z.string(), BenchmarkScoreSchema)
      .optional()
      .describe("latest evaluation per benchmark name"),
    passAt1: probability().optional().describe("mean pass@1 over the benchmarks of the latest evaluation"),
    startTime: z.iso.datetime({ offset: true }).optional().describe("when the run started"),
    completionTime: z.iso.datetime({ offset: true }).optional().describe("when the run succeeded or failed"),
  })
  .describe("observed state of a QuestA training run");

export const ObjectMetaSchema = z
  .looseObject({
    name: z
      .string()
      .regex(DNS_LABEL)
      .max(63)
      .describe("run name: a DNS label, used in topic names and object keys"),
    namespace: z.string().regex(DNS_LABEL).max(63).optional().describe("Kubernetes namespace"),
    labels: z.record(z.string(), z.string()).optional().describe("labels"),
    annotations: z.record(z.string(), z.string()).optional().describe("annotations"),
  })
  .describe("standard object metadata");

export const QuestATrainingSchema = z
  .strictObject({
    apiVersion: z.literal(API_VERSION).describe(`always ${API_VERSION}`),
    kind: z.literal(KIND).describe(`always ${KIND}`),
    metadata: ObjectMetaSchema,
    spec: QuestATrainingSpecSchema,
    status: QuestATrainingStatusSchema.optional(),
  })
  // CRD rules cannot see the namespace: the chart's ValidatingAdmissionPolicy and the operator check this
  .superRefine((resource, ctx) => {
    const { name, namespace } = resource.metadata;
    const problem = topicPrefixProblem(
      { name, namespace: namespace ?? "default" },
      resource.spec.kafka.topicPrefix,
    );
    if (problem !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["spec", "kafka", "topicPrefix"],
        message: `${problem}${namespace === undefined ? " (metadata.namespace is unset: default assumed)" : ""}`,
      });
    }
  })
  .describe("a QuestA reinforcement-learning run: hint-augmented RL of an LLM on math");

export type SecretRef = z.infer<typeof SecretRefSchema>;
export type Resources = z.infer<typeof ResourcesSchema>;
export type Toleration = z.infer<typeof TolerationSchema>;
export type SyntheticDataset = z.infer<typeof SyntheticDatasetSchema>;
export type DatasetMapping = z.infer<typeof DatasetMappingSchema>;
export type DatasetRef = z.infer<typeof DatasetRefSchema>;
export type ModelArchitecture = z.infer<typeof ModelArchitectureSchema>;
export type ModelSpec = z.infer<typeof ModelSchema>;
export type PromptSpec = z.infer<typeof PromptSchema>;
export type CurriculumStage = z.infer<typeof CurriculumStageSchema>;
export type StageEnd = z.infer<typeof StageEndSchema>;
export type HardFilter = z.infer<typeof HardFilterSchema>;
export type Augmentation = z.infer<typeof AugmentationSchema>;
export type RolloutSpec = z.infer<typeof RolloutSchema>;
export type LearnerSpec = z.infer<typeof LearnerSchema>;
export type EvaluationSpec = z.infer<typeof EvaluationSchema>;
export type StorageSpec = z.infer<typeof StorageSchema>;
export type KafkaSpec = z.infer<typeof KafkaSchema>;
export type QuestATrainingSpec = z.infer<typeof QuestATrainingSpecSchema>;
export type Phase = z.infer<typeof PhaseSchema>;
export type Condition = z.infer<typeof ConditionSchema>;
export type BenchmarkScore = z.infer<typeof BenchmarkScoreSchema>;
export type QuestATrainingStatus = z.infer<typeof QuestATrainingStatusSchema>;
export type ObjectStoreRoot = z.infer<typeof ObjectStoreRootSchema>;
export type OwnedNames = z.infer<typeof OwnedNamesSchema>;
export type QuestATraining = z.infer<typeof QuestATrainingSchema>;
/** the resource as written by a user, before defaults */
export type QuestATrainingInput = z.input<typeof QuestATrainingSchema>;
