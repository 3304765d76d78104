/**
 * String-level clean-up of an answer before structure parsing: wrappers, spacing commands, units,
 * currency, degrees and LaTeX spelling variants. Pure, linear-time, no regex backtracking hazards
 * (every pattern is anchored or uses bounded character classes).
 */

const WRAPPERS = [
  "boxed",
  "fbox",
  "text",
  "textbf",
  "textit",
  "mathrm",
  "mathbf",
  "mbox",
  "textnormal",
  "mathit",
];

const KNOWN_AFTER_GLUE = new Set([
  "left",
  "leq",
  "leqslant",
  "geq",
  "geqslant",
  "neq",
  "neg",
  "lesssim",
  "gets",
  "ne",
  "le",
  "ge",
  "pi",
  "phi",
  "psi",
  "cdot",
  "cdots",
  "times",
  "infty",
  "pm",
  "newline",
  "nearrow",
  "genfrac",
  "neq",
  "nexists",
  "leftarrow",
  "Leftarrow",
  "leftrightarrow",
  "geqq",
  "leqq",
]);
const GLUE_PREFIXES = ["leq", "geq", "neq", "le", "ge", "ne", "pi", "cdot", "times", "infty"];

/** index of the brace closing the one at `open`, or -1 */
export function matchBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
  }
  return -1;
}

/** "\cmd{...}" covering the whole string -> its content */
function unwrapWhole(s: string, names: readonly string[]): string | undefined {
  for (const name of names) {
    const head = `\\${name}`;
    if (!s.startsWith(head)) continue;
    let open = head.length;
    while (s[open] === " ") open++;
    if (s[open] !== "{") continue;
    if (matchBrace(s, open) === s.length - 1) return s.slice(open + 1, -1);
  }
  return undefined;
}

function stripMathDelimiters(s: string): string {
  for (;;) {
    const before = s;
    s = s.trim();
    if (s.startsWith("$$") && s.endsWith("$$") && s.length >= 4) s = s.slice(2, -2);
    else if (s.startsWith("$") && s.endsWith("$") && s.length >= 2 && !s.slice(1, -1).includes("$"))
      s = s.slice(1, -1);
    else if ((s.startsWith("\\(") && s.endsWith("\\)")) || (s.startsWith("\\[") && s.endsWith("\\]")))
      s = s.slice(2, -2);
    else {
      const inner = unwrapWhole(s, ["boxed", "fbox", "displaystyle"]);
      if (inner !== undefined) s = inner;
    }
    if (s === before) return s;
  }
}

/**
 * Removes \text{...} spans: a whole-answer wrapper is unwrapped, a trailing one after other content
 * is a unit ("10\text{ cm}^2"), inner ones keep their words ("1 \text{ or } 2").
 */
function handleTextCommands(s: string): string {
  const whole = unwrapWhole(s, WRAPPERS);
  if (whole !== undefined) return handleTextCommands(whole.trim());
  let out = "";
  let i = 0;
  while (i < s.length) {
    if (s[i] === "\\") {
      let j = i + 1;
      while (j < s.length && /[a-zA-Z]/.test(s[j]!)) j++;
      const name = s.slice(i + 1, j);
      let open = j;
      while (s[open] === " ") open++;
      if (WRAPPERS.includes(name) && s[open] === "{") {
        const close = matchBrace(s, open);
        if (close < 0) return out + s.slice(i);
        const content = s.slice(open + 1, close);
        let end = close + 1;
        const rest = s.slice(end).trim();
        const isTextual = /^[\sa-zA-Z.]*$/.test(content);
        const hasValueBefore = /[0-9a-zA-Z)}]\s*$/.test(out);
        if (isTextual && hasValueBefore && (rest === "" || rest.startsWith("^") || rest === ".")) {
          // trailing unit: drop it with its power, e.g. \text{cm}^2
          const power = /^\s*\^\s*(\{[^{}]*\}|\d)/.exec(s.slice(end));
          if (power) end += power[0].length;
          i = end;
          continue;
        }
        out += name === "text" || name === "mbox" || name === "textnormal" ? ` ${content} ` : content;
        i = end;
        continue;
      }
      out += s.slice(i, j);
      i = j;
      continue;
    }
    out += s[i];
    i++;
  }
  return out;
}

const UNIT_WORDS =
  /^(square|sq|cubic|units?|degrees?|deg|radians?|cm|mm|km|m|meters?|metres?|inches|inch|in|feet|foot|ft|yards?|miles?|mph|kg|g|grams?|pounds?|lbs?|dollars?|cents?|seconds?|sec|s|minutes?|min|hours?|hrs?|h|days?|weeks?|years?|people|students?|ways?|times|points?|cups?|liters?|litres?|ml|l|percent)$/i;

/** trailing words that are math, not units */
const NOT_UNITS = new Set([
  "and",
  "or",
  "sin",
  "cos",
  "tan",
  "log",
  "sqrt",
  "exp",
  "not",
  "none",
  "undefined",
  "infinity",
]);

