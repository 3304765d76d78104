/**
 * The tiny model both learners train in the scale tests and `npm run bench:learner`
 * (test/fixtures/hf/tiny-learner, made by scripts/reference/make_learner_fixture.py), as a run's
 * step-0 checkpoint, and a PPO batch on it whose behaviour log-probs differ from the model's own
 * (so the importance weight is not 1, and a few tokens pass its cap).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { PpoSample, PpoSettings } from "../../functions/learn/learner-engine.ts";
import { saveCheckpoint } from "../../functions/model/checkpoint.ts";
import type { PolicyEngine } from "../../functions/model/engine.ts";
import { readHuggingFaceFolder } from "../../functions/model/hf-folder.ts";
import { createRng } from "../../functions/model/rng.ts";
import type { ObjectStore } from "../../functions/runtime/object-store.ts";

export const TINY_LEARNER_FOLDER = join(import.meta.dirname, "..", "fixtures", "hf", "tiny-learner");

/** the tiny model's Hugging Face folder, read as questa reads one */
export function readTinyLearner(): ReturnType<typeof readHuggingFaceFolder> {
  return readHuggingFaceFolder(
    async (name) => {
      try {
        return new Uint8Array(await readFile(join(TINY_LEARNER_FOLDER, name)));
      } catch {
        return undefined;
      }
    },
    { where: TINY_LEARNER_FOLDER },
  );
}

/**
 * writes the tiny model as a run's step-0 checkpoint (questa's weights and its hf/ folder) at
 * `prefix`; with `noise`, every weight moved by up to ±noise (seeded), a different policy of the
 * same shape
 */
export async function tinyLearnerCheckpoint(
  store: ObjectStore,
  prefix: string,
  options: { noise?: number; seed?: number } = {},
): Promise<void> {
  const model = await readTinyLearner();
  const random = createRng(options.seed ?? 0);
  const noise = options.noise ?? 0;
  await saveCheckpoint(
    store,
    prefix,
    {
      config: model.config,
      params: noise === 0 ? model.params : model.params.map((w) => w + noise * (2 * random.next() - 1)),
      tokenizerJson: model.tokenizerJson,
      huggingFace: model.source,
      step: 0,
    },
    { exportHuggingFace: true },
  );
}

/**
 * `count` samples of prompt + response tokens (lengths `minLength` and up), advantages of both
 * signs, and behaviour log-probs = the model's own plus noise; every 13th response token's behaviour
 * log-prob is 2 below the model's, so its importance weight exp(2) passes the cap of 5 and drops out.
 */
export async function ppoBatch(
  engine: PolicyEngine,
  options: { count: number; minLength: number; seed: number },
): Promise<PpoSample[]> {
  const random = createRng(options.seed);
  const rng = () => random.next();
  const sequences = Array.from({ length: options.count }, (_, i) =>
    Array.from({ length: options.minLength + ((i * 7) % 11) }, () => 3 + Math.floor(rng() * 300)),
  );
  const scored = await engine.forwardLogProbs(sequences);
  return sequences.map((tokens, i) => {
    const prompt = 4 + (i % 3);
    const advantage = (i % 2 === 0 ? 1 : -1) * (0.25 + rng());
    const lossMask = tokens.map((_, t) => (t >= prompt ? 1 : 0));
    const own = scored[i]!.logProbs;
    return {
      tokens,
      lossMask,
      advantages: lossMask.map((m) => m * advantage),
      behaviourLogProbs: tokens.map((_, t) =>
        t < prompt ? 0 : (own[t] ?? 0) + (t % 13 === 0 ? -2 : (rng() - 0.5) * 0.4),
      ),
    };
  });
}

/** the learner's settings of a QuestA run, at a learning rate whose one step is clearly visible */
export const PARITY_SETTINGS: PpoSettings = {
  learningRate: 1e-3,
  weightDecay: 0.05,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-5,
  gradClip: 1,
  clipLow: 0.2,
  clipHigh: 0.28,
  importanceCap: 5,
  klCoef: 0,
  entropyCoef: 0.01,
};
