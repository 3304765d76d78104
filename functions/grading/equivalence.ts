import { type Answer, parseAnswer, type RelOp, textKey } from "./answer-structure.ts";
import { complexClose, evaluateComplex } from "./complex.ts";
import {
  BudgetError,
  collectSymbols,
  type EvalBudget,
  type Expr,
  evaluate,
  hasDecimal,
  ParseError,
} from "./expression.ts";
import {
  DEFAULT_TOLERANCE,
  div,
  fromDecimalLiteral,
  makeRational,
  type Num,
  neg,
  numbersEqual,
  type Tolerance,
} from "./numeric.ts";

export const EquivalenceReasons = ["equal", "mismatch", "parse_error", "timeout"] as const;
export type EquivalenceReason = (typeof EquivalenceReasons)[number];

export interface EquivalenceResult {
  equal: boolean;
  reason: EquivalenceReason;
  /** why, in words, when not equal for a reason other than a plain mismatch */
  detail?: string;
}

export interface EquivalenceOptions {
  /** wall-clock bound for one check (default 1000 ms) */
  timeoutMs?: number;
  /** evaluation step bound for one check (default 200,000) */
  maxSteps?: number;
  /** longest answer string considered (default 4,000 characters) */
  maxAnswerChars?: number;
  tolerance?: Tolerance;
  now?: () => number;
}

export const DEFAULT_MAX_ANSWER_CHARS = 4000;

/** variables are sampled at these many points when comparing symbolic expressions */
const SAMPLE_POINTS = 12;
const MIN_VALID_POINTS = 3;
const SYMBOLIC_TOLERANCE: Tolerance = { ...DEFAULT_TOLERANCE, exact: 1e-8 };

interface Context {
  budget: EvalBudget;
  tolerance: Tolerance;
}

const ZERO_ENV: ReadonlyMap<string, Num> = new Map();
const HUNDRED = makeRational(100n, 1n);

/**
 * Deterministic pseudo-random sample for variable j at point k: magnitude in [0.35, 3.35], sign
 * negative at every third point so that sqrt(x^2) and x differ; points where a side is undefined
 * (roots and logs of negatives) are skipped.
 */
function sampleValue(k: number, j: number): number {
  const x = Math.sin((k + 1) * 12.9898 + (j + 1) * 78.233) * 43758.5453;
  const magnitude = 0.35 + 3 * (x - Math.floor(x));
  return (k + j) % 3 === 2 ? -magnitude : magnitude;
}

function isBareSymbol(a: Answer): boolean {
  return a.k === "expr" && a.expr.t === "sym";
}

function percentVariants(a: Num, percent: boolean): Num[] {
  return percent ? [a, div(a, HUNDRED)] : [a];
}

function exprsEqual(
  g: Extract<Answer, { k: "expr" }>,
  p: Extract<Answer, { k: "expr" }>,
  ctx: Context,
): boolean {
  const symbols = collectSymbols(p.expr, collectSymbols(g.expr, new Set()));
  if (symbols.size === 0) {
    const gv = evaluate(g.expr, ZERO_ENV, ctx.budget);
    const pv = evaluate(p.expr, ZERO_ENV, ctx.budget);
    for (const gx of percentVariants(gv, g.percent)) {
      for (const px of percentVariants(pv, p.percent)) if (numbersEqual(gx, px, ctx.tolerance)) return true;
    }
    return false;
  }
  if (symbols.has("i"))
    return complexEqual(
      g,
      p,
      [...symbols].filter((x) => x !== "i"),
      ctx,
    );
  return sampledEqual(g.expr, p.expr, [...symbols], ctx, (a, b) => numbersEqual(a, b, SYMBOLIC_TOLERANCE));
}

/** `i` is the imaginary unit: compare as complex numbers, sampling any other variables */
function complexEqual(
  g: Extract<Answer, { k: "expr" }>,
  p: Extract<Answer, { k: "expr" }>,
  symbols: readonly string[],
  ctx: Context,
): boolean {
  const rel = hasDecimal(g.expr) || hasDecimal(p.expr) ? ctx.tolerance.decimal : SYMBOLIC_TOLERANCE.exact;
  const points = symbols.length === 0 ? 1 : SAMPLE_POINTS;
  let valid = 0;
  for (let k = 0; k < points; k++) {
    const env = new Map<string, number>();
    symbols.forEach((name, j) => {
      env.set(name, sampleValue(k, j));
    });
    const gv = evaluateComplex(g.expr, env, ctx.budget);
    const pv = evaluateComplex(p.expr, env, ctx.budget);
    if (![gv.re, gv.im, pv.re, pv.im].every(Number.isFinite)) continue;
    if (!complexClose(gv, pv, rel)) return false;
    valid++;
  }
  return valid >= Math.min(points, MIN_VALID_POINTS);
}

