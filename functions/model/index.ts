export { forwardFlops, matmulThroughput, trainStepFlops } from "./calibration.ts";
export {
  CHECKPOINT_FORMAT,
  type CheckpointData,
  type CheckpointManifest,
  CheckpointManifestSchema,
  HF_EXPORT_FOLDER,
  type LoadedCheckpoint,
  loadCheckpoint,
  MANIFEST_FILE,
  type OptimizerState,
  type SaveCheckpointOptions,
  saveCheckpoint,
} from "./checkpoint.ts";
export {
  type ModelConfig,
  type ModelConfigInput,
  ModelConfigSchema,
  type ModelDims,
  modelDims,
} from "./config.ts";
export {
  createEngine,
  createEngineFromCheckpoint,
  DEFAULT_KV_CACHE_BYTES,
  type EngineOptions,
  FinishReason,
  type GenerateRequest,
  type Generation,
  type GenerationStats,
  HOST_OPTIMIZER_MIN_PARAMS,
  PolicyEngine,
  type ScoredSequence,
} from "./engine.ts";
export { gradients } from "./graph/autodiff.ts";
export { checkGraphGradients, type GradCheckResult, gradCheck } from "./graph/grad-check.ts";
export { type Dim, type DType, GraphBuilder, type Value } from "./graph/graph-builder.ts";
export { OPSET_VERSION, toOnnxModel } from "./graph/onnx-export.ts";
export { modelConfigFromHf, SUPPORTED_MODEL_TYPES, type SupportedModelType } from "./hf-config.ts";
export {
  HfDType,
  type HuggingFaceSource,
  HuggingFaceSourceSchema,
  huggingFaceFolderFiles,
  type LoadedHfModel,
  llamaSourceFor,
  type ReadFolderFile,
  readHuggingFaceFolder,
} from "./hf-folder.ts";
export { type HfTensorMapping, hfWeightMap } from "./hf-weights.ts";
export {
  type OptimizerHyperparams,
  OptimizerHyperparamsSchema,
  type PolicySample,
  type PpoHyperparams,
  type PpoHyperparamsInput,
  PpoHyperparamsSchema,
  type PpoMetrics,
  type SupervisedHyperparams,
  type SupervisedHyperparamsInput,
  SupervisedHyperparamsSchema,
  type SupervisedMetrics,
  type SupervisedSample,
} from "./hyperparams.ts";
export { type MemoryEstimate, memoryEstimate } from "./memory.ts";
export { availableExecutionProviders, ExecutionProvider } from "./ort-backend.ts";
export { initParams, type ParamLayout, type ParamSpec, paramCount, paramLayout } from "./params.ts";
export {
  type ChatMessage,
  createPromptEncoder,
  type PromptEncoder,
  PromptFormat,
  renderChat,
} from "./prompt-format.ts";
export { createRng, normal, type Rng, streamRng } from "./rng.ts";
export { type SampledToken, type SamplingOptions, sampleToken } from "./sampler.ts";
export {
  charAlphabet,
  charTokenizer,
  charTokenizerJson,
  loadTokenizer,
  type Tokenizer,
  type TokenizerConfig,
  TokenizerConfigSchema,
} from "./tokenizer.ts";
