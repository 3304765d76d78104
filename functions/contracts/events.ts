import { z } from "zod";
import { defineEvent } from "../runtime/event-definition.ts";
import { GradingModeSchema } from "./grading-mode.ts";

/**
 * Every event a questa run emits. Large payloads (token ids, log-probs, weights) stay in the object
 * store; events carry a claim check: the object's URI, key and sha256.
 */
const RunName = z.string().min(1).max(63).describe("name of the QuestATraining run");
const Sha256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/)
  .describe("lowercase hex sha256 of the object's bytes");

export const ObjectRefSchema = z
  .strictObject({
    uri: z.string().min(1).describe("URI of the object (s3://bucket/key or file:///path)"),
    key: z.string().min(1).describe("key of the object within the run's store"),
    sha256: Sha256,
    size: z.int().min(0).describe("size in bytes"),
  })
  .describe("claim check: where a large payload lives and how to verify it");

export const PurposeSchema = z
  .enum(["train", "probe"])
  .describe("train: a question for policy updates; probe: a hard-filter probe of the policy's pass count");

export const QuestionAugmentedSchema = z
  .strictObject({
    run: RunName,
    questionId: z
      .string()
      .min(1)
      .max(128)
      .describe("stable id of the source problem (hash of source and normalised text)"),
    source: z.string().min(1).describe("dataset name the problem came from"),
    stage: z.int().min(0).describe("curriculum stage the hint was cut for"),
    ratio: z.number().min(0).max(1).describe("hint ratio p of that stage"),
    purpose: PurposeSchema,
    prompt: z
      .string()
      .min(1)
      .describe("the augmented prompt: the problem, followed by the hint when there is one"),
    hinted: z.boolean().describe("whether a hint was added (false when p = 0 or the prefix is too short)"),
    hintChars: z.int().min(0).describe("length of the hint in characters"),
    answer: z.string().describe("gold final answer, a plain string"),
    samples: z.int().min(1).describe("responses to sample for this prompt (group size, or probe samples)"),
    epoch: z.int().min(0).default(0).describe("pass over the training set this question belongs to"),
  })
  .describe("a training problem augmented with a partial-solution hint");

export const RolloutGroupSchema = z
  .strictObject({
    run: RunName,
    questionId: z.string().min(1).max(128).describe("the question the group answers"),
    stage: z.int().min(0).describe("curriculum stage of the prompt"),
    purpose: PurposeSchema,
    epoch: z.int().min(0).default(0).describe("pass over the training set"),
    policyVersion: z.int().min(0).describe("learner step of the policy that generated the group"),
    rewards: z.array(z.number()).min(1).describe("reward of each response, in order"),
    passCount: z.int().min(0).describe("responses graded correct"),
    successRate: z.number().min(0).max(1).describe("passCount / group size"),
    responseTokens: z.int().min(0).describe("generated tokens in the whole group"),
    samplingTokensPerSecond: z
      .number()
      .min(0)
      .optional()
      .describe(
        "the sampling engine's speed when the group was sampled: generated tokens per second of its engine time",
      ),
    shard: ObjectRefSchema.describe(
      "rollout shard: prompt, responses, token ids, behaviour log-probs, rewards",
    ),
  })
  .describe("a group of graded responses to one prompt");

export const CheckpointPublishedSchema = z
  .strictObject({
    run: RunName,
    step: z.int().min(0).describe("learner step the weights are from (policy version)"),
    stage: z.int().min(0).describe("curriculum stage at that step"),
    parentStep: z.int().min(0).optional().describe("step of the checkpoint training resumed from"),
    reason: z
      .enum(["initial", "policy", "interval", "stage-end", "final"])
      .describe(
        "initial: the starting policy; policy: weights-only update for rollout workers (every step); interval, stage-end, final: full checkpoints with optimiser state",
      ),
    manifest: ObjectRefSchema.describe("the checkpoint's manifest.json (sha256 of every file)"),
  })
  .describe("a new policy checkpoint is visible (its manifest is written)");

export const ConfidenceIntervalSchema = z
  .strictObject({
    low: z.number().min(0).max(1).describe("lower bound"),
    high: z.number().min(0).max(1).describe("upper bound"),
  })
  .describe("bootstrap 95% confidence interval");

/** characters of the example response an evaluation event carries */
export const EXAMPLE_RESPONSE_CHARS = 400;

export const EvaluationResultSchema = z
  .strictObject({
    run: RunName,
    step: z.int().min(0).describe("learner step of the evaluated checkpoint"),
    benchmark: z.string().min(1).describe("benchmark name"),
    problems: z.int().min(1).describe("problems evaluated"),
    samples: z.int().min(1).describe("samples per problem"),
    temperature: z.number().gt(0).describe("sampling temperature"),
    topP: z.number().gt(0).max(1).describe("nucleus threshold"),
    hinted: z.literal(false).describe("evaluation prompts never carry hints"),
    passAt1: z.number().min(0).max(1).describe("pass@1 (avg@n): mean correctness over all samples"),
    passAtK: z.record(z.string(), z.number().min(0).max(1)).describe("unbiased pass@k, keyed by k"),
    majAtK: z
      .record(z.string(), z.number().min(0).max(1))
      .describe("majority-vote accuracy over k samples, keyed by k"),
    passAt1Interval: ConfidenceIntervalSchema,
    gradingMode: GradingModeSchema.optional().describe(
      "how answers were read: lenient (free-form answers too) or strict (marked answers only)",
    ),
    results: ObjectRefSchema.describe("per-problem results (JSON lines)"),
    example: z
      .strictObject({
        problemId: z.string().describe("the benchmark problem"),
        response: z
          .string()
          .max(EXAMPLE_RESPONSE_CHARS + 3)
          .describe("its first sampled response, truncated"),
        extracted: z.string().nullable().describe("the answer the grader read from it"),
        correct: z.boolean(),
      })
      .optional()
      .describe("one sampled answer, so a person can see what the model writes"),
  })
  .describe("scores of one checkpoint on one benchmark, without hints");

