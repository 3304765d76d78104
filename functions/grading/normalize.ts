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
      else {
        // a box whose closing brace never came (a cut-off answer): its content so far
        const open = /^\\(?:boxed|fbox)\s*\{/.exec(s);
        if (open && matchBrace(s, open[0].length - 1) < 0) s = s.slice(open[0].length);
      }
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
        if (close < 0 && (name === "boxed" || name === "fbox")) {
          // a box cut off before its closing brace: keep reading its content
          i = open + 1;
          continue;
        }
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
  /^(square|sq|cubic|units?|degrees?|deg|radians?|cm|mm|km|m|meters?|metres?|inches|inch|in|feet|foot|ft|yards?|miles?|mph|kg|g|grams?|pounds?|lbs?|dollars?|cents?|seconds?|sec|s|minutes?|min|hours?|hrs?|h|days?|weeks?|years?|people|students?|ways?|times|points?|cups?|liters?|litres?|ml|l|percent|percentage|pct|usd|eur|euros?)$/i;

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
  const m = /^(.*?[0-9}).])\s*((?:[a-zA-Z]+(?:\^\{?\d\}?)?\s+){0,3}[a-zA-Z]+(?:\^\{?\d\}?)?)\s*\.?$/.exec(s);
  if (!m) return s;
  // "cm^3", "m^{2}": a unit's power goes with it
  const words = m[2]!
    .trim()
    .split(/\s+/)
    .map((w) => w.replace(/\^\{?\d\}?$/, ""));
  const isUnit = (w: string): boolean =>
    UNIT_WORDS.test(w) || (w.length >= 3 && !NOT_UNITS.has(w.toLowerCase()));
  if (words.every(isUnit) && !/[a-zA-Z]\s*$/.test(m[1]!.replace(/\\[a-zA-Z]+/g, ""))) {
    if (words.some((w) => /^(?:percent|percentage|pct)$/i.test(w))) return `${m[1]}%`;
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
  // spaces used as thousands separators or padding: no-break, thin, narrow no-break, figure, hair
  [/[\u00a0\u2007\u2009\u200a\u202f]/g, " "],
  [/\u00b2/g, "^2"],
  [/\u00b3/g, "^3"],
  // currency signs are units, never part of the value
  [/[\u20ac\u00a3\u00a5\u20b9\u20bd\u20a9\u20aa\u20ab\u0e3f]/g, " "],
];

const PLAIN_ARITHMETIC = /^[0-9+\-*/^(). ]*$/;

/** "12 345 678", "2 500.5": digit groups of three separated by single spaces are one number */
function joinSpacedThousands(s: string): string {
  return s.replace(/(?<![\d.,])\d{1,3}(?: \d{3})+(?![\d,]| \d)/g, (m) => m.replace(/ /g, ""));
}

/** "7:15 AM", "\text{7:15 a.m.}" -> "7:15am": times compare as text, case and spacing aside */
function canonicalTime(s: string): string | undefined {
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*(?:([aApP])\.?\s*[mM]\.?)?$/.exec(s);
  if (!m) return undefined;
  return `${Number(m[1])}:${m[2]}${m[3] === undefined ? "" : `:${m[3]}`}${m[4] ? `${m[4].toLowerCase()}m` : ""}`;
}

/** cleans one answer string; keeps structure characters ( , [ ] { } = ) intact */
export function normalizeAnswer(raw: string): string {
  // fast path: plain arithmetic needs no clean-up beyond a sentence-final period
  if (PLAIN_ARITHMETIC.test(raw)) return joinSpacedThousands(raw.trim().replace(/\.$/, "").trim());
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
    // thousands written with thin spaces (1\,000), \! (32,\!348) or a braced comma (14{,}916, 14 {, }916)
    .replace(/(\d),\\!\s*(?=\d{3}(?!\d))/g, "$1,")
    .replace(/(\d)\s*\{\s*,\s*\}\s*(?=\d{3}(?!\d))/g, "$1,")
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
  const early = canonicalTime(s);
  if (early !== undefined) return early;
  // trailing sentence punctuation and stray backslashes ("185\")
  s = s
    .replace(/(?:\s|\\(?![a-zA-Z{}]))+$/g, "")
    .replace(/[.;]$/, "")
    .trim();
  s = stripTrailingUnitWords(s);
  s = stripMathDelimiters(s).trim();
  // answers glued to "or": "(11,7)or(7,11)", "W(x)=1orW(x)=-1"
  s = s.replace(/(?<=[\d)\]}])or(?=[\s([\d\\a-zA-Z-])|(?<=\s)or(?=[([\d\\-])/g, " or ");
  s = joinSpacedThousands(s);
  // braces around the whole answer group it ("{1,2,3}" as written in $${1,2,3}$$); \{ \} is a set
  while (s.startsWith("{") && matchBrace(s, 0) === s.length - 1) s = s.slice(1, -1).trim();
  // one bracketed value: "[45 degrees]" (an interval has two ends)
  const single = /^\[([^,;[\]]*)\]$/.exec(s);
  if (single) s = normalizeAnswer(single[1]!);
  s = canonicalTime(s) ?? s;
  // the whole real line, however it is written
  if (/^(?:\\mathbb\s*\{?R\}?|\\R|all real numbers|\\text\{all real numbers\})$/i.test(s))
    return "(-\\infty,\\infty)";
  return s;
}
