/**
 * The augment function: turns the training datasets and the current curriculum stage into
 * `question.augmented` events, and closes the hard-problem filter loop.
 *
 * - run started (stage 0) or curriculum stage changed: build the stage's augmented set once
 *   (read, decontaminate, cut hints), write it as shards with a manifest, then emit each question:
 *   as a `probe` (hard-filter samples) while its filter decision is pending, as `train` once kept,
 *   not at all once dropped; with the filter off, every question is `train`.
 * - a probe's rollout group: decide once (persisted), and emit the `train` question if kept.
 *
 * Idempotent: the stage set is rebuilt byte for byte or read back from its manifest, decisions are
 * written once, and every event id is a hash of run, question, stage and purpose.
 */
import {
  CurriculumStageChanged,
  type Purpose,
  QuestionAugmented,
  type QuestionAugmentedData,
  RolloutGroup,
  RunStatus,
} from "../contracts/events.ts";
import { Augmenter, augmentRecords, type Tokenizer } from "../questa/augmentation.ts";
import { ContaminationIndex, decontaminate } from "../questa/decontamination.ts";
import { HardFilterJournal } from "../questa/hard-filter.ts";
import type { MathRecord } from "../questa/record.ts";
import { defineFunction, emit, type FunctionDeps, isEvent } from "../runtime/define-function.ts";
import { DeadLetterError } from "../runtime/errors.ts";
import type { EmittedEvent } from "../runtime/event-definition.ts";
import type { ObjectStore } from "../runtime/object-store.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import { loadDatasetSource, type OpenDataset, requireRecords, storeDatasetOpener } from "./dataset-source.ts";
import {
  type EpochProgress,
  KeyedMutex,
  nextEpochDue,
  readProgress,
  shuffleForEpoch,
  writeProgress,
} from "./epochs.ts";
import type { AugmentConfig, AugmentedLine, AugmentManifest, Rejection } from "./schema.ts";
import { readStageManifest, readStageQuestions, stagePrefix, writeStageShards } from "./shard-writer.ts";

export interface AugmentServices {
  /** validated with `AugmentConfigSchema` */
  config: AugmentConfig;
  /** bytes of a dataset by URI; default: the URI is a key of the run's object store */
  openDataset?: OpenDataset;
  /** the policy's tokenizer, needed for the tokens unit */
  tokenizer?: Tokenizer;
}

export type AugmentDeps = FunctionDeps<AugmentServices>;

export const augmentFunction = defineFunction({
  name: "augment",
  consumes: [RunStatus, CurriculumStageChanged, RolloutGroup],
  emits: [QuestionAugmented],
  handle: async (event, deps: AugmentDeps): Promise<EmittedEvent<unknown>[]> => {
    if (isEvent(event, RunStatus)) {
      if (event.data.kind === "finished" || event.data.kind === "failed") {
        await updateProgress(deps, (p) => (p ? { ...p, finished: true } : p));
        return [];
      }
      return event.data.kind === "started" ? startStage(event.data.stage, deps) : [];
    }
    if (isEvent(event, CurriculumStageChanged)) return startStage(event.data.toStage, deps);
    if (isEvent(event, RolloutGroup) && event.data.purpose === "probe") {
      const { questionId, stage, rewards, passCount, policyVersion } = event.data;
      return probeAnswered(
        { questionId, stage, samples: rewards.length, passes: passCount, policyVersion },
        deps,
      );
    }
    if (isEvent(event, RolloutGroup) && event.data.purpose === "train") {
      return trainAnswered(event.data.stage, event.data.epoch, deps);
    }
    return [];
  },
});