/** compares two expressions in the same variables at deterministic sample points */
function sampledEqual(
  g: Expr,
  p: Expr,
  symbols: readonly string[],
  ctx: Context,
  same: (a: Num, b: Num) => boolean,
): boolean {
  let valid = 0;
  for (let k = 0; k < SAMPLE_POINTS; k++) {
    const env = new Map<string, Num>();
    symbols.forEach((name, j) => {
      env.set(name, { v: sampleValue(k, j), approx: false });
    });
    const gv = evaluate(g, env, ctx.budget);
    const pv = evaluate(p, env, ctx.budget);
    if (!Number.isFinite(gv.v) || !Number.isFinite(pv.v)) continue;
    if (!same(gv, pv)) return false;
    valid++;
  }
  return valid >= MIN_VALID_POINTS;
}

/** two equations are the same when lhs - rhs of one is a nonzero constant multiple of the other's */
function equationsEqual(g: Answer[], p: Answer[], ctx: Context): boolean {
  const [gl, gr] = g;
  const [pl, pr] = p;
  if (gl?.k !== "expr" || gr?.k !== "expr" || pl?.k !== "expr" || pr?.k !== "expr") return false;
  const gf: Expr = { t: "bin", op: "-", a: gl.expr, b: gr.expr };
  const pf: Expr = { t: "bin", op: "-", a: pl.expr, b: pr.expr };
  const symbols = [...collectSymbols(pf, collectSymbols(gf, new Set()))];
  if (symbols.length === 0) return false;
  let ratio: number | undefined;
  return sampledEqual(gf, pf, symbols, ctx, (a, b) => {
    if (Math.abs(b.v) < 1e-12 || Math.abs(a.v) < 1e-12) return Math.abs(a.v) < 1e-9 && Math.abs(b.v) < 1e-9;
    const r = a.v / b.v;
    ratio ??= r;
    return Math.abs(r - ratio) <= 1e-8 * Math.max(1, Math.abs(ratio));
  });
}

function relationsEqual(
  g: Extract<Answer, { k: "rel" }>,
  p: Extract<Answer, { k: "rel" }>,
  ctx: Context,
): boolean {
  if (g.ops.length !== p.ops.length || g.ops.some((op, i) => op !== p.ops[i])) return false;
  if (g.ops.length === 1 && g.ops[0] === "=") {
    const [gl, gr] = g.parts;
    const [pl, pr] = p.parts;
    if (gl && gr && pl && pr && isBareSymbol(gl) && isBareSymbol(pl)) {
      if (answersMatch(gl, pl, ctx)) return answersMatch(gr, pr, ctx);
    }
    if (equationsEqual(g.parts, p.parts, ctx)) return true;
  }
  return g.parts.every((part, i) => {
    const other = p.parts[i];
    return other !== undefined && answersMatch(part, other, ctx);
  });
}

function infinity(negative: boolean): Answer {
  const inf: Expr = { t: "const", name: "inf" };
  return {
    k: "expr",
    src: negative ? "-\\infty" : "\\infty",
    expr: negative ? { t: "neg", a: inf } : inf,
    percent: false,
  };
}

/** "a \le x < b", "x > 3" -> the interval they describe, when they describe one */
function relationAsInterval(r: Extract<Answer, { k: "rel" }>): Answer | undefined {
  const strict = (op: RelOp | undefined): boolean | undefined =>
    op === "<" ? true : op === "\\le" ? false : undefined;
  if (r.parts.length === 3 && isBareSymbol(r.parts[1]!)) {
    const a = strict(r.ops[0]);
    const b = strict(r.ops[1]);
    if (a === undefined || b === undefined) return undefined;
    return { k: "tuple", open: a ? "(" : "[", close: b ? ")" : "]", items: [r.parts[0]!, r.parts[2]!] };
  }
  if (r.parts.length === 2) {
    const s = strict(r.ops[0]);
    if (s === undefined) return undefined;
    if (isBareSymbol(r.parts[0]!))
      return { k: "tuple", open: "(", close: s ? ")" : "]", items: [infinity(true), r.parts[1]!] };
    if (isBareSymbol(r.parts[1]!))
      return { k: "tuple", open: s ? "(" : "[", close: ")", items: [r.parts[0]!, infinity(false)] };
  }
  return undefined;
}

