import { MAX_COMPUTE_ENGINE_CHARS, parseWithComputeEngine } from "./compute-engine-parse.ts";
import { type EvalBudget, type Expr, evaluate, ParseError, parseExpression } from "./expression.ts";
import { matchBrace, normalizeAnswer } from "./normalize.ts";
import { add, makeRational, mul, type Num, sub } from "./numeric.ts";

export type RelOp = "=" | "<" | "\\le" | "\\ne" | "\\approx";

/**
 * The shape of an answer: plain expressions, relations ("x = 5", "-5 \le x \le 1"), ordered tuples and
 * intervals, unordered collections (bare lists, sets, unions, "or"), matrices and free text.
 */
export type Answer =
  | { k: "expr"; src: string; expr: Expr; percent: boolean }
  | { k: "text"; text: string }
  | { k: "rel"; ops: RelOp[]; parts: Answer[] }
  | { k: "tuple"; open: "(" | "["; close: ")" | "]"; items: Answer[] }
  | { k: "collection"; items: Answer[] }
  | { k: "matrix"; rows: Answer[][] };

const MAX_ITEMS = 64;

/**
 * Notation only the symbolic library reads. Its parser is slow on malformed input (hundreds of ms),
 * so it is asked only when one of these appears, never for arbitrary text.
 */
const NEEDS_SYMBOLIC_PARSER = /\\(?:sum|prod)(?![a-zA-Z])/;
const MAX_DEPTH = 16;

export class StructureError extends Error {
  override readonly name = "StructureError";
}

/** positions of separators at bracket depth 0 */
function splitTopLevel(s: string, isSeparator: (s: string, i: number) => number): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "\\") {
      const next = s[i + 1];
      if (next === "{") depth++;
      else if (next === "}") depth--;
      else if (depth === 0) {
        const width = isSeparator(s, i);
        if (width > 0) {
          parts.push(s.slice(start, i));
          i += width - 1;
          start = i + 1;
          continue;
        }
      }
      i++;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (depth === 0) {
      const width = isSeparator(s, i);
      if (width > 0) {
        parts.push(s.slice(start, i));
        i += width - 1;
        start = i + 1;
      }
    }
    if (parts.length > MAX_ITEMS) throw new StructureError(`more than ${MAX_ITEMS} items`);
  }
  parts.push(s.slice(start));
  return parts;
}

const commaSeparator = (s: string, i: number): number => (s[i] === "," || s[i] === ";" ? 1 : 0);

function wordSeparator(s: string, i: number): number {
  for (const w of [" or ", " and "]) if (s.startsWith(w, i)) return w.length;
  return 0;
}

const cupSeparator = (s: string, i: number): number =>
  s.startsWith("\\cup", i) && !/[a-zA-Z]/.test(s[i + 4] ?? "") ? 4 : 0;

const RELATIONS: ReadonlyArray<readonly [string, RelOp, boolean]> = [
  ["\\approx", "\\approx", false],
  ["\\le", "\\le", false],
  ["\\ge", "\\le", true],
  ["\\ne", "\\ne", false],
  ["=", "=", false],
  ["<", "<", false],
  [">", "<", true],
];

/** index of the bracket closing the one at 0 (any bracket kind), or -1 */
function closingBracket(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "(" || c === "[" || c === "{") depth++;
    else if ((c === ")" || c === "]" || c === "}") && --depth === 0) return i;
  }
  return -1;
}

function parseMatrix(s: string, depth: number): Answer | undefined {
  const m = /^[([]?\s*\\begin\{([pbvBV]?matrix|array|smallmatrix)\}(.*)\\end\{\1\}\s*[)\]]?$/s.exec(s);
  if (!m) return undefined;
  let body = m[2]!;
  // "A + B": two matrices are an expression, not one matrix
  if (body.includes(`\\end{${m[1]}}`)) return undefined;
  if (m[1] === "array" && body.trimStart().startsWith("{")) {
    const open = body.indexOf("{");
    body = body.slice(matchBrace(body, open) + 1);
  }
  const rows = body
    .split(/\\\\/)
    .map((r) => r.trim())
    .filter((r) => r.length > 0)
    .map((r) => r.split("&").map((cell) => parseStructure(cell.trim(), depth + 1)));
  if (rows.length === 0 || rows.length > MAX_ITEMS) throw new StructureError("matrix size");
  return { k: "matrix", rows };
}

const MATRIX_BLOCK = /\\begin\{([pbvBV]?matrix)\}(.*?)\\end\{\1\}/gs;