/** Builds (or reads back) a stage's augmented set and emits its questions. */
export async function startStage(
  stage: number,
  deps: AugmentDeps,
): Promise<EmittedEvent<QuestionAugmentedData>[]> {
  const { config } = deps.services;
  const { manifest, questions } = await stageSet(stage, deps);
  deps.logger.info(
    { stage, ratio: manifest.ratio, questions: questions.length, rejections: manifest.rejections.count },
    "augmented stage ready",
  );
  const hardFilter = config.augmentation.hardFilter;
  const decisionList = hardFilter.enabled ? await journalOf(deps.store, config, stage).all() : [];
  const progress = await updateProgress(deps, (p) =>
    p && p.stage >= stage
      ? p
      : {
          stage,
          epoch: 0,
          questions: questions.length,
          decided: decisionList.length,
          kept: decisionList.filter((d) => d.keep).length,
          answered: 0,
          finished: p?.finished ?? false,
        },
  );
  if (progress && progress.stage > stage) return []; // a later stage has begun: this one is over
  if (progress && progress.epoch > 0) return []; // later passes are emitted by trainAnswered
  if (!hardFilter.enabled)
    return questions.map((line) => questionEvent(deps.run, line, "train", config.groupSize));
  const decisions = new Map(decisionList.map((decision) => [decision.questionId, decision.keep]));
  const events: EmittedEvent<QuestionAugmentedData>[] = [];
  for (const line of questions) {
    const keep = decisions.get(line.questionId);
    if (keep === undefined) events.push(questionEvent(deps.run, line, "probe", hardFilter.samples));
    else if (keep) events.push(questionEvent(deps.run, line, "train", config.groupSize));
  }
  return events;
}

/** Records the hard-filter decision for a probed question; a kept question is emitted for training. */
export async function probeAnswered(
  feedback: { questionId: string; stage: number; samples: number; passes: number; policyVersion: number },
  deps: AugmentDeps,
): Promise<EmittedEvent<QuestionAugmentedData>[]> {
  const { config } = deps.services;
  const { decision, created } = await journalOf(deps.store, config, feedback.stage).decide(
    {
      questionId: feedback.questionId,
      samples: feedback.samples,
      passes: feedback.passes,
      policyVersion: feedback.policyVersion,
    },
    config.augmentation.hardFilter,
  );
  deps.logger.debug({ ...feedback, verdict: decision.verdict, created }, "hard-filter decision");
  if (created) {
    await updateProgress(deps, (p) =>
      p && p.stage === feedback.stage
        ? { ...p, decided: p.decided + 1, kept: p.kept + (decision.keep ? 1 : 0) }
        : p,
    );
  }
  if (!decision.keep) return [];
  const line = (await stageSet(feedback.stage, deps)).byId.get(feedback.questionId);
  if (line === undefined) {
    throw new DeadLetterError(
      "unknown_question",
      `probe answered for ${feedback.questionId}, which is not in stage ${feedback.stage}'s augmented set`,
    );
  }
  return [questionEvent(deps.run, line, "train", config.groupSize)];
}

export interface BuiltStage {
  questions: AugmentedLine[];
  rejections: Rejection[];
  manifest: Omit<AugmentManifest, "version" | "stage" | "shards" | "rejections">;
}

/**
 * Reads every training dataset, decontaminates it against the evaluation sets and cuts the stage's
 * hints. Pure apart from reading the datasets.
 */
