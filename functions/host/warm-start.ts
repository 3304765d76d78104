import type { ObjectRef } from "../contracts/events.ts";
import type { QuestATrainingSpec } from "../contracts/questatraining.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { createEngine, type PolicyEngine } from "../model/engine.ts";
import { createRng } from "../model/rng.ts";
import { charTokenizer, type Tokenizer } from "../model/tokenizer.ts";
import { Augmenter } from "../questa/augmentation.ts";
import type { MathRecord } from "../questa/record.ts";
import { generateSyntheticProblems, rareStepResultSpans } from "../questa/synthetic-task.ts";
import { DeadLetterError } from "../runtime/errors.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import type { EngineSettings } from "./onnx-adapters.ts";

/** easy problems in the warm-start pool; batches are drawn from it */
const POOL_SIZE = 20_000;
/** share of warm-start examples shown with a hint, so the policy knows the hinted prompt format */
const HINTED_SHARE = 0.5;
/**
 * hint ratios of those examples: fixed, not the run's curriculum, so that a QuestA run and its
 * `--baseline` arm (curriculum ratios 0) start from the very same policy
 */
export const WARM_START_HINT_RATIOS = [0.5, 0.25] as const;

/** hard problems the skill probe scores (a generator seed of their own; never trained on) */
const SKILL_PROBE_SIZE = 128;

/** a hard problem's un-hinted prompt and reference solution, and the token positions of its products */
export interface SkillProbe {
  tokens: number[];
  /** token positions [start, end) of each rare step's result */
  spans: Array<{ start: number; end: number }>;
}

/** The probe set of the hard skill: un-hinted hard problems with their reference solutions. */
export function skillProbes(seed: number, augmenter: Augmenter, tokenizer: Tokenizer): SkillProbe[] {
  const problems = generateSyntheticProblems({
    seed: seed * 31 + 6,
    count: SKILL_PROBE_SIZE,
    split: "train",
    difficulty: "hard",
  });
  return problems.map((problem) => {
    const { tokens, lossMask } = warmStartExample(problem, augmenter, tokenizer);
    const solution = problem.solution;
    // un-hinted, the completion (the loss-masked tokens) is the whole solution
    const offset = lossMask.indexOf(1);
    const at = (chars: number) => offset + tokenizer.encode(solution.slice(0, chars)).length;
    return {
      tokens,
      spans: rareStepResultSpans(solution).map(({ start, end }) => ({ start: at(start), end: at(end) })),
    };
  });
}

/**
 * How often the policy writes a product right: the probability of each product line's result under
 * teacher forcing (the chance that sampling at temperature 1 writes it, given a correct line start),
 * averaged over the probe's lines.
 */
export async function skillAccuracy(engine: PolicyEngine, probes: readonly SkillProbe[]): Promise<number> {
  const scored = await engine.forwardLogProbs(probes.map((p) => p.tokens));
  let sum = 0;
  let lines = 0;
  probes.forEach((probe, i) => {
    const logProbs = scored[i]!.logProbs;
    for (const { start, end } of probe.spans) {
      let logP = 0;
      for (let t = start; t < end; t++) logP += logProbs[t]!;
      sum += Math.exp(logP);
      lines++;
    }
  });
  return lines === 0 ? 0 : sum / lines;
}

/** steps between two probes of the hard skill when the warm start stops at a skill accuracy */
const SKILL_CHECK_EVERY = 10;

export interface WarmStartProgress {
  step: number;
  steps: number;
  loss: number;
  tokenAccuracy: number;
  /** the probe's accuracy on the hard skill, where the warm start stops at one */
  skillAccuracy?: number;
  /** the last report: the warm start trained its steps or reached its skill accuracy */
  finished?: boolean;
}

/**
 * One supervised example: the prompt the policy will see during RL (un-hinted, or hinted with one
 * of the curriculum's ratios) and, as the target, the rest of the reference solution after the hint.
 */
export function warmStartExample(
  record: MathRecord,
  augmenter: Augmenter,
  tokenizer: Tokenizer,
): { tokens: number[]; lossMask: number[] } {
  const outcome = augmenter.augment(record);
  if (outcome.kind !== "augmented" || record.solution === undefined) {
    throw new DeadLetterError("warm_start_example", `synthetic problem ${record.id} has no usable solution`);
  }
  const q = outcome.question;
  const target = [...record.solution].slice(q.hintChars).join("");
  const prompt = tokenizer.encode(q.prompt);
  const completion = tokenizer.encode(target);
  const bos = tokenizer.bosId === undefined ? [] : [tokenizer.bosId];
  const eos = tokenizer.eosId === undefined ? [] : [tokenizer.eosId];
  const tokens = [...bos, ...prompt, ...completion, ...eos];
  const promptLength = bos.length + prompt.length;
  return { tokens, lossMask: tokens.map((_, i) => (i >= promptLength ? 1 : 0)) };
}