/** "x", "a_1", "f(x)", "f'(x)": a side that names what the relation defines */
function isNameLike(a: Answer): boolean {
  if (isBareSymbol(a)) return true;
  const src = a.k === "expr" ? a.src : a.k === "text" ? a.text : "";
  return /^[a-zA-Z](?:_\{?\w+\}?)?'*(?:\([^()]*\))?$/.test(src.replace(/\s+/g, ""));
}

/** a side that states a value, not a condition on variables: no free variables, or not an expression (\lim, a determinant) */
function isValueSide(a: Answer): boolean {
  if (a.k !== "expr" || isNameLike(a)) return true;
  const free = collectSymbols(a.expr, new Set());
  free.delete("i"); // the imaginary unit, as in e^{i\pi} = -1
  return free.size === 0;
}

/**
 * The value a relation states when compared with a bare value: the last side of an "=" chain whose
 * other sides name or compute it ("x = 5", "\sqrt{4} = 2"), any side of "\approx". An equation
 * in variables ("5x - 7y + 4 = 0") states no single value.
 */
function relationValues(r: Extract<Answer, { k: "rel" }>): Answer[] {
  if (r.ops.every((op) => op === "=")) {
    return r.parts.slice(0, -1).every(isValueSide) ? [r.parts[r.parts.length - 1]!] : [];
  }
  if (r.ops.every((op) => op === "=" || op === "\\approx")) return r.parts.filter((p) => !isBareSymbol(p));
  return [];
}

function collectionMatch(g: Answer[], p: Answer[], ctx: Context): boolean {
  if (g.length !== p.length) return false;
  const used = new Array<boolean>(p.length).fill(false);
  for (const item of g) {
    const idx = p.findIndex((candidate, i) => !used[i] && answersMatch(item, candidate, ctx));
    if (idx < 0) return false;
    used[idx] = true;
  }
  return true;
}

function matrixCells(a: Answer): Answer[][] | undefined {
  if (a.k === "matrix") return a.rows;
  return undefined;
}

function answersMatch(g: Answer, p: Answer, ctx: Context): boolean {
  if (g.k === "collection" || p.k === "collection") {
    const gi = g.k === "collection" ? g.items : [g];
    const pi = p.k === "collection" ? p.items : [p];
    return collectionMatch(gi, pi, ctx);
  }
  if (g.k === "rel" && p.k === "rel") return relationsEqual(g, p, ctx);
  if (p.k === "rel") {
    if (g.k === "tuple") {
      const interval = relationAsInterval(p);
      return interval !== undefined && answersMatch(g, interval, ctx);
    }
    return relationValues(p).some((v) => answersMatch(g, v, ctx));
  }
  if (g.k === "rel") {
    if (p.k === "tuple") {
      const interval = relationAsInterval(g);
      return interval !== undefined && answersMatch(interval, p, ctx);
    }
    return relationValues(g).some((v) => answersMatch(v, p, ctx));
  }
  if (g.k === "tuple" && p.k === "tuple") {
    if (g.open !== p.open || g.close !== p.close || g.items.length !== p.items.length) return false;
    return g.items.every((item, i) => answersMatch(item, p.items[i]!, ctx));
  }
  const gm = matrixCells(g);
  const pm = matrixCells(p);
  if (gm && pm) {
    if (gm.length !== pm.length) return false;
    return gm.every((row, i) => {
      const other = pm[i]!;
      return row.length === other.length && row.every((cell, j) => answersMatch(cell, other[j]!, ctx));
    });
  }
  if ((gm && p.k === "tuple") || (pm && g.k === "tuple")) {
    // a row or column vector written as a tuple
    const cells = (gm ?? pm)!;
    const flat =
      cells.length === 1 ? cells[0]! : cells.every((r) => r.length === 1) ? cells.map((r) => r[0]!) : [];
    const tuple = (g.k === "tuple" ? g : p) as Extract<Answer, { k: "tuple" }>;
    if (tuple.open !== "(" || flat.length !== tuple.items.length) return false;
    return flat.every((cell, i) =>
      gm ? answersMatch(cell, tuple.items[i]!, ctx) : answersMatch(tuple.items[i]!, cell, ctx),
    );
  }
  if (g.k === "expr" && p.k === "expr") return exprsEqual(g, p, ctx);
  if (g.k === "text" && p.k === "text") return g.text === p.text;
  const gt = g.k === "text" ? g.text : g.k === "expr" ? textKey(g.src) : undefined;
  const pt = p.k === "text" ? p.text : p.k === "expr" ? textKey(p.src) : undefined;
  return gt !== undefined && gt === pt;
}

