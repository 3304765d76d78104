export { augmentConfigFromSpec } from "./config.ts";
export { curriculumStageChangedData } from "./curriculum-events.ts";
export { loadDatasetSource, type OpenDataset, storeDatasetOpener } from "./dataset-source.ts";
export {
  type AugmentDeps,
  type AugmentServices,
  augmentFunction,
  type BuiltStage,
  buildStage,
  probeAnswered,
  questionEvent,
  startStage,
} from "./handler.ts";
export {
  type AugmentConfig,
  type AugmentConfigInput,
  AugmentConfigSchema,
  type AugmentedLine,
  AugmentedLineSchema,
  type AugmentManifest,
  AugmentManifestSchema,
  type DatasetSource,
  DatasetSourceSchema,
  type Rejection,
  RejectionSchema,
} from "./schema.ts";
export {
  manifestKey,
  readStageManifest,
  readStageQuestions,
  stagePrefix,
  writeStageShards,
} from "./shard-writer.ts";
