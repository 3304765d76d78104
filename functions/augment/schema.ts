import { z } from "zod";
import { FieldMappingSchema } from "../questa/dataset-readers.ts";

/**
 * What the augment function needs to know, as plain data: built from the QuestATraining spec by
 * `augmentConfigFromSpec` (config.ts), or written directly in tests and embedded runs.
 */
export const DatasetSourceSchema = z.object({
  /** short name recorded as each record's source */
  name: z.string().min(1),
  /** where the file is: an object key, `s3://bucket/key` or a local path (see `openDataset`) */
  uri: z.string().min(1).optional(),
  /** a dataset that ships with questa (functions/questa/builtin-datasets.ts) */
  builtin: z.string().min(1).optional(),
  format: z.enum(["jsonl", "json", "parquet"]).optional(),
  mapping: z.union([z.string().min(1), FieldMappingSchema]).default("auto"),
  synthetic: z
    .object({
      split: z.enum(["train", "eval"]),
      difficulty: z.enum(["easy", "hard", "mixed"]),
      count: z.int().min(1),
      seed: z.int().min(0),
    })
    .optional(),
  /** rows kept by field value, compared as text (before mapping) */
  where: z.record(z.string(), z.array(z.string())).optional(),
  /** records skipped, then kept at most (after reading and mapping) */
  offset: z.int().min(0).optional(),
  limit: z.int().min(1).optional(),
});
export type DatasetSource = z.input<typeof DatasetSourceSchema>;

const StageSchema = z.object({
  ratio: z.number().min(0).max(1),
  until: z.object({ steps: z.int().min(1).optional(), entropyBelow: z.number().gt(0).optional() }).optional(),
});

export const AugmentConfigSchema = z.object({
  /** object-key prefix of the run's files, e.g. the run name */
  runPrefix: z.string().min(1),
  /** responses per training prompt (rollout group size) */
  groupSize: z.int().min(1),
  /** questions per shard object */
  shardSize: z.int().min(1).default(10_000),
  augmentation: z.object({
    template: z.string().default("{problem}\n\n## Hint.{hint}"),
    unhintedTemplate: z.string().default("{problem}\n\n"),
    unit: z.enum(["chars", "tokens", "lines"]).default("chars"),
    minPrefixChars: z.int().min(0).default(10),
    requireAnswerInSolution: z.boolean().default(true),
    curriculum: z.array(StageSchema).min(1),
    hardFilter: z.object({
      enabled: z.boolean(),
      samples: z.int().min(1),
      minPasses: z.int().min(0),
      maxPasses: z.int().min(0),
    }),
    decontamination: z.object({
      enabled: z.boolean(),
      ngram: z.int().min(1),
      minOverlap: z.number().gt(0).max(1).default(0.5),
    }),
  }),
  train: z.array(DatasetSourceSchema),
  /** benchmarks the training set is decontaminated against */
  evaluation: z.array(DatasetSourceSchema).default([]),
});
export type AugmentConfig = z.output<typeof AugmentConfigSchema>;
export type AugmentConfigInput = z.input<typeof AugmentConfigSchema>;

/** One line of an augmented shard. */
export const AugmentedLineSchema = z.strictObject({
  questionId: z.string().min(1),
  source: z.string().min(1),
  stage: z.int().min(0),
  ratio: z.number().min(0).max(1),
  unit: z.enum(["chars", "tokens", "lines"]),
  prompt: z.string().min(1),
  hinted: z.boolean(),
  hintLength: z.int().min(0),
  hintChars: z.int().min(0),
  answer: z.string().min(1),
});
export type AugmentedLine = z.infer<typeof AugmentedLineSchema>;

/** One line of the rejections file: every row that did not become a question, and why. */
export const RejectionSchema = z.strictObject({
  kind: z.enum(["bad-row", "contaminated", "missing-solution", "answer-not-in-solution"]),
  dataset: z.string(),
  /** bad rows: 1-based line, element or row of the file */
  row: z.int().min(1).optional(),
  unit: z.enum(["line", "element", "row"]).optional(),
  questionId: z.string().optional(),
  reason: z.string(),
});
export type Rejection = z.infer<typeof RejectionSchema>;

const ObjectInfoSchema = z.strictObject({
  key: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.int().min(0),
});

export const AugmentManifestSchema = z.strictObject({
  version: z.literal(1),
  stage: z.int().min(0),
  ratio: z.number().min(0).max(1),
  params: z.strictObject({
    template: z.string(),
    unhintedTemplate: z.string(),
    unit: z.enum(["chars", "tokens", "lines"]),
    minPrefixChars: z.int().min(0),
    requireAnswerInSolution: z.boolean(),
  }),
  shards: z.array(ObjectInfoSchema.extend({ count: z.int().min(0) })),
  rejections: ObjectInfoSchema.extend({ count: z.int().min(0) }),
  report: z.strictObject({
    datasets: z.array(
      z.strictObject({
        name: z.string(),
        totalRows: z.int().min(0),
        records: z.int().min(0),
        badRows: z.int().min(0),
      }),
    ),
    decontamination: z.strictObject({
      enabled: z.boolean(),
      ngram: z.int().min(1),
      minOverlap: z.number(),
      evaluationProblems: z.int().min(0),
      dropped: z.int().min(0),
      droppedBySource: z.record(z.string(), z.int().min(0)),
    }),
    augmentation: z.strictObject({
      input: z.int().min(0),
      augmented: z.int().min(0),
      hinted: z.int().min(0),
      unhinted: z.int().min(0),
      dropped: z.record(z.string(), z.int().min(0)),
    }),
  }),
});
export type AugmentManifest = z.infer<typeof AugmentManifestSchema>;
