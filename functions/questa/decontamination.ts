/**
 * Decontamination: drop training problems that share a word n-gram (13 by default, as in GPT-3's
 * contamination analysis) with any evaluation problem, after normalising both texts the same way.
 */
import { InputError } from "../runtime/errors.ts";
import type { MathRecord } from "./record.ts";

export interface DecontaminationParams {
  enabled: boolean;
  /** words per n-gram; default 13 */
  ngram: number;
}

export const defaultDecontaminationParams: DecontaminationParams = { enabled: true, ngram: 13 };

/**
 * Lowercase NFKC words of letters and digits; punctuation, LaTeX markup characters and whitespace
 * separate words, so `$x^2+1$` and `x^{2} + 1` give the same words.
 */
export function normalisedWords(text: string): string[] {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length > 0);
}

/** Every n-gram of the text, joined by single spaces; a text shorter than n gives itself as its only n-gram. */
export function wordNgrams(text: string, n: number): string[] {
  const words = normalisedWords(text);
  if (words.length === 0) return [];
  if (words.length < n) return [words.join(" ")];
  const grams: string[] = [];
  for (let start = 0; start + n <= words.length; start++) grams.push(words.slice(start, start + n).join(" "));
  return grams;
}

export interface ContaminationHit {
  id: string;
  /** the first shared n-gram, for the report */
  ngram: string;
  /** the benchmark record it overlaps */
  evaluationId: string;
}

export interface DecontaminationResult {
  kept: MathRecord[];
  dropped: ContaminationHit[];
  counts: { input: number; kept: number; dropped: number; droppedBySource: Record<string, number> };
}

/** An index of the evaluation benchmarks' n-grams; build once, check many training problems. */
export class ContaminationIndex {
  readonly ngram: number;
  readonly #owner = new Map<string, string>();

  constructor(evaluation: Iterable<Pick<MathRecord, "id" | "problem">>, ngram = defaultDecontaminationParams.ngram) {
    if (!Number.isInteger(ngram) || ngram < 1) {
      throw new InputError("invalid_decontamination", [
        { path: "augmentation.decontamination.ngram", message: `must be a whole number >= 1, got ${ngram}` },
      ]);
    }
    this.ngram = ngram;
    for (const record of evaluation) {
      for (const gram of wordNgrams(record.problem, ngram)) {
        if (!this.#owner.has(gram)) this.#owner.set(gram, record.id);
      }
    }
  }

  get size(): number {
    return this.#owner.size;
  }

  /**
   * The first n-gram of `problem` that an evaluation problem contains. A problem shorter than n
   * words matches only an evaluation problem of exactly the same words.
   */
  find(problem: string): { ngram: string; evaluationId: string } | undefined {
    for (const gram of wordNgrams(problem, this.ngram)) {
      const owner = this.#owner.get(gram);
      if (owner !== undefined) return { ngram: gram, evaluationId: owner };
    }
    return undefined;
  }
}

export function decontaminate(
  records: readonly MathRecord[],
  index: ContaminationIndex,
  params: DecontaminationParams = defaultDecontaminationParams,
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
  return { kept, dropped, counts: { input: records.length, kept: kept.length, dropped: dropped.length, droppedBySource } };
}