export async function buildStage(
  config: AugmentConfig,
  stage: number,
  open: OpenDataset,
  tokenizer?: Tokenizer,
): Promise<BuiltStage> {
  const settings = config.augmentation;
  const stageSpec = settings.curriculum[stage];
  if (stageSpec === undefined) {
    throw new DeadLetterError(
      "unknown_stage",
      `stage ${stage} is not in the curriculum (${settings.curriculum.length} stages)`,
    );
  }
  const augmenter = new Augmenter({
    ratio: stageSpec.ratio,
    template: settings.template,
    unhintedTemplate: settings.unhintedTemplate,
    unit: settings.unit,
    minPrefixChars: settings.minPrefixChars,
    requireAnswerInSolution: settings.requireAnswerInSolution,
    ...(tokenizer === undefined ? {} : { tokenizer }),
  });
  const rejections: Rejection[] = [];
  const records: MathRecord[] = [];
  const datasets: AugmentManifest["report"]["datasets"] = [];
  for (const [index, source] of config.train.entries()) {
    const read = await loadDatasetSource(source, open);
    requireRecords(read, source, `datasets.train[${index}]`);
    datasets.push({
      name: source.name,
      totalRows: read.totalRows,
      records: read.records.length,
      badRows: read.badRows.length,
    });
    for (const bad of read.badRows) {
      rejections.push({
        kind: "bad-row",
        dataset: source.name,
        row: bad.row,
        unit: bad.unit,
        reason: bad.reason,
      });
    }
    records.push(...read.records);
  }

  const decon = settings.decontamination;
  const evaluation: MathRecord[] = [];
  if (decon.enabled) {
    for (const source of config.evaluation)
      evaluation.push(...(await loadDatasetSource(source, open)).records);
  }
  const index = new ContaminationIndex(evaluation, { ngram: decon.ngram, minOverlap: decon.minOverlap });
  const clean = decontaminate(records, index, { enabled: decon.enabled && evaluation.length > 0 });
  const sourceOf = new Map(records.map((record) => [record.id, record.source]));
  for (const hit of clean.dropped) {
    rejections.push({
      kind: "contaminated",
      dataset: sourceOf.get(hit.id) ?? "",
      questionId: hit.id,
      reason: `covers ${(hit.overlap * 100).toFixed(0)}% of the ${decon.ngram}-grams of ${hit.evaluationId}, e.g. "${hit.ngram}"`,
    });
  }

  const batch = augmentRecords(clean.kept, augmenter);
  for (const dropped of batch.dropped) {
    rejections.push({
      kind: dropped.reason,
      dataset: dropped.source,
      questionId: dropped.id,
      reason:
        dropped.reason === "missing-solution"
          ? "no reference solution to cut a hint from"
          : "the final answer does not appear in the solution",
    });
  }
  const questions: AugmentedLine[] = batch.questions.map((q) => ({
    questionId: q.id,
    source: q.source,
    stage,
    ratio: q.ratio,
    unit: q.unit,
    prompt: q.prompt,
    hinted: q.hinted,
    hintLength: q.hintLength,
    hintChars: q.hintChars,
    answer: q.answer,
  }));
  return {
    questions,
    rejections,
    manifest: {
      ratio: stageSpec.ratio,
      params: {
        template: settings.template,
        unhintedTemplate: settings.unhintedTemplate,
        unit: settings.unit,
        minPrefixChars: settings.minPrefixChars,
        requireAnswerInSolution: settings.requireAnswerInSolution,
      },
      report: {
        datasets,
        decontamination: {
          enabled: decon.enabled,
          ngram: decon.ngram,
          minOverlap: decon.minOverlap,
          evaluationProblems: evaluation.length,
          dropped: clean.counts.dropped,
          droppedBySource: clean.counts.droppedBySource,
        },
        augmentation: { ...batch.counts, dropped: { ...batch.counts.dropped } },
      },
    },
  };
}

interface StageSet {
  manifest: AugmentManifest;
  questions: AugmentedLine[];
  byId: Map<string, AugmentedLine>;
}

// the stage sets of recent manifests, so probe answers do not re-read the shards each time
const stageCache = new WeakMap<ObjectStore, Map<string, StageSet>>();
const STAGE_CACHE_ENTRIES = 4;

function stageSetOf(manifest: AugmentManifest, questions: AugmentedLine[]): StageSet {
  return { manifest, questions, byId: new Map(questions.map((line) => [line.questionId, line])) };
}

async function stageSet(stage: number, deps: AugmentDeps): Promise<StageSet> {
  const { config, openDataset, tokenizer } = deps.services;
  const existing = await readStageManifest(deps.store, config.runPrefix, stage);
  if (existing !== undefined) {
    const cached = cacheOf(deps.store).get(existing.sha256);
    if (cached) return cached;
    const set = stageSetOf(existing.manifest, await readStageQuestions(deps.store, existing.manifest));
    remember(deps.store, existing.sha256, set);
    return set;
  }
  const built = await buildStage(config, stage, openDataset ?? storeDatasetOpener(deps.store), tokenizer);
  const written = await writeStageShards(deps.store, {
    runPrefix: config.runPrefix,
    stage,
    questions: built.questions,
    rejections: built.rejections,
    shardSize: config.shardSize,
    manifest: built.manifest,
  });
  const set = stageSetOf(written.manifest, built.questions);
  remember(deps.store, written.sha256, set);
  return set;
}

function cacheOf(store: ObjectStore): Map<string, StageSet> {
  let cache = stageCache.get(store);
  if (cache === undefined) {
    cache = new Map();
    stageCache.set(store, cache);
  }
  return cache;
}

