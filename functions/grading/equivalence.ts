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
import { normalizeAnswer } from "./normalize.ts";
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
 * (roots and logs of negatives) are skipped. The value is a small rational (denominator 7 to 23),
 * so polynomial and rational expressions are compared exactly, with no rounding at all.
 */
function sampleRational(k: number, j: number): Num {
  const x = Math.sin((k + 1) * 12.9898 + (j + 1) * 78.233) * 43758.5453;
  const magnitude = 0.35 + 3 * (x - Math.floor(x));
  const d = SAMPLE_DENOMINATORS[(k + 2 * j) % SAMPLE_DENOMINATORS.length]!;
  const n = BigInt(Math.max(1, Math.round(magnitude * d)));
  return makeRational((k + j) % 3 === 2 ? -n : n, BigInt(d));
}
const SAMPLE_DENOMINATORS = [7, 11, 13, 17, 19, 23];

function sampleValue(k: number, j: number): number {
  return sampleRational(k, j).v;
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

/** compares two expressions in the same variables at deterministic (rational) sample points */
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
      env.set(name, sampleRational(k, j));
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

const isEqualityOp = (op: RelOp): boolean => op === "=" || op === "\\approx";

/**
 * The value an equality chain settles on: its last side joined by "=" ("x = 5+5+1 = 11" -> 11,
 * "x = 1/3 \approx 0.33" -> 1/3), when the chain opens with what it names.
 */
function chainValue(r: Extract<Answer, { k: "rel" }>): Answer | undefined {
  if (!r.ops.every(isEqualityOp) || !isNameLike(r.parts[0]!)) return undefined;
  const lastEq = r.ops.lastIndexOf("=");
  return lastEq < 0 ? undefined : r.parts[lastEq + 1];
}

function relationsEqual(
  g: Extract<Answer, { k: "rel" }>,
  p: Extract<Answer, { k: "rel" }>,
  ctx: Context,
): boolean {
  const gv = chainValue(g);
  const pv = chainValue(p);
  if (gv && pv && (g.ops.length > 1 || p.ops.length > 1)) {
    // two chains naming the same thing agree when they settle on the same value
    const gName = g.parts[0]!;
    const pName = p.parts[0]!;
    if (answerKey(gName) === answerKey(pName) && answersMatch(gv, pv, ctx)) return true;
  }
  if (isInequality(g) && isInequality(p)) {
    const verdict = setPredicateVerdict(g, p, ctx);
    if (verdict !== undefined) return verdict;
  }
  if (g.ops.length !== p.ops.length || g.ops.some((op, i) => op !== p.ops[i])) return false;
  if (g.ops.length === 1 && g.ops[0] === "=") {
    const [gl, gr] = g.parts;
    const [pl, pr] = p.parts;
    if (gl && gr && pl && pr && isBareSymbol(gl) && isBareSymbol(pl)) {
      if (answersMatch(gl, pl, ctx)) return answersMatch(gr, pr, ctx);
    }
    // "W(n) = 1" and "W(x) = 1": the same function's value, whatever its argument is called
    if (gl && gr && pl && pr && functionName(gl) !== undefined && functionName(gl) === functionName(pl)) {
      if (freeSymbols(gr).size === 0 && answersMatch(gr, pr, ctx)) return true;
    }
    if (equationsEqual(g.parts, p.parts, ctx)) return true;
  }
  return g.parts.every((part, i) => {
    const other = p.parts[i];
    return other !== undefined && answersMatch(part, other, ctx);
  });
}

/** "f" of "f(x)", "W" of "W(n)": the name of a function value, or undefined */
function functionName(a: Answer): string | undefined {
  const src = a.k === "expr" ? a.src : a.k === "text" ? a.text : "";
  return /^([a-zA-Z])(?:_\{?\w+\}?)?\([^()]*\)$/.exec(src.replace(/\s+/g, ""))?.[1];
}

/** a text key for names ("x", "f(x)", "(p,q)") so the same name written twice compares equal */
function answerKey(a: Answer): string {
  switch (a.k) {
    case "expr":
      return textKey(a.src);
    case "text":
      return a.text;
    case "tuple":
      return `${a.open}${a.items.map(answerKey).join(",")}${a.close}`;
    default:
      return JSON.stringify(a);
  }
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
  if (r.parts.length === 3 && isNameLike(r.parts[1]!)) {
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

/** a product or quotient of letters, maybe in |..|: "AB", "NO/BO", "|AB|", "xy" (names, not formulas) */
function isMonomialName(e: Expr): boolean {
  switch (e.t) {
    case "sym":
      return true;
    case "bin":
      return (e.op === "*" || e.op === "/") && isMonomialName(e.a) && isMonomialName(e.b);
    case "fn":
      return e.name === "abs" && e.args.length === 1 && isMonomialName(e.args[0]!);
    default:
      return false;
  }
}

/** "x", "a_1", "f(x)", "f'(x)", "AB", "(p,q)": a side that names what the relation defines */
function isNameLike(a: Answer): boolean {
  if (isBareSymbol(a)) return true;
  if (a.k === "tuple") return a.open === "(" && a.items.every(isNameLike);
  if (a.k === "expr" && isMonomialName(a.expr)) return true;
  const src = a.k === "expr" ? a.src : a.k === "text" ? a.text : "";
  return /^[a-zA-Z](?:_\{?\w+\}?)?'*(?:\([^()]*\))?$/.test(src.replace(/\s+/g, ""));
}

function freeSymbols(a: Answer): Set<string> {
  if (a.k !== "expr") return new Set();
  const free = collectSymbols(a.expr, new Set());
  free.delete("i"); // the imaginary unit, as in e^{i\pi} = -1
  return free;
}

/** a side that states a value, not a condition on variables: no free variables, or not an expression (\lim, a determinant) */
function isValueSide(a: Answer): boolean {
  if (a.k !== "expr" || isNameLike(a)) return true;
  return freeSymbols(a).size === 0;
}

/**
 * The value a relation states when compared with a bare value: the last side of an "=" chain whose
 * other sides name or compute it ("x = 5", "\sqrt{4} = 2", "NO/BO = 1/\sqrt6"), the last "=" side
 * of a chain ending in "\approx", any side of "\approx" alone. An equation in variables
 * ("5x - 7y + 4 = 0", "7 = 11a + c") states no single value.
 */
function relationValues(r: Extract<Answer, { k: "rel" }>): Answer[] {
  if (r.ops.every((op) => op === "=")) {
    const last = r.parts[r.parts.length - 1]!;
    const earlier = r.parts.slice(0, -1);
    if (!earlier.every(isValueSide)) return [];
    // a formula in variables is the value only when the chain opens with a name for it
    if (freeSymbols(last).size > 0 && !isNameLike(earlier[0]!)) return [];
    return [last];
  }
  if (r.ops.every(isEqualityOp)) {
    const settled = chainValue(r);
    return settled ? [settled] : r.parts.filter((p) => !isBareSymbol(p));
  }
  return [];
}

/** "x = 1, y = 2" as the values it assigns, in order, when every item assigns a name */
function assignedValues(items: Answer[]): Answer[] | undefined {
  if (items.length < 2) return undefined;
  const values: Answer[] = [];
  for (const item of items) {
    if (item.k !== "rel" || item.ops.length !== 1 || item.ops[0] !== "=" || !isNameLike(item.parts[0]!))
      return undefined;
    values.push(item.parts[1]!);
  }
  return values;
}

/**
 * Unordered collections compare as sets: every item on each side equals one on the other
 * (duplicates, as in a repeated root or a pair listed twice, do not count twice).
 */
function collectionMatch(g: Answer[], p: Answer[], ctx: Context): boolean {
  if (g.length === 0 || p.length === 0) return g.length === p.length;
  const pUsed = new Array<boolean>(p.length).fill(false);
  for (const item of g) {
    let found = false;
    for (let i = 0; i < p.length; i++) {
      if (answersMatch(item, p[i]!, ctx)) {
        pUsed[i] = true;
        found = true;
      }
    }
    if (!found) return false;
  }
  for (let i = 0; i < p.length; i++) {
    if (!pUsed[i] && !g.some((item) => answersMatch(item, p[i]!, ctx))) return false;
  }
  return true;
}

function matrixCells(a: Answer): Answer[][] | undefined {
  if (a.k === "matrix") return a.rows;
  return undefined;
}

function inOrder(g: Answer[], p: Answer[], ctx: Context): boolean {
  return g.length === p.length && g.every((item, i) => answersMatch(item, p[i]!, ctx));
}

function answersMatch(g: Answer, p: Answer, ctx: Context): boolean {
  // "x = 1, y = 2" against "(1, 2)"; a bare list "1, 3" against the pair "(1, 3)" it spells
  if (g.k === "collection" && p.k === "tuple" && p.open === "(") {
    const values = assignedValues(g.items);
    if (values && inOrder(values, p.items, ctx)) return true;
  }
  if (p.k === "collection" && g.k === "tuple" && g.open === "(") {
    const values = assignedValues(p.items) ?? p.items;
    if (g.close === ")" && inOrder(g.items, values, ctx)) return true;
  }
  if (g.k === "collection" || p.k === "collection") {
    const gi = g.k === "collection" ? g.items : [g];
    const pi = p.k === "collection" ? p.items : [p];
    if (collectionMatch(gi, pi, ctx)) return true;
    const verdict = setPredicateVerdict(g, p, ctx);
    return verdict === true;
  }
  if (g.k === "rel" && p.k === "rel") return relationsEqual(g, p, ctx);
  if (p.k === "rel") {
    if (g.k === "tuple") {
      const interval = relationAsInterval(p);
      if (interval !== undefined && answersMatch(g, interval, ctx)) return true;
      if (setPredicateVerdict(g, p, ctx) === true) return true;
    }
    return relationValues(p).some((v) => answersMatch(g, v, ctx));
  }
  if (g.k === "rel") {
    if (p.k === "tuple") {
      const interval = relationAsInterval(g);
      if (interval !== undefined && answersMatch(interval, p, ctx)) return true;
      if (setPredicateVerdict(g, p, ctx) === true) return true;
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

// --- sets of reals described by inequalities, intervals and unions, compared by their members ---

function isInequality(a: Answer): a is Extract<Answer, { k: "rel" }> {
  return a.k === "rel" && a.ops.every((op) => op === "<" || op === "\\le");
}

/** membership of one real `t`: true, false, or undefined when too close to a boundary to tell */
type Member = (t: Num) => boolean | undefined;

interface SetShape {
  member: Member;
  /** finite interval ends and relation constants, where membership changes */
  marks: number[];
  /** the variable a relation is written in */
  variable?: string;
}

function compareNums(a: Num, b: Num): number | undefined {
  if (Number.isNaN(a.v) || Number.isNaN(b.v)) return undefined;
  if (!Number.isFinite(a.v) || !Number.isFinite(b.v)) return a.v === b.v ? 0 : a.v < b.v ? -1 : 1;
  if (a.q && b.q) {
    const l = a.q[0] * b.q[1];
    const r = b.q[0] * a.q[1];
    return l < r ? -1 : l > r ? 1 : 0;
  }
  if (a.v === b.v) return Number.isFinite(a.v) ? undefined : 0;
  const scale = Math.max(1, Math.abs(a.v), Math.abs(b.v));
  if (Math.abs(a.v - b.v) <= 1e-9 * scale) return undefined;
  return a.v < b.v ? -1 : 1;
}

function constantValue(a: Answer, ctx: Context): Num | undefined {
  if (a.k !== "expr" || freeSymbols(a).size > 0) return undefined;
  const v = evaluate(a.expr, ZERO_ENV, ctx.budget);
  return Number.isNaN(v.v) ? undefined : v;
}

/** an inequality chain in one variable, an interval, or a union of intervals, as a membership test */
function setShape(a: Answer, ctx: Context): SetShape | undefined {
  if (isInequality(a)) {
    const vars = new Set<string>();
    for (const part of a.parts) {
      if (part.k !== "expr") return undefined;
      for (const v of freeSymbols(part)) vars.add(v);
    }
    if (vars.size !== 1) return undefined;
    const variable = [...vars][0]!;
    const marks: number[] = [];
    for (const part of a.parts) {
      const v = constantValue(part, ctx);
      if (v && Number.isFinite(v.v)) marks.push(v.v);
    }
    return {
      variable,
      marks,
      member: (t) => {
        const env = new Map([[variable, t]]);
        const values = a.parts.map((part) =>
          evaluate((part as Extract<Answer, { k: "expr" }>).expr, env, ctx.budget),
        );
        let holds = true;
        for (let i = 0; i < a.ops.length; i++) {
          const c = compareNums(values[i]!, values[i + 1]!);
          if (c === undefined) return undefined;
          if (a.ops[i] === "<" ? c >= 0 : c > 0) holds = false;
        }
        return holds;
      },
    };
  }
  if (a.k === "tuple" && a.items.length === 2) {
    const lo = constantValue(a.items[0]!, ctx);
    const hi = constantValue(a.items[1]!, ctx);
    if (!lo || !hi) return undefined;
    const marks = [lo.v, hi.v].filter(Number.isFinite);
    return {
      marks,
      member: (t) => {
        const l = compareNums(lo, t);
        const h = compareNums(t, hi);
        if (l === undefined || h === undefined) return undefined;
        return (a.open === "(" ? l < 0 : l <= 0) && (a.close === ")" ? h < 0 : h <= 0);
      },
    };
  }
  if (a.k === "collection" && a.items.length > 0) {
    const parts = a.items.map((item) => setShape(item, ctx));
    if (parts.some((x) => x === undefined)) return undefined;
    const shapes = parts as SetShape[];
    const variables = new Set(shapes.map((x) => x.variable).filter((v) => v !== undefined));
    if (variables.size > 1) return undefined;
    const variable = [...variables][0];
    return {
      ...(variable === undefined ? {} : { variable }),
      marks: shapes.flatMap((x) => x.marks),
      member: (t) => {
        let unknown = false;
        for (const x of shapes) {
          const m = x.member(t);
          if (m === true) return true;
          if (m === undefined) unknown = true;
        }
        return unknown ? undefined : false;
      },
    };
  }
  return undefined;
}

/** points where two sets could differ: each boundary, both sides of it, between boundaries, far out */
function probePoints(marks: number[]): Num[] {
  const points: Num[] = [];
  for (let n = -12; n <= 12; n++)
    points.push(makeRational(BigInt(n), 1n), makeRational(BigInt(2 * n + 1), 2n));
  for (const far of [100n, 10_000n, 1_000_000n]) points.push(makeRational(far, 1n), makeRational(-far, 1n));
  const sorted = [...new Set(marks)].sort((a, b) => a - b).slice(0, 16);
  for (let i = 0; i < sorted.length; i++) {
    const m = sorted[i]!;
    const step = Math.max(1e-6, Math.abs(m) * 1e-6);
    points.push({ v: m, approx: false }, { v: m - step, approx: false }, { v: m + step, approx: false });
    const next = sorted[i + 1];
    if (next !== undefined) points.push({ v: (m + next) / 2, approx: false });
  }
  return points;
}

/**
 * Two descriptions of a set of reals ("1 \le |z| \le 3/2" and "[-3/2,-1] \cup [1,3/2]", "x < 1"
 * and "-x > -1") agree when they agree on membership at every probe point: each boundary, both
 * sides of it, between boundaries and far out. Undefined when either is not such a set.
 */
function setPredicateVerdict(g: Answer, p: Answer, ctx: Context): boolean | undefined {
  const gs = setShape(g, ctx);
  const ps = setShape(p, ctx);
  if (!gs || !ps) return undefined;
  if (gs.variable !== undefined && ps.variable !== undefined && gs.variable !== ps.variable) return undefined;
  if (gs.variable === undefined && ps.variable === undefined) return undefined;
  let decided = 0;
  for (const t of probePoints([...gs.marks, ...ps.marks])) {
    const a = gs.member(t);
    const b = ps.member(t);
    if (a === undefined || b === undefined) continue;
    if (a !== b) return false;
    decided++;
  }
  return decided >= 8;
}

const PLAIN_NUMBER = /^[+-]?(?:\d{1,400}(?:\.\d{0,400})?|\.\d{1,400})$/;

function numeral(text: string): Num {
  const negative = text.startsWith("-");
  const body = text.replace(/^[+-]/, "").replace(/\.$/, "");
  const value = fromDecimalLiteral(body.startsWith(".") ? `0${body}` : body);
  return negative ? neg(value) : value;
}

/**
 * "3,14", "250,75", "0,111", "-1000,99": one comma between digit runs that cannot be a thousands
 * group (not three digits after it, or a 0 or more than three digits before it) may be a decimal
 * comma; the number it reads as, or undefined.
 */
function decimalCommaReading(text: string, minDigits: number): string | undefined {
  const m = /^([-+]?)(\d+),(\d+)\s*(%)?$/.exec(text);
  if (!m) return undefined;
  const [, sign, whole, fraction, percent] = m;
  if (fraction!.length < minDigits && whole !== "0") return undefined;
  const thousands = fraction!.length === 3 && whole !== "0" && whole!.length <= 3;
  return thousands ? undefined : `${sign}${whole}.${fraction}${percent ?? ""}`;
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
    if (answersMatch(g, p, ctx)) return { equal: true, reason: "equal" };
    // "(B) 12" against the gold value 12: the value after the choice letter
    const labelled = /^\s*\(([A-J])\)\s*(\S.*)$/s.exec(predicted);
    if (labelled && answersMatch(g, parseAnswer(labelled[2]!), ctx)) return { equal: true, reason: "equal" };
    // "3,14" may be a decimal comma: read it so when the list reading failed
    // a gold "-2,1" is more likely two roots than -2.1: a gold's decimal comma needs two digits after it
    const gAlt = decimalCommaReading(normalizeAnswer(g0), 2);
    const pAlt = decimalCommaReading(normalizeAnswer(p0), 1);
    if (gAlt !== undefined || pAlt !== undefined) {
      const ga = gAlt === undefined ? g : parseGold(gAlt);
      const pa = pAlt === undefined ? p : parseAnswer(pAlt);
      if (answersMatch(ga, pa, ctx)) return { equal: true, reason: "equal" };
    }
    return { equal: false, reason: "mismatch" };
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
