import type { ObjectRef } from "../contracts/events.ts";
import { manifestRef, removeCheckpointFolder } from "../learn/checkpoint-folders.ts";
import type { LearnerEngine, PpoSample, PpoSettings, PpoStepMetrics } from "../learn/learner-engine.ts";
import { type LoadedCheckpoint, loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import type { ModelConfigInput } from "../model/config.ts";
import { createEngine, type GenerationStats, type PolicyEngine } from "../model/engine.ts";
import type { HuggingFaceSource } from "../model/hf-folder.ts";
import type { ExecutionProvider } from "../model/ort-backend.ts";
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
import { streamRng } from "../model/rng.ts";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { DeadLetterError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";

export interface EngineSettings {
  executionProvider: ExecutionProvider;
  /** intra-op threads; 0 = one per core */
  threads: number;
  /** how prompt text becomes tokens (spec.model.prompt); raw when absent */
  prompt?: { format: PromptFormat; enableThinking: boolean };
  /** rows a sampler's engine decodes together at most (engine default when absent) */
  maxBatchRows?: number;
  /** KV-cache positions a sampler's engine holds at most (engine default when absent) */
  maxBatchTokens?: number;
  /**
   * the learner writes the Hugging Face export (`hf/`) with every policy update too, not only with
   * published full checkpoints: vLLM servers reload from it (rollout.engine vllm)
   */
  huggingFaceWithPolicies?: boolean;
}

/** a checkpoint's tokenizer, with its special tokens named by the Hugging Face folder it came from */
function checkpointTokenizer(loaded: LoadedCheckpoint): Tokenizer | undefined {
  if (loaded.tokenizerJson === undefined) return undefined;
  const config = tokenizerConfigOf(loaded.huggingFace);
  return loadTokenizer(loaded.tokenizerJson, config === undefined ? {} : { config });
}

/** Runs `work` after every earlier call finished. */
class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(work, work);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * Shared work (sampling) runs concurrently; exclusive work (swapping the weights) waits until the
 * shared work in progress is done and holds new shared work back meanwhile, so every generation
 * runs on one version of the weights from start to end and a load is never starved by a stream of
 * samples.
 */
export class SharedExclusiveLock {
  #shared = 0;
  /** settles when the exclusive holder (waiting or running) is done */
  #exclusive: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #exclusiveQueue = new SerialQueue();

  async shared<T>(work: () => Promise<T>): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    this.#shared++;
    try {
      return await work();
    } finally {
      this.#shared--;
      if (this.#shared === 0) this.#drained?.();
    }
  }

  exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.#exclusiveQueue.run(async () => {
      let done!: () => void;
      this.#exclusive = new Promise<void>((resolve) => {
        done = resolve;
      });
      try {
        while (this.#shared > 0) {
          await new Promise<void>((resolve) => {
            this.#drained = resolve;
          });
        }
        return await work();
      } finally {
        this.#drained = undefined;
        this.#exclusive = undefined;
        done();
      }
    });
  }
}

function engineOptions(settings: EngineSettings) {
  return {
    executionProvider: settings.executionProvider,
    ...(settings.threads > 0 ? { threads: settings.threads } : {}),
    ...(settings.maxBatchRows === undefined ? {} : { maxBatchRows: settings.maxBatchRows }),
    ...(settings.maxBatchTokens === undefined ? {} : { maxBatchTokens: settings.maxBatchTokens }),
  };
}

/** The learner's engine on onnxruntime (functions/model): PPO steps and checkpoints. */
export class OnnxLearnerEngine implements LearnerEngine {
  #engine: PolicyEngine | undefined;
  /** the KL penalty's reference policy and the folder it came from (loaded once) */
  #reference: { engine: PolicyEngine; prefix: string } | undefined;
  #tokenizer: Tokenizer | undefined;
  #huggingFace: HuggingFaceSource | undefined;
  readonly #settings: EngineSettings;

  constructor(settings: EngineSettings) {
    this.#settings = settings;
  }