/** a number as an expression tree: exact n/d when rational */
function numExpr(x: Num): Expr | undefined {
  if (!x.q) return undefined;
  const [n, d] = x.q;
  const abs: Expr = { t: "num", text: (n < 0n ? -n : n).toString() };
  const value: Expr = d === 1n ? abs : { t: "bin", op: "/", a: abs, b: { t: "num", text: d.toString() } };
  return n < 0n ? { t: "neg", a: value } : value;
}

/**
 * Sums, differences and products of numeric matrices ("A + B", "A B", "A \cdot B") are computed,
 * exactly, into one matrix; undefined when the text is anything else or a cell is not a number.
 */
function parseMatrixExpression(s: string, depth: number): Answer | undefined {
  const blocks = [...s.matchAll(MATRIX_BLOCK)];
  if (blocks.length < 2 || blocks.length > 8) return undefined;
  const ops: string[] = [];
  let at = 0;
  for (const [i, b] of blocks.entries()) {
    const gap = s.slice(at, b.index).trim();
    if (i === 0 ? gap !== "" : !/^(?:\+|-|\\cdot|\\times)?$/.test(gap)) return undefined;
    if (i > 0) ops.push(gap === "" || gap === "\\cdot" || gap === "\\times" ? "*" : gap);
    at = b.index + b[0].length;
  }
  if (s.slice(at).trim() !== "") return undefined;
  const budget: EvalBudget = { steps: 100_000, deadline: Number.POSITIVE_INFINITY, now: () => 0 };
  const env = new Map<string, Num>();
  const values: Num[][][] = [];
  for (const b of blocks) {
    const m = parseMatrix(b[0], depth);
    if (m?.k !== "matrix") return undefined;
    const rows: Num[][] = [];
    for (const row of m.rows) {
      const cells: Num[] = [];
      for (const cell of row) {
        if (cell.k !== "expr") return undefined;
        const v = evaluate(cell.expr, env, budget);
        if (!v.q) return undefined;
        cells.push(v);
      }
      rows.push(cells);
    }
    if (rows.some((r) => r.length !== rows[0]!.length)) return undefined;
    values.push(rows);
  }
  let acc = values[0]!;
  for (let k = 0; k < ops.length; k++) {
    const next = values[k + 1]!;
    const op = ops[k]!;
    if (op === "*") {
      if (acc[0]!.length !== next.length) return undefined;
      acc = acc.map((row) =>
        next[0]!.map((_, j) =>
          row.reduce((sum, x, i) => add(sum, mul(x, next[i]![j]!)), makeRational(0n, 1n)),
        ),
      );
    } else {
      if (acc.length !== next.length || acc[0]!.length !== next[0]!.length) return undefined;
      acc = acc.map((row, i) =>
        row.map((x, j) => (op === "+" ? add(x, next[i]![j]!) : sub(x, next[i]![j]!))),
      );
    }
  }
  const rows: Answer[][] = [];
  for (const row of acc) {
    const cells: Answer[] = [];
    for (const x of row) {
      const expr = numExpr(x);
      if (!expr) return undefined;
      cells.push({ k: "expr", src: x.q!.join("/"), expr, percent: false });
    }
    rows.push(cells);
  }
  return { k: "matrix", rows };
}

function parseRelation(s: string, depth: number): Answer | undefined {
  const ops: RelOp[] = [];
  const flips: boolean[] = [];
  const parts = splitTopLevel(s, (text, i) => {
    for (const [token, op, flip] of RELATIONS) {
      if (
        text.startsWith(token, i) &&
        !(token.startsWith("\\") && /[a-zA-Z]/.test(text[i + token.length] ?? ""))
      ) {
        ops.push(op);
        flips.push(flip);
        return token.length;
      }
    }
    return 0;
  });
  if (ops.length === 0) return undefined;
  const answers = parts.map((p) => parseStructure(p.trim(), depth + 1));
  // "b > a" is stored as "a < b": a chain is either all left-pointing or all right-pointing
  if (flips.every((f) => f)) return { k: "rel", ops: [...ops].reverse(), parts: answers.reverse() };
  if (flips.some((f) => f)) throw new StructureError("mixed inequality directions");
  return { k: "rel", ops, parts: answers };
}

function parseLeaf(s: string): Answer {
  let src = s.trim();
  let percent = false;
  if (src.endsWith("%")) {
    percent = true;
    src = src.slice(0, -1).trim();
  }
  if (/^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$/.test(src)) src = src.replace(/,/g, "");
  const sci = /^([+-]?\d+(?:\.\d+)?)[eE]([+-]?\d+)$/.exec(src);
  if (sci) src = `${sci[1]}\\times10^{${sci[2]}}`;
  if (src.length === 0) return { k: "text", text: "" };
  try {
    return { k: "expr", src, expr: parseExpression(src), percent };
  } catch (e) {
    if (!(e instanceof ParseError)) throw e;
  }
  if (NEEDS_SYMBOLIC_PARSER.test(src) && src.length <= MAX_COMPUTE_ENGINE_CHARS) {
    // LaTeX our parser does not know: let the symbolic library read it
    try {
      return { k: "expr", src, expr: parseWithComputeEngine(src), percent };
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
    }
  }
  return { k: "text", text: textKey(s) };
}

