import {
  CheckpointPublished,
  type CheckpointPublishedData,
  CurriculumStageChanged,
  QuestionAugmented,
  type QuestionAugmentedData,
  RolloutGroup,
  type RolloutGroupData,
} from "../contracts/events.ts";
import type { LearnerSpec, RolloutSpec } from "../contracts/questatraining.ts";
import type { RunKeys } from "../contracts/run-keys.ts";
import { type RolloutShard, RolloutShardSchema } from "../contracts/shards.ts";
import type { Grade } from "../grading/reward.ts";
import type { PolicySampler } from "../model/policy-sampler.ts";
import { judgeGroup } from "../rl/group-filter.ts";
import { defineFunction, emit, type FunctionDeps, isEvent } from "../runtime/define-function.ts";
import { DeadLetterError } from "../runtime/errors.ts";
import type { EmittedEvent } from "../runtime/event-definition.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { parseStoredJson } from "../runtime/stored-json.ts";
import type { StalenessGate } from "./staleness-gate.ts";

export interface RolloutServices {
  sampler: PolicySampler;
  grade: Grade;
  gate: StalenessGate;
  rollout: RolloutSpec;
  learner: Pick<LearnerSpec, "groupFilter">;
  keys: RunKeys;
  /** the newest curriculum stage announced; older-stage training questions are skipped */
  stage: { current: number };
}

export function rolloutShardKey(
  keys: RunKeys,
  q: Pick<QuestionAugmentedData, "questionId" | "stage" | "epoch" | "purpose">,
) {
  return keys.key("rollouts", q.purpose, `s${q.stage}-e${q.epoch}`, `${q.questionId}.json`);
}

async function loadPolicy(
  services: RolloutServices,
  store: ObjectStore,
  checkpoint: CheckpointPublishedData,
): Promise<void> {
  services.gate.observeLearner(checkpoint.step);
  if (checkpoint.step <= services.sampler.version) return;
  const folder = checkpoint.manifest.key.replace(/\/manifest\.json$/, "");
  await services.sampler.load(store, folder, checkpoint.step);
}

function seedOf(text: string): number {
  return Number.parseInt(sha256Hex(text).slice(0, 8), 16);
}

/** samples and grades a question's group; the shard names the policy version that sampled it */
async function sampleShard(
  question: QuestionAugmentedData,
  eventId: string,
  services: RolloutServices,
): Promise<RolloutShard> {
  if (services.sampler.version < 0) {
    throw new DeadLetterError("no_policy", "no policy checkpoint was published before the first question");
  }
  const promptTokens = services.sampler.encodePrompt(question.prompt);
  const { policyVersion, responses, engineTokensPerSecond } = await services.sampler.sample(
    promptTokens,
    question.samples,
    {
      temperature: services.rollout.temperature,
      topP: services.rollout.topP,
      topK: services.rollout.topK,
      maxNewTokens: services.rollout.maxNewTokens,
    },
    seedOf(eventId),
  );
  const graded = await Promise.all(
    responses.map(async (r) => ({ ...r, ...(await services.grade(question.answer, r.text)) })),
  );
  return {
    run: question.run,
    questionId: question.questionId,
    stage: question.stage,
    epoch: question.epoch,
    purpose: question.purpose,
    policyVersion,
    prompt: question.prompt,
    promptTokens,
    answer: question.answer,
    responses: graded.map((r) => ({
      text: r.text,
      tokens: r.tokens,
      logProbs: r.logProbs,
      finishReason: r.finishReason,
      reward: r.reward,
      correct: r.correct,
      extracted: r.extracted,
      reason: r.reason,
    })),
    ...(engineTokensPerSecond === undefined ? {} : { samplingTokensPerSecond: engineTokensPerSecond }),
  };
}

/**
 * Generates a group of responses for an augmented question with the newest allowed policy, grades
 * them, writes the rollout shard and emits `rollout.group`. Training questions wait on the
 * staleness gate (consumption pauses) instead of producing data the learner may not use.
 */
export async function handleQuestion(
  question: QuestionAugmentedData,
  eventId: string,
  deps: FunctionDeps<RolloutServices>,
): Promise<EmittedEvent[]> {
  const { services, store } = deps;
  const training = question.purpose === "train";
  if (training && question.stage < services.stage.current) return [];
  const key = rolloutShardKey(services.keys, question);
  // a redelivered question: the shard written before the crash is the answer
  const existing = await store.get(key);
  let shard: RolloutShard;
  let body: Uint8Array | string;
  if (existing !== undefined) {
    shard = parseStoredJson(existing, key, RolloutShardSchema, "shard_invalid");
    body = existing;
  } else {
    // a training question holds a unit of the gate's capacity while it is sampled (concurrent
    // questions of other partitions cannot overshoot the bound together)
    const release = training ? await services.gate.reserve(deps.signal) : undefined;
    try {
      shard = await sampleShard(question, eventId, services);
      body = JSON.stringify(shard);
      await store.put(key, body, { contentType: "application/json" });
      const passed = shard.responses.filter((r) => r.correct).length / shard.responses.length;
      if (training && judgeGroup(passed, services.learner.groupFilter).keep) services.gate.recordProduced();
    } finally {
      release?.();
    }
  }
  const rewards = shard.responses.map((r) => r.reward);
  const passCount = shard.responses.filter((r) => r.correct).length;
  const successRate = passCount / shard.responses.length;
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  const data: RolloutGroupData = {
    run: question.run,
    questionId: question.questionId,
    stage: question.stage,
    purpose: question.purpose,
    epoch: question.epoch,
    policyVersion: shard.policyVersion,
    rewards,
    passCount,
    successRate,
    responseTokens: shard.responses.reduce((n, r) => n + r.tokens.length, 0),
    ...(shard.samplingTokensPerSecond === undefined
      ? {}
      : { samplingTokensPerSecond: shard.samplingTokensPerSecond }),
    shard: { uri: store.uri(key), key, sha256: sha256Hex(bytes), size: bytes.byteLength },
  };
  return [emit(RolloutGroup, data, question.questionId)];
}

export const rolloutFunction = defineFunction({
  name: "rollout",
  consumes: [QuestionAugmented, CheckpointPublished, CurriculumStageChanged] as const,
  emits: [RolloutGroup],
  async handle(event, deps: FunctionDeps<RolloutServices>) {
    if (isEvent(event, CheckpointPublished)) {
      await loadPolicy(deps.services, deps.store, event.data as CheckpointPublishedData);
      return [];
    }
    if (isEvent(event, CurriculumStageChanged)) {
      const data = event.data as { toStage: number };
      deps.services.stage.current = Math.max(deps.services.stage.current, data.toStage);
      return [];
    }
    return handleQuestion(event.data as QuestionAugmentedData, event.id, deps);
  },
});