  get engine(): PolicyEngine {
    if (!this.#engine) throw new Error("the learner engine has no checkpoint loaded");
    return this.#engine;
  }

  async trainPpo(samples: readonly PpoSample[], s: PpoSettings): Promise<PpoStepMetrics> {
    const microBatchSize =
      s.microBatchTokens === undefined
        ? undefined
        : // rows per micro-batch from the token budget, at the longest sequence's length
          Math.max(1, Math.floor(s.microBatchTokens / Math.max(...samples.map((x) => x.tokens.length))));
    const scored = s.klCoef > 0 ? await this.#withReferenceLogProbs(samples, microBatchSize) : samples;
    const metrics = await this.engine.trainStep(scored, {
      lr: s.learningRate,
      beta1: s.beta1,
      beta2: s.beta2,
      eps: s.eps,
      weightDecay: s.weightDecay,
      maxGradNorm: s.gradClip,
      clipLow: s.clipLow,
      clipHigh: s.clipHigh,
      importanceWeightCap: s.importanceCap,
      klCoef: s.klCoef,
      entropyCoef: s.entropyCoef,
      proximalPolicy: "current",
      ...(microBatchSize === undefined ? {} : { microBatchSize }),
    });
    return {
      loss: metrics.loss,
      entropy: metrics.entropy,
      clipFraction: metrics.clipFraction,
      approxKl: metrics.approxKl,
      gradNorm: metrics.gradNorm,
      tokens: metrics.tokens,
      logProbGap: metrics.logProbGap,
      ...(s.klCoef > 0 ? { klToReference: metrics.klToReference } : {}),
    };
  }

  async saveCheckpoint(
    store: ObjectStore,
    prefix: string,
    meta: { step: number; parentStep?: number; withOptimizer: boolean; publish?: boolean },
  ): Promise<ObjectRef> {
    const engine = this.engine;
    // a step redone after a crash rewrites its folder: whatever a dead process left there goes first
    await removeCheckpointFolder(store, prefix);
    const { params, optimizerState } = engine.snapshot();
    await saveCheckpoint(
      store,
      prefix,
      {
        config: engine.config,
        params,
        ...(meta.withOptimizer ? { optimizerState } : {}),
        ...(this.#tokenizer ? { tokenizerJson: this.#tokenizer.toJSON() } : {}),
        ...(this.#huggingFace ? { huggingFace: this.#huggingFace } : {}),
        step: meta.step,
        ...(meta.parentStep === undefined ? {} : { parent: `step-${meta.parentStep}` }),
      },
      {
        // published full checkpoints, and policy updates (no optimiser state) for vLLM servers
        exportHuggingFace:
          (meta.publish === true ||
            (this.#settings.huggingFaceWithPolicies === true && !meta.withOptimizer)) &&
          this.#huggingFace !== undefined,
      },
    );
    const ref = await manifestRef(store, prefix);
    if (!ref)
      throw new DeadLetterError(
        "checkpoint.missing",
        `checkpoint manifest under ${prefix} vanished after writing`,
      );
    return ref;
  }

  async loadCheckpoint(store: ObjectStore, prefix: string): Promise<void> {
    const loaded = await loadCheckpoint(store, prefix);
    this.#tokenizer = checkpointTokenizer(loaded);
    this.#huggingFace = loaded.huggingFace;
    await this.#engine?.dispose();
    this.#engine = await createEngine({
      config: loaded.config,
      params: loaded.params,
      ...(loaded.optimizerState ? { optimizerState: loaded.optimizerState } : {}),
      ...(this.#tokenizer ? { tokenizer: this.#tokenizer } : {}),
      ...engineOptions(this.#settings),
    });
  }

  async loadReference(store: ObjectStore, prefix: string): Promise<void> {
    if (this.#reference?.prefix === prefix) return;
    const loaded = await loadCheckpoint(store, prefix);
    const engine = await createEngine({
      config: loaded.config,
      params: loaded.params,
      ...engineOptions(this.#settings),
    });
    await this.#reference?.engine.dispose();
    this.#reference = { engine, prefix };
  }

  async #withReferenceLogProbs(
    samples: readonly PpoSample[],
    microBatchSize: number | undefined,
  ): Promise<PpoSample[]> {
    if (!this.#reference) throw new Error("a KL penalty needs loadReference before the first step");
    const scored = await this.#reference.engine.forwardLogProbs(
      samples.map((s) => s.tokens),
      microBatchSize === undefined ? {} : { microBatchSize },
    );
    return samples.map((s, i) => ({ ...s, referenceLogProbs: scored[i]!.logProbs }));
  }

  async dispose(): Promise<void> {
    await this.#engine?.dispose();
    this.#engine = undefined;
    await this.#reference?.engine.dispose();
    this.#reference = undefined;
  }
}

export interface PolicySamplerOptions {
  /**
   * sample concurrent calls in one decode batch (the engine's continuous batching); default true.
   * false: one call at a time, each a batch of its own samples (the behaviour before batching,
   * kept for comparison in bench:rollout)
   */
  coalesce?: boolean;
}

/**
 * Rollout and evaluation sampling on onnxruntime (functions/model). Concurrent `sample` calls run
 * at once and the engine decodes their rows together; `load` swaps the weights only between
 * generations (SharedExclusiveLock), and every group reports the version that sampled it.
 */
export class OnnxPolicySampler implements PolicySampler {
  #engine: PolicyEngine | undefined;
  #tokenizer: Tokenizer | undefined;
  #prompts: PromptEncoder | undefined;
  #version = -1;
  readonly #settings: EngineSettings;
  readonly #coalesce: boolean;
  readonly #lock = new SharedExclusiveLock();
  /** loads (and dispose) one at a time */
  readonly #loads = new SerialQueue();
  /** without coalescing, sample calls one at a time */
  readonly #serial = new SerialQueue();

  constructor(settings: EngineSettings, options: PolicySamplerOptions = {}) {
    this.#settings = settings;
    this.#coalesce = options.coalesce ?? true;
  }

  get version(): number {
    return this.#version;
  }

  /** the engine's generation counters (undefined before the first load) */
  get generationStats(): GenerationStats | undefined {
    return this.#engine?.generationStats;
  }

  load(store: ObjectStore, folder: string, version: number): Promise<void> {
    return this.#loads.run(async () => {
      if (version <= this.#version && this.#engine) return;
      // reading and verifying the checkpoint overlaps sampling; only the swap is exclusive
      const loaded = await loadCheckpoint(store, folder);
      await this.#lock.exclusive(async () => {
        const sameShape =
          this.#engine !== undefined && JSON.stringify(this.#engine.config) === JSON.stringify(loaded.config);
        const tokenizer = checkpointTokenizer(loaded);
        if (tokenizer) {
          this.#tokenizer = tokenizer;
          const prompt = this.#settings.prompt ?? { format: "raw", enableThinking: true };
          this.#prompts = createPromptEncoder({
            tokenizer,
            ...(loaded.huggingFace ? { source: loaded.huggingFace } : {}),
            format: prompt.format,
            enableThinking: prompt.enableThinking,
            path: "spec.model.prompt.format",
          });
        }
        if (sameShape && this.#engine) {
          this.#engine.setParams(loaded.params);
        } else {
          await this.#engine?.dispose();
          this.#engine = await createEngine({
            config: loaded.config as ModelConfigInput,
            params: loaded.params,
            ...(this.#tokenizer ? { tokenizer: this.#tokenizer } : {}),
            ...engineOptions(this.#settings),
          });
        }
        this.#version = version;
      });
    });
  }

  encodePrompt(prompt: string): number[] {
    this.#requireTokenizer();
    return this.#prompts!.encode(prompt);
  }

  sample(
    promptTokens: readonly number[],
    samples: number,
    settings: SamplingSettings,
    seed: number,
  ): Promise<SampledGroup> {
    const work = () =>
      this.#lock.shared(async () => {
        const engine = this.#engine;
        if (!engine) throw new Error("the sampler has no policy loaded");
        const tokenizer = this.#requireTokenizer();
        const policyVersion = this.#version;
        const room = engine.config.maxSeqLen - promptTokens.length;
        if (room < 1) {
          throw new DeadLetterError(
            "prompt_too_long",
            `the prompt has ${promptTokens.length} tokens; the policy's context is ${engine.config.maxSeqLen}`,
          );
        }
        const stops = new Set(this.#prompts!.stopTokens);
        const generations = await engine.generate({
          prompts: Array.from({ length: samples }, () => promptTokens),
          maxNewTokens: Math.min(settings.maxNewTokens, room),
          temperature: settings.temperature,
          topP: settings.topP,
          topK: settings.topK,
          stopTokens: [...stops],
          // sample i of this call draws from its own stream of `seed`, whatever it is batched with
          rngs: Array.from({ length: samples }, (_, i) => streamRng(seed, i)),
        });
        const responses = generations.map((g) => sampledResponse(tokenizer, stops, g));
        const stats = engine.generationStats;
        const engineSeconds = stats.prefillSeconds + stats.decodeSeconds;
        return {
          policyVersion,
          responses,
          ...(engineSeconds > 0 ? { engineTokensPerSecond: stats.generatedTokens / engineSeconds } : {}),
        };
      });
    return this.#coalesce ? work() : this.#serial.run(work);
  }

  #requireTokenizer(): Tokenizer {
    if (!this.#tokenizer) throw new Error("the sampler's checkpoint has no tokenizer.json");
    return this.#tokenizer;
  }

  async dispose(): Promise<void> {
    await this.#loads.run(() =>
      this.#lock.exclusive(async () => {
        await this.#engine?.dispose();
        this.#engine = undefined;
      }),
    );
  }
}