export const StepMetricsSchema = z
  .strictObject({
    rewardMean: z.number().describe("mean reward of the step's responses"),
    passRate: z.number().min(0).max(1).describe("fraction of the step's responses graded correct"),
    entropy: z.number().min(0).describe("mean token entropy of the policy"),
    clipFraction: z.number().min(0).max(1).describe("fraction of tokens whose ratio was clipped"),
    approxKl: z.number().describe("approximate KL between the proximal and updated policy"),
    gradNorm: z.number().min(0).describe("global gradient norm before clipping"),
    loss: z.number().describe("policy loss"),
    logProbGap: z
      .number()
      .min(0)
      .optional()
      .describe(
        "mean |log pi_learner - log pi_sampler| over the trained tokens: how far the sampler's log-probs are from the learner's",
      ),
    klToReference: z
      .number()
      .min(0)
      .optional()
      .describe(
        "mean KL (k3 estimator) over the trained tokens between the policy and the reference (initial) policy; present while learner.klCoef > 0",
      ),
    tokensPerSecond: z.number().min(0).describe("trained tokens per second"),
    samplingTokensPerSecond: z
      .number()
      .min(0)
      .optional()
      .describe(
        "mean sampling speed reported with the step's groups (generated tokens per second of engine time)",
      ),
    staleness: z.number().min(0).describe("mean policy-version lag of the step's rollouts"),
    groupsKept: z.int().min(0).describe("groups used in the step"),
    groupsRejected: z.int().min(0).describe("groups rejected by the success-rate filter since the last step"),
  })
  .describe("metrics of one learner step");

export const RunStatusSchema = z
  .strictObject({
    run: RunName,
    kind: z
      .enum(["started", "step", "stage", "finished", "failed"])
      .describe(
        "started: run began; step: a learner step finished; stage: curriculum stage changed; finished/failed: run ended",
      ),
    step: z.int().min(0).describe("learner steps completed"),
    stage: z.int().min(0).describe("current curriculum stage"),
    hintRatio: z.number().min(0).max(1).describe("hint ratio of the current stage"),
    metrics: StepMetricsSchema.optional(),
    message: z.string().optional().describe("human-readable detail (stage change reason, failure)"),
  })
  .describe("progress of the run, folded into the resource's status");

export const CurriculumStageChangedSchema = z
  .strictObject({
    run: RunName,
    fromStage: z.int().min(0).describe("stage that ended"),
    toStage: z.int().min(0).describe("stage that starts"),
    ratio: z.number().min(0).max(1).describe("hint ratio of the new stage"),
    step: z.int().min(0).describe("learner step at the transition"),
    reason: z.enum(["steps", "entropy"]).describe("which end condition fired"),
    entropy: z.number().min(0).optional().describe("policy entropy at the transition"),
  })
  .describe("the hint curriculum moved to the next stage");

export const QuestionAugmented = defineEvent({
  type: "dev.questa.question.augmented.v1",
  topic: "questions",
  data: QuestionAugmentedSchema,
  description: "an augmented question to generate a group of responses for",
});

export const RolloutGroup = defineEvent({
  type: "dev.questa.rollout.group.v1",
  topic: "rollouts",
  data: RolloutGroupSchema,
  description: "a graded group of responses; its shard is in the object store",
});

export const CheckpointPublished = defineEvent({
  type: "dev.questa.checkpoint.published.v1",
  topic: "checkpoints",
  data: CheckpointPublishedSchema,
  description: "a policy checkpoint is complete and may be loaded",
});

export const EvaluationResult = defineEvent({
  type: "dev.questa.evaluation.result.v1",
  topic: "evaluations",
  data: EvaluationResultSchema,
  description: "evaluation scores of a checkpoint on a benchmark, without hints",
});

export const RunStatus = defineEvent({
  type: "dev.questa.run.status.v1",
  topic: "status",
  data: RunStatusSchema,
  description: "run progress: learner steps, stage changes, the end of the run",
});

export const CurriculumStageChanged = defineEvent({
  type: "dev.questa.curriculum.stage.v1",
  topic: "status",
  data: CurriculumStageChangedSchema,
  description: "the hint curriculum moved to its next stage",
});

export type ObjectRef = z.infer<typeof ObjectRefSchema>;
export type Purpose = z.infer<typeof PurposeSchema>;
export type QuestionAugmentedData = z.infer<typeof QuestionAugmentedSchema>;
export type RolloutGroupData = z.infer<typeof RolloutGroupSchema>;
export type CheckpointPublishedData = z.infer<typeof CheckpointPublishedSchema>;
export type EvaluationResultData = z.infer<typeof EvaluationResultSchema>;
export type StepMetrics = z.infer<typeof StepMetricsSchema>;
export type RunStatusData = z.infer<typeof RunStatusSchema>;
export type CurriculumStageChangedData = z.infer<typeof CurriculumStageChangedSchema>;