/** comparison key for free-text answers: case, spacing and markup insensitive */
export function textKey(s: string): string {
  return s
    .toLowerCase()
    .replace(/\\(?:text|mathrm|textbf|mathbf|mbox)\b/g, "")
    .replace(/[\s{}]/g, "");
}

/** lists of values inside an "or"/"and"/\cup list join it; groups of assignments ("x=1, y=2") stay whole */
function flatten(items: Answer[]): Answer[] {
  return items.flatMap((a) => (a.k === "collection" && a.items.every((i) => i.k !== "rel") ? a.items : [a]));
}

export function parseStructure(s: string, depth = 0): Answer {
  if (depth > MAX_DEPTH) throw new StructureError("answer nested too deeply");
  s = s.trim();
  if (/^\\(?:emptyset|varnothing)$/.test(s) || s === "\\{\\}" || s === "{}")
    return { k: "collection", items: [] };
  const matrix = s.includes("\\begin")
    ? (parseMatrix(s, depth) ?? parseMatrixExpression(s, depth))
    : undefined;
  if (matrix) return matrix;
  if (/^[+-]?\d{1,3}(,\d{3})+(\.\d+)?%?$/.test(s)) return parseLeaf(s);
  for (const sep of [cupSeparator, wordSeparator]) {
    const parts = splitTopLevel(s, sep);
    // "21,16 or 11" is one list of three answers: nested lists flatten
    if (parts.length > 1)
      return { k: "collection", items: flatten(parts.map((p) => parseStructure(p, depth + 1))) };
  }
  const groups = splitTopLevel(s, (text, i) => (text[i] === ";" ? 1 : 0));
  if (groups.length > 1 && groups.some((g) => splitTopLevel(g, commaSeparator).length > 1)) {
    // "p=5,q=2;p=7,q=2": semicolons separate solutions, commas the parts of one
    if (groups.some((g) => g.trim() === "")) throw new StructureError("empty group");
    return { k: "collection", items: groups.map((g) => parseStructure(g, depth + 1)) };
  }
  const commaParts = splitTopLevel(s, commaSeparator);
  if (commaParts.length > 1) {
    if (commaParts.some((p) => p.trim() === "")) throw new StructureError("empty list item");
    return { k: "collection", items: commaParts.map((p) => parseStructure(p, depth + 1)) };
  }
  if (s.startsWith("\\{") && s.endsWith("\\}")) {
    const inner = s.slice(2, -2);
    const items = splitTopLevel(inner, commaSeparator).filter((p) => p.trim() !== "");
    return { k: "collection", items: items.map((p) => parseStructure(p, depth + 1)) };
  }
  const first = s[0];
  const last = s[s.length - 1];
  if (
    (first === "(" || first === "[") &&
    (last === ")" || last === "]") &&
    closingBracket(s) === s.length - 1
  ) {
    const inner = s.slice(1, -1);
    const items = splitTopLevel(inner, commaSeparator);
    if (items.length > 1) {
      if (items.some((p) => p.trim() === "")) throw new StructureError("empty tuple item");
      return { k: "tuple", open: first, close: last, items: items.map((p) => parseStructure(p, depth + 1)) };
    }
  }
  const member = /^[a-zA-Z]\s*\\in\s*(?![a-zA-Z])(.+)$/s.exec(s);
  if (member) return parseStructure(member[1]!, depth + 1);
  const pm = s.indexOf("\\pm");
  if (pm >= 0 && !/[a-zA-Z]/.test(s[pm + 3] ?? "") && s.indexOf("\\pm", pm + 3) < 0) {
    // a \pm b stands for the two answers a + b and a - b
    const before = s.slice(0, pm);
    const after = s.slice(pm + 3);
    const plus = before.trim() === "" ? after : `${before}+${after}`;
    return {
      k: "collection",
      items: [parseStructure(plus, depth + 1), parseStructure(`${before}-${after}`, depth + 1)],
    };
  }
  const relation = parseRelation(s, depth);
  if (relation) return relation;
  return parseLeaf(s);
}

/** normalizes then parses; malformed structure becomes a text answer */
export function parseAnswer(raw: string): Answer {
  const normalized = normalizeAnswer(raw);
  try {
    return parseStructure(normalized);
  } catch (e) {
    if (e instanceof StructureError) return { k: "text", text: textKey(normalized) };
    throw e;
  }
}
