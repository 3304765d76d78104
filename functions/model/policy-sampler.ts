import type { ObjectStore } from "../runtime/object-store.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * What rollout and evaluation need from a policy engine: load a published checkpoint, turn text
 * into prompt tokens and sample responses. A port: functions/host/onnx-adapters.ts implements it on
 * this folder's engine, the functions' tests with fakes.
 */
export interface SamplingSettings {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
}

export interface SampledResponse {
  text: string;
  tokens: number[];
  /** log-probability of each sampled token under the sampling policy (before temperature) */
  logProbs: number[];
  finishReason: "stop" | "length";
}

/** the responses to one prompt and the policy version that sampled all of them */
export interface SampledGroup {
  policyVersion: number;
  responses: SampledResponse[];
  /**
   * the engine's sampling speed so far: generated tokens per second of its prefill and decode time
   * (all rows batched with this group's count), where the engine keeps count
   */
  engineTokensPerSecond?: number;
}

export interface PolicySampler {
  /** learner step of the loaded weights; -1 before the first load */
  readonly version: number;
  /** loads the checkpoint in `folder` (manifest verified) as policy `version` */
  load(store: ObjectStore, folder: string, version: number): Promise<void>;
  /** prompt text -> the token ids the policy is conditioned on */
  encodePrompt(prompt: string): number[];
  /**
   * `samples` responses to one prompt; `seed` makes the draw reproducible, whatever else is sampled
   * at the same time. Concurrent calls may be sampled together.
   */
  sample(
    promptTokens: readonly number[],
    samples: number,
    settings: SamplingSettings,
    seed: number,
  ): Promise<SampledGroup>;
}

/**
 * One generated sequence as a response: its text decoded without the stop token that ended it
 * (the tokens and log-probs keep it: the learner trains on it), whichever engine generated it
 */
export function sampledResponse(
  tokenizer: Pick<Tokenizer, "decode">,
  stopTokens: ReadonlySet<number>,
  generated: Omit<SampledResponse, "text">,
): SampledResponse {
  const last = generated.tokens[generated.tokens.length - 1];
  const content =
    last !== undefined && stopTokens.has(last) ? generated.tokens.slice(0, -1) : generated.tokens;
  return {
    text: tokenizer.decode(content),
    tokens: generated.tokens,
    logProbs: generated.logProbs,
    finishReason: generated.finishReason,
  };
}
