/**
 * QuestA question augmentation: the problem plus the first p of a reference solution as a hint.
 *
 * Follows the official code, foreverlasting1202/QuestA `AReaL/datasets/add_prefix.py`
 * (commit fcdea82220dcefb6a550fac4e2662c4d7ebc6d71, same logic at 0f5590908ec8):
 *
 *     solution = text.split('</think>')[-1]
 *     prefix = solution[:int(len(solution) * ratio)]        # split_prefix(text, scale)
 *     if len(prefix) < 10: prompt = problem + '\n\n'
 *     else:                prompt = problem + '\n\n' + '## Hint.' + prefix
 *     if final_answer not in solution: continue            # row dropped
 *
 * so: no strip anywhere, no separator after "## Hint.", lengths in code points, truncation toward
 * zero, and an un-hinted prompt that still ends in "\n\n". Each of these is a parameter here.
 */
import { InputError, type InputIssue } from "../runtime/errors.ts";
import type { MathRecord } from "./record.ts";
import {
  codePointLength,
  codePointPrefix,
  hasSurrogates,
  prefixCount,
  solutionAfterThink,
} from "./solution-text.ts";

export const HintUnit = { chars: "chars", tokens: "tokens", lines: "lines" } as const;
export type HintUnit = (typeof HintUnit)[keyof typeof HintUnit];

/** What the tokens unit needs from a tokenizer. */
export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
}

export const DEFAULT_HINT_TEMPLATE = "{problem}\n\n## Hint.{hint}";
/** the official un-hinted prompt keeps the blank line after the problem */
export const DEFAULT_UNHINTED_TEMPLATE = "{problem}\n\n";
export const DEFAULT_MIN_PREFIX_CHARS = 10;

export interface AugmentationParams {
  /** hint ratio p in [0, 1]; 0 gives un-hinted prompts */
  ratio: number;
  /** `{problem}` and `{hint}` placeholders; default `"{problem}\n\n## Hint.{hint}"` */
  template?: string;
  /** prompt when there is no hint; `{problem}` placeholder; default `"{problem}\n\n"` as in the official code */
  unhintedTemplate?: string;
  /** how p is measured: characters (Unicode code points, the default), tokens or lines */
  unit?: HintUnit;
  /** a prefix shorter than this many characters gives the un-hinted prompt; default 10 */
  minPrefixChars?: number;
  /** drop rows whose final answer does not appear in the solution; default true */
  requireAnswerInSolution?: boolean;
  /** required for the tokens unit */
  tokenizer?: Tokenizer;
}

