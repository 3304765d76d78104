/**
 * The hard-problem filter: keep the problems whose *hinted* prompt the policy about to be trained
 * solves between minPasses and maxPasses times out of `samples` (official: 0-4 of 8). Too-easy
 * problems give no gradient and waste rollouts.
 *
 * Decisions are written once per question to the object store under a deterministic key with
 * `ifAbsent`, so a restart (or a redelivered feedback event) finds the first decision and never
 * redoes or changes it.
 */
import { z } from "zod";
import { InputError, type InputIssue } from "../runtime/errors.ts";
import { keySegment } from "../runtime/object-key.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { parseStoredJson } from "../runtime/stored-json.ts";

export interface HardFilterParams {
  enabled: boolean;
  /** group size the range refers to; default 8 */
  samples: number;
  minPasses: number;
  maxPasses: number;
}

export const defaultHardFilterParams: HardFilterParams = {
  enabled: true,
  samples: 8,
  minPasses: 0,
  maxPasses: 4,
};

/** Pass counts of one question's group of rollouts on its hinted prompt. */
export const PassCountFeedbackSchema = z
  .object({
    questionId: z.string().min(1),
    samples: z.number().int().min(1),
    passes: z.number().int().min(0),
    /** policy version that produced the group, for the record */
    policyVersion: z.number().int().min(0).optional(),
  })
  .refine((feedback) => feedback.passes <= feedback.samples, {
    message: "passes cannot exceed samples",
    path: ["passes"],
  });
export type PassCountFeedback = z.infer<typeof PassCountFeedbackSchema>;

export const HardFilterVerdict = {
  keep: "keep",
  tooEasy: "too-easy",
  tooHard: "too-hard",
  filterDisabled: "filter-disabled",
} as const;
export type HardFilterVerdict = (typeof HardFilterVerdict)[keyof typeof HardFilterVerdict];

export const HardFilterDecisionSchema = z.object({
  questionId: z.string().min(1),
  keep: z.boolean(),
  verdict: z.enum(["keep", "too-easy", "too-hard", "filter-disabled"]),
  passes: z.number().int().min(0),
  samples: z.number().int().min(1),
  minPasses: z.number().int().min(0),
  maxPasses: z.number().int().min(0),
  configuredSamples: z.number().int().min(1),
  policyVersion: z.number().int().min(0).optional(),
});
export type HardFilterDecision = z.infer<typeof HardFilterDecisionSchema>;

export function validateHardFilterParams(params: HardFilterParams, path = "augmentation.hardFilter"): void {
  const issues: InputIssue[] = [];
  if (!Number.isInteger(params.samples) || params.samples < 1) {
    issues.push({ path: `${path}.samples`, message: `must be a whole number >= 1, got ${params.samples}` });
  }
  if (!Number.isInteger(params.minPasses) || params.minPasses < 0) {
    issues.push({
      path: `${path}.minPasses`,
      message: `must be a whole number >= 0, got ${params.minPasses}`,
    });
  }
  if (
    !Number.isInteger(params.maxPasses) ||
    params.maxPasses > params.samples ||
    params.maxPasses < params.minPasses
  ) {
    issues.push({
      path: `${path}.maxPasses`,
      message: `must be a whole number in [minPasses, samples] = [${params.minPasses}, ${params.samples}], got ${params.maxPasses}`,
    });
  }
  if (issues.length > 0) throw new InputError("invalid_hard_filter", issues);
}

/**
 * Keep iff minPasses/samples <= passes/groupSize <= maxPasses/samples. A group of another size
 * (some rollouts failed, or a different group size) is judged by its pass rate, compared exactly in
 * integers.
 */
export function decideHardFilter(feedback: PassCountFeedback, params: HardFilterParams): HardFilterDecision {
  const base = {
    questionId: feedback.questionId,
    passes: feedback.passes,
    samples: feedback.samples,
    minPasses: params.minPasses,
    maxPasses: params.maxPasses,
    configuredSamples: params.samples,
    ...(feedback.policyVersion === undefined ? {} : { policyVersion: feedback.policyVersion }),
  };
  if (!params.enabled) return { ...base, keep: true, verdict: HardFilterVerdict.filterDisabled };
  const scaledPasses = feedback.passes * params.samples;
  if (scaledPasses < params.minPasses * feedback.samples) {
    return { ...base, keep: false, verdict: HardFilterVerdict.tooHard };
  }
  if (scaledPasses > params.maxPasses * feedback.samples) {
    return { ...base, keep: false, verdict: HardFilterVerdict.tooEasy };
  }
  return { ...base, keep: true, verdict: HardFilterVerdict.keep };
}

/** Deterministic object key of a question's decision. */
export function hardFilterDecisionKey(prefix: string, questionId: string): string {
  return `${prefix}/hard-filter/${keySegment(questionId)}.json`;
}

/** The persisted decisions of one run under `prefix` (e.g. `runs/<run>`). */
export class HardFilterJournal {
  constructor(
    private readonly store: ObjectStore,
    private readonly prefix: string,
  ) {}

  /**
   * Decides and persists, unless a decision for the question already exists: then that first
   * decision is returned unchanged (`created: false`).
   */
  async decide(
    feedback: PassCountFeedback,
    params: HardFilterParams,
  ): Promise<{ decision: HardFilterDecision; created: boolean }> {
    const key = hardFilterDecisionKey(this.prefix, feedback.questionId);
    const existing = await this.get(feedback.questionId);
    if (existing) return { decision: existing, created: false };
    const decision = decideHardFilter(feedback, params);
    const put = await this.store.put(key, `${JSON.stringify(decision)}\n`, {
      ifAbsent: true,
      contentType: "application/json",
    });
    if (put.created) return { decision, created: true };
    // another worker decided between our read and our write: its decision wins
    const winner = await this.get(feedback.questionId);
    if (!winner) throw new Error(`hard-filter decision at ${key} vanished after a conflicting write`);
    return { decision: winner, created: false };
  }

  async get(questionId: string): Promise<HardFilterDecision | undefined> {
    const key = hardFilterDecisionKey(this.prefix, questionId);
    const bytes = await this.store.get(key);
    return bytes === undefined ? undefined : parseDecision(bytes, key);
  }

  /** every decision, sorted by key */
  async all(): Promise<HardFilterDecision[]> {
    const infos = await this.store.list(`${this.prefix}/hard-filter/`);
    const decisions: HardFilterDecision[] = [];
    for (const info of infos) {
      const bytes = await this.store.get(info.key);
      if (bytes !== undefined) decisions.push(parseDecision(bytes, info.key));
    }
    return decisions;
  }
}

function parseDecision(bytes: Uint8Array, key: string): HardFilterDecision {
  return parseStoredJson(bytes, key, HardFilterDecisionSchema, "corrupt_hard_filter_decision");
}