/**
 * Supervised warm start of the built-in policy on easy synthetic problems: afterwards it solves
 * easy problems and rarely hard ones (QuestA's regime), and has seen the hint format. With
 * `stopAtSkillAccuracy` it stops as soon as a probe finds the hard skill (products) that far
 * learned, so that RL starts with it partly known whatever the seed. Writes the initial checkpoint
 * (weights and tokenizer, no optimiser state; its metadata names the steps trained) under `folder`.
 */
export async function warmStart(options: {
  spec: QuestATrainingSpec;
  store: ObjectStore;
  folder: string;
  engine: EngineSettings;
  signal?: AbortSignal;
  onProgress?: (progress: WarmStartProgress) => void;
}): Promise<ObjectRef> {
  const { spec, store, folder } = options;
  const arch = spec.model.architecture;
  const warm = spec.model.warmStart;
  const tokenizer = charTokenizer();
  const rng = createRng(spec.seed * 7919 + 17);
  const engine = await createEngine({
    config: {
      vocabSize: tokenizer.vocabSize,
      layers: arch.layers,
      width: arch.width,
      heads: arch.heads,
      kvHeads: arch.kvHeads,
      mlpWidth: arch.mlpWidth,
      activation: arch.activation,
      norm: arch.norm,
      positions: arch.positions,
      maxSeqLen: arch.contextLength,
      tiedEmbeddings: arch.tiedEmbeddings,
    },
    rng,
    tokenizer,
    executionProvider: options.engine.executionProvider,
    ...(options.engine.threads > 0 ? { threads: options.engine.threads } : {}),
  });
  try {
    const pool = generateSyntheticProblems({
      seed: spec.seed * 31 + 5,
      count: POOL_SIZE,
      split: "train",
      difficulty: "easy",
    });
    const common = {
      template: spec.augmentation.template,
      unit: "chars" as const,
      minPrefixChars: spec.augmentation.minPrefixChars,
      requireAnswerInSolution: false,
    };
    const unhinted = new Augmenter({ ...common, ratio: 0 });
    const hinted = WARM_START_HINT_RATIOS.map((ratio) => new Augmenter({ ...common, ratio }));
    const target = warm.stopAtSkillAccuracy;
    const probes = target === undefined ? [] : skillProbes(spec.seed, unhinted, tokenizer);
    let trained = 0;
    let skill: number | undefined;
    for (let step = 1; step <= warm.steps; step++) {
      options.signal?.throwIfAborted();
      const batch = Array.from({ length: warm.batchSize }, () => {
        const record = pool[Math.floor(rng.next() * pool.length)] as MathRecord;
        const useHint = hinted.length > 0 && rng.next() < HINTED_SHARE;
        const augmenter = useHint ? (hinted[Math.floor(rng.next() * hinted.length)] as Augmenter) : unhinted;
        return warmStartExample(record, augmenter, tokenizer);
      });
      const metrics = await engine.supervisedStep(batch, {
        lr: warm.learningRate,
        weightDecay: 0,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        maxGradNorm: 1,
        microBatchSize: warm.batchSize,
      });
      trained = step;
      if (target !== undefined && (step % SKILL_CHECK_EVERY === 0 || step === warm.steps)) {
        skill = await skillAccuracy(engine, probes);
      }
      const reached = target !== undefined && skill !== undefined && skill >= target;
      if (step % 100 === 0 || step === warm.steps || reached) {
        options.onProgress?.({
          step,
          steps: warm.steps,
          loss: metrics.loss,
          tokenAccuracy: metrics.tokenAccuracy,
          ...(skill === undefined ? {} : { skillAccuracy: skill }),
          finished: reached || step === warm.steps,
        });
      }
      if (reached) break;
    }
    const { manifestKey } = await saveCheckpoint(store, folder, {
      config: engine.config,
      params: engine.getParams(),
      tokenizerJson: tokenizer.toJSON(),
      step: 0,
      metadata: {
        origin: "warm-start",
        steps: String(trained),
        ...(skill === undefined ? {} : { skillAccuracy: skill.toFixed(4) }),
      },
    });
    const info = await store.head(manifestKey);
    if (!info) throw new Error(`initial checkpoint manifest ${manifestKey} missing after write`);
    return { uri: store.uri(manifestKey), key: manifestKey, sha256: info.sha256, size: info.size };
  } finally {
    await engine.dispose();
  }
}
