/**
 * Rollout sampling through vLLM servers (rollout.engine vllm). questa tokenises (the model's chat
 * template, as OnnxPolicySampler does) and sends token ids; the servers sample and return the token
 * ids and each one's raw log-prob (vLLM's default logprobs mode raw_logprobs: before temperature,
 * top-k and top-p, as PolicySampler documents). Every group is one request, so one server and one
 * version of the weights sample all of its responses, and the group carries that version.
 *
 * Which version sampled a request: the weight sync (vllm-weight-sync.ts) tags each reload with
 * `<step>:<nonce>` and reloads only between a pause (which ends in-flight requests as `abort`) and a
 * resume. A request whose server reports the same tag before and after it, and whose responses all
 * ended normally, was sampled by that tag's weights from start to end; anything else (aborted by a
 * reload, a tag that moved, a server restarted in between) is sampled again. A freshly started
 * server reports "default": the initial model, version 0.
 */

import { loadCheckpointTokenizer } from "../model/checkpoint.ts";
import {
  type PolicySampler,
  type SampledGroup,
  type SamplingSettings,
  sampledResponse,
} from "../model/policy-sampler.ts";
import {
  createPromptEncoder,
  type PromptEncoder,
  type PromptFormat,
  tokenizerConfigOf,
} from "../model/prompt-format.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { DeadLetterError, errorMessage, RetryableError, UnavailableError } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import type { CompletionChoice, VllmEndpoint } from "./vllm-api.ts";
import { servedStep } from "./vllm-weight-sync.ts";

/** vLLM's largest temperature (it refuses more) */
export const VLLM_MAX_TEMPERATURE = 2;

/**
 * vLLM seeds continuation i of a request with `seed + i`: spacing the requests' seeds this far
 * apart keeps two groups from sharing a continuation's stream
 */
const SEED_STRIDE = 65_536;

/** tries on one server when reloads keep interrupting its requests, before the call gives up */
const MAX_INTERRUPTIONS = 8;

export interface VllmSamplerOptions {
  /** the servers, asked anew on each call (a headless service's addresses change as pods come and go) */
  endpoints: () => Promise<readonly VllmEndpoint[]>;
  /** how prompt text becomes tokens (spec.model.prompt); raw when absent */
  prompt?: { format: PromptFormat; enableThinking: boolean };
  /** how long `load` waits for a server to serve the version; default 10 minutes */
  loadTimeoutMs?: number;
  /** between polls of the servers' versions in `load`; default 250 ms */
  pollMs?: number;
  /**
   * where `load` says that no server answers while it waits (a server restarting, a service with
   * no ready pods), and that one answers again: without it, a rollout waiting to load looks idle
   */
  logger?: Logger;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** what the servers answered the last time this sampler asked (for metrics and run status) */
export interface ServerWeights {
  url: string;
  /** the step of the weights it served, -1 when unknown (an unreachable server, a foreign tag) */
  step: number;
}

/** Samples groups on vLLM servers; see the module comment. */
export class VllmPolicySampler implements PolicySampler {
  readonly #options: VllmSamplerOptions;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #now: () => number;
  #required = -1;
  #tokenizer: Tokenizer | undefined;
  #prompts: PromptEncoder | undefined;
  #loads: Promise<unknown> = Promise.resolve();
  #pendingLoad: { version: number; done: Promise<void> } | undefined;
  readonly #inFlight = new Map<string, number>();
  readonly #served = new Map<string, number>();
  /** generated tokens and the wall time with at least one request in flight */
  #generatedTokens = 0;
  #busyMs = 0;
  #busySince: number | undefined;
  #active = 0;

  constructor(options: VllmSamplerOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#now = options.now ?? Date.now;
  }

  /** the oldest policy version sampling may use: the newest `load` confirmed a server serves */
  get version(): number {
    return this.#required;
  }