export const DropReason = {
  missingSolution: "missing-solution",
  answerNotInSolution: "answer-not-in-solution",
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export interface AugmentedQuestion {
  id: string;
  source: string;
  problem: string;
  answer: string;
  prompt: string;
  hinted: boolean;
  ratio: number;
  unit: HintUnit;
  /** length of the hint in the unit (0 when un-hinted) */
  hintLength: number;
  /** length of the hint in characters (code points) */
  hintChars: number;
}

export type AugmentOutcome =
  | { kind: "augmented"; question: AugmentedQuestion }
  | { kind: "dropped"; id: string; source: string; reason: DropReason };

type TemplatePart = { literal: string } | { slot: "problem" | "hint" };

/** Compiled augmentation parameters; build once, then `augment` each record (no per-record parsing). */
export class Augmenter {
  readonly ratio: number;
  readonly unit: HintUnit;
  readonly minPrefixChars: number;
  readonly requireAnswerInSolution: boolean;
  readonly #hinted: TemplatePart[];
  readonly #unhinted: TemplatePart[];
  readonly #tokenizer: Tokenizer | undefined;

  constructor(params: AugmentationParams) {
    const issues: InputIssue[] = [];
    const { ratio } = params;
    if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
      issues.push({
        path: "augmentation.ratio",
        message: `must be in [0, 1], got ${ratio}`,
        hint: "e.g. 0.5",
      });
    }
    const unit = params.unit ?? HintUnit.chars;
    if (!Object.values(HintUnit).includes(unit)) {
      issues.push({
        path: "augmentation.unit",
        message: `unknown unit ${JSON.stringify(unit)}`,
        hint: "chars, tokens or lines",
      });
    }
    if (unit === HintUnit.tokens && params.tokenizer === undefined) {
      issues.push({
        path: "augmentation.unit",
        message: "the tokens unit needs the policy's tokenizer",
        hint: "pass a tokenizer or use unit: chars",
      });
    }
    const minPrefixChars = params.minPrefixChars ?? DEFAULT_MIN_PREFIX_CHARS;
    if (!Number.isInteger(minPrefixChars) || minPrefixChars < 0) {
      issues.push({
        path: "augmentation.minPrefixChars",
        message: `must be a whole number >= 0, got ${minPrefixChars}`,
      });
    }
    const hinted = compileTemplate(
      params.template ?? DEFAULT_HINT_TEMPLATE,
      "augmentation.template",
      ["problem", "hint"],
      issues,
    );
    const unhinted = compileTemplate(
      params.unhintedTemplate ?? DEFAULT_UNHINTED_TEMPLATE,
      "augmentation.unhintedTemplate",
      ["problem"],
      issues,
    );
    if (issues.length > 0) throw new InputError("invalid_augmentation", issues);
    this.ratio = ratio;
    this.unit = unit;
    this.minPrefixChars = minPrefixChars;
    this.requireAnswerInSolution = params.requireAnswerInSolution ?? true;
    this.#hinted = hinted;
    this.#unhinted = unhinted;
    this.#tokenizer = params.tokenizer;
  }

  augment(record: MathRecord): AugmentOutcome {
    const solution = record.solution === undefined ? undefined : solutionAfterThink(record.solution);
    if (this.requireAnswerInSolution) {
      if (solution === undefined) {
        return { kind: "dropped", id: record.id, source: record.source, reason: DropReason.missingSolution };
      }
      if (!solution.includes(record.answer)) {
        return {
          kind: "dropped",
          id: record.id,
          source: record.source,
          reason: DropReason.answerNotInSolution,
        };
      }
    }
    const hint = solution === undefined || this.ratio === 0 ? { text: "", length: 0 } : this.hintOf(solution);
    // in the chars unit the length is already in code points
    const hintChars = this.unit === HintUnit.chars ? hint.length : codePointLength(hint.text);
    const hinted = hintChars >= this.minPrefixChars && hint.text.length > 0;
    const prompt = hinted
      ? render(this.#hinted, record.problem, hint.text)
      : render(this.#unhinted, record.problem, "");
    return {
      kind: "augmented",
      question: {
        id: record.id,
        source: record.source,
        problem: record.problem,
        answer: record.answer,
        prompt,
        hinted,
        ratio: this.ratio,
        unit: this.unit,
        hintLength: hinted ? hint.length : 0,
        hintChars: hinted ? hintChars : 0,
      },
    };
  }

  /** the first p of the solution in the configured unit, and its length in that unit */
  hintOf(solution: string): { text: string; length: number } {
    switch (this.unit) {
      case HintUnit.chars: {
        if (!hasSurrogates(solution)) {
          const count = prefixCount(solution.length, this.ratio);
          return { text: solution.slice(0, count), length: count };
        }
        const count = prefixCount(codePointLength(solution), this.ratio);
        return { text: codePointPrefix(solution, count), length: count };
      }
      case HintUnit.tokens: {
        const ids = this.#tokenizer!.encode(solution);
        const count = prefixCount(ids.length, this.ratio);
        return { text: count === 0 ? "" : this.#tokenizer!.decode(ids.slice(0, count)), length: count };
      }
      case HintUnit.lines:
        return linePrefix(solution, this.ratio);
      default:
        return assertNever(this.unit);
    }
  }
}

/** One-off convenience; for many records build an `Augmenter` once. */
export function augmentRecord(record: MathRecord, params: AugmentationParams): AugmentOutcome {
  return new Augmenter(params).augment(record);
}

export interface AugmentBatchResult {
  questions: AugmentedQuestion[];
  dropped: Array<{ id: string; source: string; reason: DropReason }>;
  counts: {
    input: number;
    augmented: number;
    hinted: number;
    unhinted: number;
    dropped: Record<DropReason, number>;
  };
}

/** Augments records in order; dropped rows are listed and counted, never silently lost. */
export function augmentRecords(records: Iterable<MathRecord>, augmenter: Augmenter): AugmentBatchResult {
  const questions: AugmentedQuestion[] = [];
  const dropped: AugmentBatchResult["dropped"] = [];
  const droppedCounts: Record<DropReason, number> = { "missing-solution": 0, "answer-not-in-solution": 0 };
  let input = 0;
  let hinted = 0;
  for (const record of records) {
    input++;
    const outcome = augmenter.augment(record);
    if (outcome.kind === "dropped") {
      dropped.push({ id: outcome.id, source: outcome.source, reason: outcome.reason });
      droppedCounts[outcome.reason]++;
      continue;
    }
    if (outcome.question.hinted) hinted++;
    questions.push(outcome.question);
  }
  return {
    questions,
    dropped,
    counts: {
      input,
      augmented: questions.length,
      hinted,
      unhinted: questions.length - hinted,
      dropped: droppedCounts,
    },
  };
}

/**
 * The first p of the lines, each with its line break: `int(lines * p)` whole lines, so the hint
 * ends at a line boundary. A trailing line break does not start another line.
 */
function linePrefix(text: string, ratio: number): { text: string; length: number } {
  if (text.length === 0) return { text: "", length: 0 };
  let breaks = 0;
  for (let at = text.indexOf("\n"); at >= 0; at = text.indexOf("\n", at + 1)) breaks++;
  const lines = text.endsWith("\n") ? breaks : breaks + 1;
  const count = prefixCount(lines, ratio);
  if (count >= lines) return { text, length: lines };
  let end = 0;
  for (let line = 0; line < count; line++) end = text.indexOf("\n", end) + 1;
  return { text: text.slice(0, end), length: count };
}

function compileTemplate(
  template: string,
  path: string,
  slots: ReadonlyArray<"problem" | "hint">,
  issues: InputIssue[],
): TemplatePart[] {
  const parts: TemplatePart[] = [];
  const seen = new Set<string>();
  const pattern = /\{(problem|hint)\}/g;
  let last = 0;
  for (let match = pattern.exec(template); match !== null; match = pattern.exec(template)) {
    const slot = match[1] as "problem" | "hint";
    if (!slots.includes(slot)) {
      issues.push({
        path,
        message: `{${slot}} is not allowed here`,
        hint: `use only ${slots.map((s) => `{${s}}`).join(" and ")}`,
      });
    }
    if (match.index > last) parts.push({ literal: template.slice(last, match.index) });
    parts.push({ slot });
    seen.add(slot);
    last = match.index + match[0].length;
  }
  if (last < template.length) parts.push({ literal: template.slice(last) });
  for (const slot of slots) {
    if (!seen.has(slot)) {
      issues.push({
        path,
        message: `has no {${slot}} placeholder`,
        hint: `e.g. ${JSON.stringify(DEFAULT_HINT_TEMPLATE)}`,
      });
    }
  }
  return parts;
}

function render(parts: readonly TemplatePart[], problem: string, hint: string): string {
  let out = "";
  for (const part of parts) {
    if ("literal" in part) out += part.literal;
    else out += part.slot === "problem" ? problem : hint;
  }
  return out;
}

function assertNever(value: never): never {
  throw new Error(`unexpected value ${String(value)}`);
}