const PLAIN_NUMBER = /^[+-]?(?:\d{1,400}(?:\.\d{0,400})?|\.\d{1,400})$/;

function numeral(text: string): Num {
  const negative = text.startsWith("-");
  const body = text.replace(/^[+-]/, "").replace(/\.$/, "");
  const value = fromDecimalLiteral(body.startsWith(".") ? `0${body}` : body);
  return negative ? neg(value) : value;
}

const CHOICE = /^\(?([A-J])\)?$/;
const CHOICE_PREFIX = /^\(([A-J])\)|^([A-J])(?:[).:]|$)/;

/** multiple-choice gold "D" against "D", "(D)", "(D) 1,008,016" */
function choiceVerdict(gold: string, pred: string): boolean | undefined {
  const g = CHOICE.exec(gold.trim());
  if (!g) return undefined;
  const m = CHOICE_PREFIX.exec(pred.trim());
  if (!m) return undefined;
  return (m[1] ?? m[2]) === g[1];
}

/** parsed gold answers, reused across the many samples graded against one problem */
const goldCache = new Map<string, Answer>();
const GOLD_CACHE_SIZE = 4096;

function parseGold(gold: string): Answer {
  const hit = goldCache.get(gold);
  if (hit) return hit;
  const parsed = parseAnswer(gold);
  if (goldCache.size >= GOLD_CACHE_SIZE) {
    const oldest = goldCache.keys().next().value;
    if (oldest !== undefined) goldCache.delete(oldest);
  }
  goldCache.set(gold, parsed);
  return parsed;
}

function normalizedChoiceText(s: string): string {
  return s
    .replace(/\\(?:text|textbf|mathrm|mathbf|mbox)\s*\{([^{}]*)\}/g, "$1")
    .replace(/^\$+|\$+$/g, "")
    .trim();
}

/**
 * Decides whether `predicted` states the same answer as `gold`. Synchronous and bounded: inputs over
 * the size bound, nesting past the depth bound and evaluations past the step/time budget return
 * not-equal with a reason instead of running on; no exception escapes.
 */
export function answersEqual(
  gold: string,
  predicted: string,
  options: EquivalenceOptions = {},
): EquivalenceResult {
  const maxChars = options.maxAnswerChars ?? DEFAULT_MAX_ANSWER_CHARS;
  if (gold.length > maxChars || predicted.length > maxChars) {
    return { equal: false, reason: "parse_error", detail: `answer longer than ${maxChars} characters` };
  }
  const now = options.now ?? performance.now.bind(performance);
  const ctx: Context = {
    budget: { steps: options.maxSteps ?? 200_000, deadline: now() + (options.timeoutMs ?? 1000), now },
    tolerance: options.tolerance ?? DEFAULT_TOLERANCE,
  };
  try {
    const g0 = gold.trim();
    const p0 = predicted.trim();
    if (g0 === p0 && g0 !== "") return { equal: true, reason: "equal" };
    if (PLAIN_NUMBER.test(g0) && PLAIN_NUMBER.test(p0)) {
      // fast path for the common case (AIME integers, the synthetic task): two plain numerals
      const equal = numbersEqual(numeral(g0), numeral(p0), ctx.tolerance);
      return equal ? { equal: true, reason: "equal" } : { equal: false, reason: "mismatch" };
    }
    const choice = choiceVerdict(normalizedChoiceText(gold), normalizedChoiceText(predicted));
    if (choice !== undefined)
      return choice ? { equal: true, reason: "equal" } : { equal: false, reason: "mismatch" };
    const g = parseGold(gold);
    const p = parseAnswer(predicted);
    if (p.k === "text" && p.text === "")
      return { equal: false, reason: "parse_error", detail: "empty answer" };
    return answersMatch(g, p, ctx) ? { equal: true, reason: "equal" } : { equal: false, reason: "mismatch" };
  } catch (e) {
    if (e instanceof BudgetError) return { equal: false, reason: "timeout", detail: e.message };
    if (e instanceof ParseError) return { equal: false, reason: "parse_error", detail: e.message };
    // RangeError (stack), bigint limits and anything unforeseen: never escape, never count as equal
    return {
      equal: false,
      reason: "parse_error",
      detail: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    };
  }
}