  /** generated tokens per second of the time requests were in flight, over the sampler's life */
  get samplingStats(): { generatedTokens: number; busySeconds: number } {
    const open = this.#busySince === undefined ? 0 : this.#now() - this.#busySince;
    return { generatedTokens: this.#generatedTokens, busySeconds: (this.#busyMs + open) / 1000 };
  }

  /** each server's weights now (asked) */
  async pollServerWeights(): Promise<ServerWeights[]> {
    await this.#pollServers();
    return [...this.#served.entries()].map(([url, step]) => ({ url, step }));
  }

  /**
   * For this sampler, loading `version` means: the tokenizer from the checkpoint in `folder` (the
   * first time), then waiting until a server serves that version or a newer one (the weight sync
   * reloads them; in-process runs bind it beside the rollout function). Sampling meanwhile uses
   * the versions already loaded; a server that still lags is skipped until it catches up.
   */
  load(store: ObjectStore, folder: string, version: number): Promise<void> {
    // the rollout process asks again every second while the learner is ahead: one wait per version
    const pending = this.#pendingLoad;
    if (pending && pending.version >= version) return pending.done;
    const work = async () => {
      if (!this.#tokenizer) await this.#loadTokenizer(store, folder);
      if (version <= this.#required) return;
      const started = this.#now();
      const deadline = started + (this.#options.loadTimeoutMs ?? 10 * 60_000);
      let unanswered = false;
      for (;;) {
        const { steps, failures } = await this.#pollServers();
        if (steps.length === 0 && !unanswered) {
          unanswered = true;
          this.#options.logger?.warn(
            { version, failures },
            `vllm_unavailable: no vLLM server answers; policy ${version} loads once one serves it (${failures.join("; ") || "no server address resolves"})`,
          );
        } else if (steps.length > 0 && unanswered) {
          unanswered = false;
          this.#options.logger?.info(
            { version, seconds: Math.round((this.#now() - started) / 1000) },
            "a vLLM server answers again",
          );
        }
        if (steps.some((step) => step >= version)) break;
        if (this.#now() >= deadline) {
          throw new UnavailableError(
            "vllm_behind",
            `no vLLM server serves policy ${version} yet (they serve ${steps.join(", ") || "nothing reachable"}); is the weight sync running?`,
          );
        }
        await this.#sleep(this.#options.pollMs ?? 250);
      }
      this.#required = Math.max(this.#required, version);
    };
    const next = this.#loads.then(work, work);
    this.#loads = next.catch(() => undefined);
    const entry = { version, done: next };
    this.#pendingLoad = entry;
    void this.#loads.then(() => {
      if (this.#pendingLoad === entry) this.#pendingLoad = undefined;
    });
    return next;
  }

  async #loadTokenizer(store: ObjectStore, folder: string): Promise<void> {
    const { tokenizerJson, huggingFace } = await loadCheckpointTokenizer(store, folder);
    if (tokenizerJson === undefined) throw new Error(`the checkpoint at ${folder} has no tokenizer.json`);
    const config = tokenizerConfigOf(huggingFace);
    const tokenizer = loadTokenizer(tokenizerJson, config === undefined ? {} : { config });
    const prompt = this.#options.prompt ?? { format: "raw", enableThinking: true };
    this.#prompts = createPromptEncoder({
      tokenizer,
      ...(huggingFace ? { source: huggingFace } : {}),
      format: prompt.format,
      enableThinking: prompt.enableThinking,
      path: "spec.model.prompt.format",
    });
    this.#tokenizer = tokenizer;
  }

  /** every reachable server's served step now, and why each other one did not answer */
  async #pollServers(): Promise<{ steps: number[]; failures: string[] }> {
    const endpoints = await this.#options.endpoints();
    this.#served.clear();
    const steps: number[] = [];
    const failures: string[] = [];
    await Promise.all(
      endpoints.map(async (endpoint) => {
        try {
          const step = servedStep(await endpoint.weightVersion());
          this.#served.set(endpoint.url, step);
          steps.push(step);
        } catch (error) {
          this.#served.set(endpoint.url, -1);
          failures.push(errorMessage(error));
        }
      }),
    );
    return { steps, failures };
  }

  encodePrompt(prompt: string): number[] {
    if (!this.#prompts) throw new Error("the sampler has no tokenizer: load a checkpoint first");
    return this.#prompts.encode(prompt);
  }

  async sample(
    promptTokens: readonly number[],
    samples: number,
    settings: SamplingSettings,
    seed: number,
  ): Promise<SampledGroup> {
    const tokenizer = this.#tokenizer;
    const prompts = this.#prompts;
    if (!tokenizer || !prompts || this.#required < 0) throw new Error("the sampler has no policy loaded");
    if (settings.temperature > VLLM_MAX_TEMPERATURE) {
      throw new DeadLetterError(
        "vllm_temperature",
        `vLLM samples at temperature <= ${VLLM_MAX_TEMPERATURE}; rollout.temperature is ${settings.temperature}`,
      );
    }
    const endpoints = await this.#options.endpoints();
    const skipped: string[] = [];
    // least busy first; a server that fails or lags is left for this call
    const order = [...endpoints].sort((a, b) => this.#load(a) - this.#load(b));
    for (const endpoint of order) {
      try {
        const sampled = await this.#sampleOn(endpoint, promptTokens, samples, settings, seed);
        if (sampled.kind === "behind") {
          skipped.push(`${endpoint.url} serves policy ${sampled.step}, older than ${this.#required}`);
          continue;
        }
        const stops = new Set(prompts.stopTokens);
        const responses = sampled.choices.map((choice) =>
          sampledResponse(tokenizer, stops, {
            tokens: choice.tokens,
            logProbs: choice.logProbs,
            finishReason: choice.finishReason === "stop" ? "stop" : "length",
          }),
        );
        const stats = this.samplingStats;
        return {
          policyVersion: sampled.step,
          responses,
          ...(stats.busySeconds > 0
            ? { engineTokensPerSecond: stats.generatedTokens / stats.busySeconds }
            : {}),
        };
      } catch (error) {
        if (!(error instanceof RetryableError)) throw error;
        skipped.push(`${endpoint.url}: ${errorMessage(error)}`);
      }
    }
    // not the message's fault: the runtime waits (UnavailableError) and samples the group again
    throw new UnavailableError(
      "vllm_unavailable",
      endpoints.length === 0
        ? "no vLLM server address resolves (QUESTA_VLLM_ENDPOINTS)"
        : `no vLLM server could sample the group: ${skipped.join("; ")}`,
    );
  }

  #load(endpoint: VllmEndpoint): number {
    return this.#inFlight.get(endpoint.url) ?? 0;
  }

  async #sampleOn(
    endpoint: VllmEndpoint,
    promptTokens: readonly number[],
    samples: number,
    settings: SamplingSettings,
    seed: number,
  ): Promise<
    { kind: "behind"; step: number } | { kind: "sampled"; step: number; choices: CompletionChoice[] }
  > {
    for (let interruptions = 0; ; interruptions++) {
      const before = await endpoint.weightVersion();
      const step = servedStep(before);
      this.#served.set(endpoint.url, step);
      if (step < this.#required) return { kind: "behind", step };
      const { maxModelLength } = await endpoint.servedModel();
      const room = maxModelLength - promptTokens.length;
      if (room < 1) {
        throw new DeadLetterError(
          "prompt_too_long",
          `the prompt has ${promptTokens.length} tokens; the vLLM server's context (--max-model-len) is ${maxModelLength}`,
        );
      }
      const choices = await this.#inFlightOn(endpoint, () =>
        endpoint.complete({
          promptTokens,
          samples,
          seed: seed * SEED_STRIDE,
          maxTokens: Math.min(settings.maxNewTokens, room),
          temperature: settings.temperature,
          topP: settings.topP,
          topK: settings.topK,
          stopTokens: this.#prompts?.stopTokens ?? [],
        }),
      );
      const after = await endpoint.weightVersion();
      const whole = choices.every((c) => c.finishReason === "stop" || c.finishReason === "length");
      if (whole && after === before) {
        this.#generatedTokens += choices.reduce((n, c) => n + c.tokens.length, 0);
        return { kind: "sampled", step, choices };
      }
      if (interruptions + 1 >= MAX_INTERRUPTIONS) {
        throw new RetryableError(
          "vllm_interrupted",
          `${endpoint.url}: ${MAX_INTERRUPTIONS} requests in a row were cut short by weight reloads`,
        );
      }
    }
  }

  async #inFlightOn<T>(endpoint: VllmEndpoint, work: () => Promise<T>): Promise<T> {
    this.#inFlight.set(endpoint.url, this.#load(endpoint) + 1);
    if (this.#active++ === 0) this.#busySince = this.#now();
    try {
      return await work();
    } finally {
      this.#inFlight.set(endpoint.url, this.#load(endpoint) - 1);
      if (--this.#active === 0 && this.#busySince !== undefined) {
        this.#busyMs += this.#now() - this.#busySince;
        this.#busySince = undefined;
      }
    }
  }

  async dispose(): Promise<void> {
    await this.#loads;
  }
}
