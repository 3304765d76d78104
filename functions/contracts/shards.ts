import { z } from "zod";
import { PurposeSchema } from "./events.ts";

/** Files that travel between functions through the object store (claim checks point at them). */
export const GradedResponseSchema = z
  .strictObject({
    text: z.string().describe("decoded response"),
    tokens: z.array(z.int().min(0)).describe("sampled token ids"),
    logProbs: z.array(z.number()).describe("behaviour log-probability of each sampled token"),
    finishReason: z
      .enum(["stop", "length"])
      .describe("stop: a stop token or string; length: maxNewTokens reached"),
    reward: z.number().describe("reward: scale when correct, 0 otherwise"),
    correct: z.boolean().describe("graded correct"),
    extracted: z.string().nullable().describe("answer extracted from the response"),
    reason: z.string().describe("grading reason code"),
  })
  .describe("one sampled and graded response");

export const RolloutShardSchema = z
  .strictObject({
    run: z.string().min(1),
    questionId: z.string().min(1),
    stage: z.int().min(0),
    epoch: z.int().min(0),
    purpose: PurposeSchema,
    policyVersion: z.int().min(0).describe("learner step of the policy that sampled the responses"),
    prompt: z.string().describe("the prompt as given to the policy (with the hint, if any)"),
    promptTokens: z.array(z.int().min(0)).describe("token ids of the prompt"),
    answer: z.string().describe("gold answer"),
    responses: z.array(GradedResponseSchema).min(1),
    samplingTokensPerSecond: z
      .number()
      .min(0)
      .optional()
      .describe("the sampling engine's speed at the time: generated tokens per second of its engine time"),
  })
  .describe("a rollout shard: a prompt's group of graded responses with their token ids and log-probs");

export const EvaluationProblemResultSchema = z
  .strictObject({
    benchmark: z.string().min(1),
    step: z.int().min(0),
    problemId: z.string().min(1),
    answer: z.string(),
    samples: z.array(
      z.strictObject({
        extracted: z.string().nullable(),
        correct: z.boolean(),
        reason: z.string(),
        tokens: z.int().min(0),
      }),
    ),
    passAt1: z.number().min(0).max(1),
  })
  .describe("one line of an evaluation's per-problem results");

export type GradedResponse = z.infer<typeof GradedResponseSchema>;
export type RolloutShard = z.infer<typeof RolloutShardSchema>;
export type EvaluationProblemResult = z.infer<typeof EvaluationProblemResultSchema>;