function remember(store: ObjectStore, sha256: string, set: StageSet): void {
  const cache = cacheOf(store);
  cache.set(sha256, set);
  while (cache.size > STAGE_CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
}

function journalOf(store: ObjectStore, config: AugmentConfig, stage: number): HardFilterJournal {
  return new HardFilterJournal(store, stagePrefix(config.runPrefix, stage));
}

/** The event of one question; its id depends only on run, question, stage, purpose and epoch. */
export function questionEvent(
  run: string,
  line: AugmentedLine,
  purpose: Purpose,
  samples: number,
  epoch = 0,
): EmittedEvent<QuestionAugmentedData> {
  const data: QuestionAugmentedData = {
    run,
    questionId: line.questionId,
    source: line.source,
    stage: line.stage,
    ratio: line.ratio,
    purpose,
    prompt: line.prompt,
    hinted: line.hinted,
    hintChars: line.hintChars,
    answer: line.answer,
    samples,
    epoch,
  };
  const id = sha256Hex(
    `${QuestionAugmented.type}\n${run}\n${line.questionId}\n${line.stage}\n${purpose}\n${epoch}`,
  ).slice(0, 32);
  return emit(QuestionAugmented, data, `${line.questionId}:${line.stage}`, id);
}

const progressLocks = new KeyedMutex();

/**
 * Answered training groups written at most this many at a time: every group of the run passes
 * through here, one at a time, and a durable write each was most of augment's work. A crash loses
 * fewer than this many counts, which only delays the next pass by as many groups.
 */
export const ANSWERED_WRITE_EVERY = 16;

/** the epoch progress as this process last read or wrote it, per store and run */
const progressCache = new WeakMap<object, Map<string, { progress: EpochProgress; unwritten: number }>>();

/**
 * read-modify-write of the epoch progress, serialised per run within the process (the one writer);
 * `deferrable` changes (answered counts) are written with every ANSWERED_WRITE_EVERY-th one or the
 * next other change
 */
async function updateProgress(
  deps: AugmentDeps,
  change: (progress: EpochProgress | undefined) => EpochProgress | undefined,
  deferrable: (next: EpochProgress, current: EpochProgress | undefined) => boolean = () => false,
): Promise<EpochProgress | undefined> {
  const { runPrefix } = deps.services.config;
  return progressLocks.run(runPrefix, async () => {
    let cache = progressCache.get(deps.store);
    if (!cache) {
      cache = new Map();
      progressCache.set(deps.store, cache);
    }
    const cached = cache.get(runPrefix);
    const current = cached ? cached.progress : await readProgress(deps.store, runPrefix);
    const next = change(current);
    if (next === undefined || next === current) return next;
    const unwritten = (cached?.unwritten ?? 0) + 1;
    if (deferrable(next, current) && unwritten < ANSWERED_WRITE_EVERY) {
      cache.set(runPrefix, { progress: next, unwritten });
      return next;
    }
    // a failed write leaves no cached value: the next call reads what the store holds
    cache.delete(runPrefix);
    await writeProgress(deps.store, runPrefix, next);
    cache.set(runPrefix, { progress: next, unwritten: 0 });
    return next;
  });
}

/**
 * A training group came back: count it against its pass, and once the pass is mostly answered
 * emit the next one (the kept questions of the current stage, reshuffled).
 */
export async function trainAnswered(
  stage: number,
  epoch: number,
  deps: AugmentDeps,
): Promise<EmittedEvent<QuestionAugmentedData>[]> {
  const { config } = deps.services;
  const hardFilterEnabled = config.augmentation.hardFilter.enabled;
  let emitEpoch: number | undefined;
  await updateProgress(
    deps,
    (p) => {
      if (!p || p.stage !== stage || p.epoch !== epoch || p.finished) return p;
      const next = { ...p, answered: p.answered + 1 };
      if (!nextEpochDue(next, hardFilterEnabled)) return next;
      emitEpoch = p.epoch + 1;
      return { ...next, epoch: p.epoch + 1, answered: 0 };
    },
    // a count alone may wait; a new pass is written before it is emitted
    (next, current) => next.epoch === current?.epoch,
  );
  if (emitEpoch === undefined) return [];
  const { questions } = await stageSet(stage, deps);
  let lines = questions;
  if (hardFilterEnabled) {
    const kept = new Set(
      (await journalOf(deps.store, config, stage).all()).filter((d) => d.keep).map((d) => d.questionId),
    );
    lines = questions.filter((line) => kept.has(line.questionId));
  }
  deps.logger.info({ stage, epoch: emitEpoch, questions: lines.length }, "next pass over the training set");
  const epochNumber = emitEpoch;
  return shuffleForEpoch(lines, deps.run, stage, epochNumber).map((line) =>
    questionEvent(deps.run, line, "train", config.groupSize, epochNumber),
  );
}
