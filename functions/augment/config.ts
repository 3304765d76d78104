import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import { keySegment } from "../runtime/object-key.ts";
import { datasetSourceOf } from "./dataset-source.ts";
import { type AugmentConfig, AugmentConfigSchema } from "./schema.ts";

/** The augment function's config from a validated QuestATraining spec (every default filled in). */
export function augmentConfigFromSpec(
  run: string,
  spec: QuestATrainingSpec,
  runPrefix = keySegment(run),
): AugmentConfig {
  const { augmentation } = spec;
  return AugmentConfigSchema.parse({
    runPrefix,
    groupSize: spec.rollout.groupSize,
    augmentation: {
      template: augmentation.template,
      unhintedTemplate: augmentation.unhintedTemplate,
      unit: augmentation.unit,
      minPrefixChars: augmentation.minPrefixChars,
      requireAnswerInSolution: augmentation.requireAnswerInSolution,
      curriculum: augmentation.curriculum,
      hardFilter: augmentation.hardFilter,
      decontamination: augmentation.decontamination,
    },
    train: spec.datasets.train.map(datasetSourceOf),
    evaluation: spec.evaluation.benchmarks.map(datasetSourceOf),
  });
}
