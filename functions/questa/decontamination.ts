/**
 * Decontamination: drop training problems that overlap an evaluation problem in word 13-grams (the
 * GPT-3 contamination unit), after normalising both texts the same way.
 *
 * "Any shared 13-gram" flags boilerplate: on the shared AIME training sample it flagged 193 of 975
 * problems through phrases like "where m and n are relatively prime positive integers. Find m+n". So
 * single letters and LaTeX command names are not words, and a training problem is contaminated when
 * it covers at least `minOverlap` (default half) of some evaluation problem's distinct n-grams: a
 * copy covers all of them, a copy embedded in a longer text too, boilerplate covers a small fraction
 * (at most 0.30 on that sample, while the MATH-500 copies of old AIME problems scored 0.53-1.0).
 */
import { InputError, type InputIssue } from "../runtime/errors.ts";
import type { MathRecord } from "./record.ts";

export interface DecontaminationParams {
  enabled: boolean;
  /** words per n-gram; default 13 */
  ngram: number;
  /** fraction of an evaluation problem's n-grams a training problem must contain to be dropped; default 0.5 */
  minOverlap?: number;
}

export const defaultDecontaminationParams = { enabled: true, ngram: 13, minOverlap: 0.5 } as const;

/**
 * Lowercase NFKC words of letters and digits. LaTeX command names (`\frac`) and single letters
 * (variable names) are dropped; punctuation and markup separate words, so `$x^2+1$` and `x^{2} + 1`
 * give the same words.
 */
export function normalisedWords(text: string): string[] {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/\\[a-z]+/g, " ")
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length > 1 || (word.length === 1 && !/\p{L}/u.test(word)));
}

/** The distinct n-grams of the text, joined by single spaces; a text shorter than n gives itself as its only n-gram. */
export function wordNgrams(text: string, n: number): string[] {
  const words = normalisedWords(text);
  if (words.length === 0) return [];
  if (words.length < n) return [words.join(" ")];
  const grams = new Set<string>();
  for (let start = 0; start + n <= words.length; start++) grams.add(words.slice(start, start + n).join(" "));
  return [...grams];
}

export interface ContaminationHit {
  id: string;
  /** the evaluation problem it overlaps most */
  evaluationId: string;
  /** fraction of that problem's n-grams found in the training problem */
  overlap: number;
  /** one shared n-gram, for the report */
  ngram: string;
}

export interface DecontaminationResult {
  kept: MathRecord[];
  dropped: ContaminationHit[];
  counts: { input: number; kept: number; dropped: number; droppedBySource: Record<string, number> };
}

/** An index of the evaluation benchmarks' n-grams; build once, check many training problems. */
export class ContaminationIndex {
  readonly ngram: number;
  readonly minOverlap: number;
  readonly #owners = new Map<string, string[]>();
  readonly #gramCount = new Map<string, number>();

  constructor(
    evaluation: Iterable<Pick<MathRecord, "id" | "problem">>,
    params: Partial<Omit<DecontaminationParams, "enabled">> = {},
  ) {
    const ngram = params.ngram ?? defaultDecontaminationParams.ngram;
    const minOverlap = params.minOverlap ?? defaultDecontaminationParams.minOverlap;
    const issues: InputIssue[] = [];
    if (!Number.isInteger(ngram) || ngram < 1) {
      issues.push({
        path: "augmentation.decontamination.ngram",
        message: `must be a whole number >= 1, got ${ngram}`,
      });
    }
    if (!(minOverlap > 0 && minOverlap <= 1)) {
      issues.push({
        path: "augmentation.decontamination.minOverlap",
        message: `must be in (0, 1], got ${minOverlap}`,
      });
    }
    if (issues.length > 0) throw new InputError("invalid_decontamination", issues);
    this.ngram = ngram;
    this.minOverlap = minOverlap;
    for (const record of evaluation) {
      const grams = wordNgrams(record.problem, ngram);
      if (grams.length === 0) continue;
      this.#gramCount.set(record.id, (this.#gramCount.get(record.id) ?? 0) + grams.length);
      for (const gram of grams) {
        const owners = this.#owners.get(gram);
        if (owners === undefined) this.#owners.set(gram, [record.id]);
        else if (owners[owners.length - 1] !== record.id) owners.push(record.id);
      }
    }
  }

  /** distinct n-grams indexed */
  get size(): number {
    return this.#owners.size;
  }

  /** The evaluation problem that `problem` overlaps most, if it reaches `minOverlap`. */
  find(problem: string): Omit<ContaminationHit, "id"> | undefined {
    const shared = new Map<string, { count: number; ngram: string }>();
    for (const gram of wordNgrams(problem, this.ngram)) {
      for (const owner of this.#owners.get(gram) ?? []) {
        const seen = shared.get(owner);
        if (seen) seen.count++;
        else shared.set(owner, { count: 1, ngram: gram });
      }
    }
    let best: Omit<ContaminationHit, "id"> | undefined;
    for (const [evaluationId, { count, ngram }] of shared) {
      const overlap = count / (this.#gramCount.get(evaluationId) ?? 1);
      if (overlap >= this.minOverlap && (best === undefined || overlap > best.overlap)) {
        best = { evaluationId, overlap, ngram };
      }
    }
    return best;
  }
}

export function decontaminate(
  records: readonly MathRecord[],
  index: ContaminationIndex,
  params: Pick<DecontaminationParams, "enabled"> = defaultDecontaminationParams,
): DecontaminationResult {
  if (!params.enabled) {
    return {
      kept: [...records],
      dropped: [],
      counts: { input: records.length, kept: records.length, dropped: 0, droppedBySource: {} },
    };
  }
  const kept: MathRecord[] = [];
  const dropped: ContaminationHit[] = [];
  const droppedBySource: Record<string, number> = {};
  for (const record of records) {
    const hit = index.find(record.problem);
    if (hit === undefined) {
      kept.push(record);
      continue;
    }
    dropped.push({ id: record.id, ...hit });
    droppedBySource[record.source] = (droppedBySource[record.source] ?? 0) + 1;
  }
  return {
    kept,
    dropped,
    counts: { input: records.length, kept: kept.length, dropped: dropped.length, droppedBySource },
  };
}