/** "90 degrees", "10 square units", "5 cm", "12 apples" -> the number part */
function stripTrailingUnitWords(s: string): string {
  if (s.length > 400) return s;
  const m = /^(.*?[0-9}).])\s*((?:[a-zA-Z]+\s+){0,3}[a-zA-Z]+)\s*\.?$/.exec(s);
  if (!m) return s;
  const words = m[2]!.trim().split(/\s+/);
  const isUnit = (w: string): boolean =>
    UNIT_WORDS.test(w) || (w.length >= 3 && !NOT_UNITS.has(w.toLowerCase()));
  if (words.every(isUnit) && !/[a-zA-Z]\s*$/.test(m[1]!.replace(/\\[a-zA-Z]+/g, ""))) {
    if (words.some((w) => /^percent$/i.test(w))) return `${m[1]}%`;
    return m[1]!;
  }
  return s;
}

function unglueCommands(s: string): string {
  return s.replace(/\\([a-zA-Z]+)/g, (full, word: string) => {
    if (KNOWN_AFTER_GLUE.has(word)) return full;
    const prefix = GLUE_PREFIXES.find((p) => word.startsWith(p) && word.length > p.length);
    return prefix ? `\\${prefix} ${word.slice(prefix.length)}` : full;
  });
}

const UNICODE: ReadonlyArray<readonly [RegExp, string]> = [
  [/\u2212|\u2013|\u2014/g, "-"],
  [/\u00d7/g, "\\times "],
  [/\u00b7|\u22c5/g, "\\cdot "],
  [/\u2264/g, "\\le "],
  [/\u2265/g, "\\ge "],
  [/\u2260/g, "\\ne "],
  [/\u03c0/g, "\\pi "],
  [/\u221e/g, "\\infty "],
  [/\u221a/g, "\\sqrt"],
  [/\u00b0/g, ""],
  [/\u222a/g, "\\cup "],
];

const PLAIN_ARITHMETIC = /^[0-9+\-*/^(). ]*$/;

/** cleans one answer string; keeps structure characters ( , [ ] { } = ) intact */
export function normalizeAnswer(raw: string): string {
  // fast path: plain arithmetic needs no clean-up beyond a sentence-final period
  if (PLAIN_ARITHMETIC.test(raw)) return raw.trim().replace(/\.$/, "").trim();
  let s = raw.replace(/\r\n?/g, "\n");
  for (const [re, rep] of UNICODE) s = s.replace(re, rep);
  s = stripMathDelimiters(s);
  if (!s.includes("\\begin")) s = s.replace(/\\\\(?=[a-zA-Z])/g, "\\");
  s = s
    .replace(/\\left\s*\\?([([{|.])/g, (_m, c: string) => (c === "." ? "" : c === "{" ? "\\{" : c))
    .replace(/\\right\s*\\?([)\]}|.])/g, (_m, c: string) => (c === "." ? "" : c === "}" ? "\\}" : c))
    .replace(/\\(?:left|right|big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])/g, "")
    .replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![a-zA-Z])/g, "")
    .replace(/\\langle(?![a-zA-Z])/g, "(")
    .replace(/\\rangle(?![a-zA-Z])/g, ")")
    // thousands written with thin spaces (1\,000) or \! (32,\!348); other spacing becomes a space
    .replace(/(\d)\\[,!]\s*(?=\d{3}(?!\d))/g, "$1")
    .replace(/(?<!\\)\\!/g, "")
    .replace(/(?<!\\)\\(?:[,;: ]|quad|qquad)/g, " ")
    .replace(/~/g, " ")
    .replace(/\\(?:d|t|c)frac(?![a-zA-Z])/g, "\\frac")
    .replace(/\\(?:d|t)binom(?![a-zA-Z])/g, "\\binom")
    .replace(/(^|[^\\a-zA-Z])(frac|sqrt)(?=[{0-9])/g, "$1\\$2")
    .replace(/\\sqrt\s*\{\s*\}\s*\{/g, "\\sqrt{")
    .replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree/g, "")
    .replace(/\\\$|\$/g, " ")
    .replace(/\\%/g, "%")
    .replace(/\{,\}/g, ",")
    .replace(/\\(?:lt)(?![a-zA-Z])/g, "<")
    .replace(/\\(?:gt)(?![a-zA-Z])/g, ">")
    .replace(/\\(?:leq|leqslant|le)(?![a-zA-Z])/g, "\\le ")
    .replace(/\\(?:geq|geqslant|ge)(?![a-zA-Z])/g, "\\ge ")
    .replace(/\\(?:neq|ne)(?![a-zA-Z])/g, "\\ne ")
    .replace(/<=/g, "\\le ")
    .replace(/>=/g, "\\ge ")
    .replace(/!=/g, "\\ne ");
  s = unglueCommands(s);
  s = s.replace(/\\(?:leq|le)(?![a-zA-Z])/g, "\\le ").replace(/\\(?:geq|ge)(?![a-zA-Z])/g, "\\ge ");
  s = handleTextCommands(s.trim());
  s = s.replace(/\s+/g, " ").trim();
  // trailing sentence punctuation and stray backslashes ("185\")
  s = s
    .replace(/(?:\s|\\(?![a-zA-Z{}]))+$/g, "")
    .replace(/[.;]$/, "")
    .trim();
  s = stripTrailingUnitWords(s);
  s = stripMathDelimiters(s).trim();
  // the whole real line, however it is written
  if (/^(?:\\mathbb\s*\{?R\}?|\\R|all real numbers|\\text\{all real numbers\})$/i.test(s))
    return "(-\\infty,\\infty)";
  return s;
}
