/**
 * Final-answer extraction from a model response. Every scan is linear (indexOf / lastIndexOf and
 * single passes, regexes only on bounded windows), so a megabyte response costs milliseconds,
 * never a regex blow-up.
 *
 * Order of preference (the first that finds something wins):
 *   strict and lenient (marked answers)
 *     1. the last \boxed{}/\fbox{} ("\boxed 7" too), joined with the boxes just before it that
 *        only connectors separate ("and", ",", "y_2 ="); a "Final Answer" statement after it wins
 *     2. the last marker: "Final Answer" (with or without a colon, bold, or a heading with the
 *        answer on the next line), "the answer is", "Answer:", a GSM8K "#### 42" line; what follows
 *        up to the end of its sentence or math block, narrowed to its value ("The volume is 120")
 *   lenient only (free-form answers)
 *     3. "Answer X" / "option (X)" for a choice letter
 *     4. the last display or inline math span ($..$, $$..$$, \(..\), \[..\]; display math may span
 *        lines), with the spans "and"/"or" join to it, unless a plain-text number follows it
 *     5. a bare short answer that is the whole response ("-5", "1,000.99$", "28 percent", "Evelyn")
 *     6. the last number of the last sentence that has one ("... is 2/3.", "1,000.99€")
 * Before any of it: text inside a closed <think> block is skipped and the response is cut at the
 * first chat-template stop token (<|im_start|>, <|im_end|>, <|eot_id|>, ...). For 3-6 trailing
 * chatter ("I hope it is correct.") is dropped, and a response whose <think> or last box never
 * closed (cut off) has no free-form answer.
 */
import { DEFAULT_REWARD_MODE, type GradingMode } from "../contracts/grading-mode.ts";

export const DEFAULT_MAX_RESPONSE_CHARS = 1_000_000;

/** how an answer was found, in order of preference */
export const ExtractionKinds = [
  "boxed",
  "marker",
  "choice",
  "math",
  "bare",
  "last_number",
  "whole", // a gold answer used as written
] as const;
export type ExtractionKind = (typeof ExtractionKinds)[number];

export interface Extraction {
  answer: string;
  kind: ExtractionKind;
}

export interface ExtractOptions {
  /** strict: only marked answers; lenient: free-form answers too (default strict) */
  mode?: GradingMode;
  /** longest response considered (default 1,000,000 characters) */
  maxChars?: number;
}

const BOX_COMMANDS = ["\\boxed", "\\fbox"];

/** stop tokens of common chat templates: what follows is a hallucinated next turn */
const STOP_TOKENS = [
  "<|im_start|>",
  "<|im_end|>",
  "<|endoftext|>",
  "<|eot_id|>",
  "<|end_of_text|>",
  "<|start_header_id|>",
  "<|end|>",
  "<|user|>",
  "<|assistant|>",
  "<end_of_turn>",
  "<start_of_turn>",
  "</s>",
  "<\uff5cend\u2581of\u2581sentence\uff5c>",
  "<\uff5cUser\uff5c>",
];

/** content of the brace group opening at `open` (which must be '{'), or undefined if unbalanced */
function braceGroup(s: string, open: number): string | undefined {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return s.slice(open + 1, i);
  }
  return undefined;
}

/** for every '{', the index of its matching '}' (or -1): one linear pass, used when scans repeat */
function braceMatches(s: string): Int32Array {
  const match = new Int32Array(s.length).fill(-1);
  const stack: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "{") stack.push(i);
    else if (c === "}") {
      const open = stack.pop();
      if (open !== undefined) match[open] = i;
    }
  }
  return match;
}

interface Box {
  content: string;
  /** index of the backslash of \boxed */
  start: number;
  /** index just past the box */
  stop: number;
}

/** the last balanced \boxed{...} / \fbox{...} starting at or before `end` */
function lastBox(response: string, end: number): Box | null {
  let matches: Int32Array | undefined;
  // last position of each command at or before `end`; refreshed only once passed (keeps it linear)
  const found = BOX_COMMANDS.map((c) => response.lastIndexOf(c, end));
  for (;;) {
    let at = -1;
    let cmd = "";
    BOX_COMMANDS.forEach((c, k) => {
      if (found[k]! > end) found[k] = response.lastIndexOf(c, end);
      if (found[k]! > at) {
        at = found[k]!;
        cmd = c;
      }
    });
    if (at < 0) return null;
    let j = at + cmd.length;
    if (!/[a-zA-Z]/.test(response[j] ?? "")) {
      while (response[j] === " ") j++;
      if (response[j] === "{") {
        // first candidate: direct scan; after a failure, a precomputed table keeps the search linear
        if (matches === undefined) {
          const content = braceGroup(response, j);
          if (content !== undefined)
            return { content: content.trim(), start: at, stop: j + content.length + 2 };
          matches = braceMatches(response);
        } else {
          const close = matches[j]!;
          if (close >= 0) return { content: response.slice(j + 1, close).trim(), start: at, stop: close + 1 };
        }
      } else if (j > at + cmd.length) {
        // "\boxed 5": one token up to whitespace or a math delimiter
        const m = /^[^\s$]+/.exec(response.slice(j, j + 200));
        if (m) return { content: m[0].replace(/[.,;]$/, ""), start: at, stop: j + m[0].length };
      }
    }
    end = at - 1;
    if (end < 0) return null;
  }
}

/** the last \boxed{...} / \fbox{...} with balanced braces ("\boxed 5" too), or null */
export function extractBoxed(response: string): string | null {
  return lastBox(response, response.length)?.content ?? null;
}

/**
 * Text allowed between boxes that list several answers: "\boxed{1} and \boxed{2}",
 * "$\boxed{1}$, $\boxed{2}$", "y_1 = \boxed{..} and y_2 = \boxed{..}",
 * "\boxed{(3,3)} \text{ for part (a) and } \boxed{(1,1)}"; never ", then found".
 */
function isConnector(gap: string): boolean {
  if (gap.length > 60) return false;
  const word = gap
    .replace(/\\text\s*\{([^{}]*)\}/g, "$1")
    .replace(/\\[()[\]]|\\q?quad|\\[,; ]|[\s$.,;]/g, "")
    .replace(/[a-zA-Z](?:_\{?\w+\}?)?=/g, "")
    .toLowerCase();
  return word === "" || word === "&" || /^(?:for[^=]{0,16})?(?:and|or)$/.test(word);
}

interface Boxes {
  content: string;
  /** index just past the last box */
  stop: number;
}

/** the final box, joined with the boxes right before it when only connectors separate them */
function finalBoxes(text: string): Boxes | null {
  const last = lastBox(text, text.length);
  if (!last) return null;
  const parts = [last.content];
  let current = last;
  while (parts.length < 10 && current.start > 0) {
    const previous = lastBox(text, current.start - 1);
    if (!previous || previous.stop > current.start || !isConnector(text.slice(previous.stop, current.start)))
      break;
    parts.unshift(previous.content);
    current = previous;
  }
  return { content: parts.join(", "), stop: last.stop };
}

/** every box of a short gold ("\boxed{1} papers and \boxed{2} bins"), when it has several */
function allBoxes(text: string): string | null {
  const parts: string[] = [];
  let outside = 0;
  let end = text.length;
  let previousStart = text.length;
  while (parts.length < 10) {
    const box = lastBox(text, end);
    if (!box || box.stop > previousStart) break;
    const gap = text.slice(box.stop, previousStart);
    // between two boxes of a list: little ("++"), or a connector ("papers and", ", "); not "no no no no"
    const connected = gap.length <= 12 || (gap.length <= 40 && /(?:^|[\s}$])(?:and|or)\b|[,;&]/.test(gap));
    if (parts.length > 0 && !connected) break;
    outside += gap.length;
    parts.unshift(box.content);
    previousStart = box.start;
    end = box.start - 1;
    if (end < 0) break;
  }
  outside += previousStart;
  const earlier = previousStart > 0 && text.lastIndexOf("\\boxed", previousStart - 1) >= 0;
  return parts.length > 1 && outside <= 80 && !earlier ? parts.join(", ") : null;
}

interface Span {
  content: string;
  start: number;
  stop: number;
  /** inline math ($..$, \(..\)) broken over lines: math, but not an answer */
  malformed?: true;
}

/** longest inline $..$ span; a lone "$" further from its partner is a currency sign */
const MAX_INLINE_SPAN = 2000;

/**
 * Math spans in order: $$..$$, \[..\], \(..\), $..$ ("\$" is a dollar sign). Display math may
 * span lines; inline math that does is marked malformed (rendered math never breaks that way).
 * One forward pass; each closing delimiter is searched for only when one exists further on, so
 * the scan is linear.
 */
export function mathSpans(text: string): Span[] {
  const spans: Span[] = [];
  const lastClose = {
    $$: text.lastIndexOf("$$"),
    "\\]": text.lastIndexOf("\\]"),
    "\\)": text.lastIndexOf("\\)"),
  };
  const push = (start: number, open: number, end: number, close: number, inline: boolean): void => {
    const content = text.slice(start + open, end);
    const span: Span = { content, start, stop: end + close };
    if (inline && content.includes("\n")) span.malformed = true;
    spans.push(span);
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\") {
      const next = text[i + 1];
      if (next === "[" || next === "(") {
        const close = next === "[" ? "\\]" : "\\)";
        const end = lastClose[close] > i ? text.indexOf(close, i + 2) : -1;
        if (end >= 0) {
          push(i, 2, end, 2, next === "(");
          i = end + 2;
          continue;
        }
      }
      i += 2;
      continue;
    }
    if (c === "$") {
      if (text[i + 1] === "$") {
        const end = lastClose.$$ > i + 1 ? text.indexOf("$$", i + 2) : -1;
        if (end >= 0) {
          push(i, 2, end, 2, false);
          i = end + 2;
          continue;
        }
        i += 2;
        continue;
      }
      let end = text.indexOf("$", i + 1);
      while (end >= 0 && text[end - 1] === "\\") end = text.indexOf("$", end + 1);
      if (end >= 0 && end - i <= MAX_INLINE_SPAN) {
        push(i, 1, end, 1, true);
        i = end + 1;
        continue;
      }
    }
    i++;
  }
  return spans;
}

/** the text with every math span blanked out (same length): what is plain prose */
function plainText(text: string, spans: readonly Span[]): string {
  if (spans.length === 0) return text;
  let out = "";
  let at = 0;
  for (const span of spans) {
    out += text.slice(at, span.start) + " ".repeat(span.stop - span.start);
    at = span.stop;
  }
  return out + text.slice(at);
}

/** cuts at the first sentence end outside math: ". " or a final "." (decimal points survive) */
function cutSentence(s: string): string {
  let inMath = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "$") inMath = !inMath;
    if (inMath) continue;
    if (c === "." && (i === s.length - 1 || /\s/.test(s[i + 1]!))) return s.slice(0, i);
  }
  return s;
}

/** trailing chatter that follows an answer and is never part of it */
const CHATTER =
  /^(?:i hope (?:it|this|that) (?:is|was) (?:correct|right|helpful|clear)|(?:i )?hope (?:this|it|that) helps|let me know\b.*|thank you\b.*|thanks\b.*|feel free\b.*|good luck\b.*|is there anything else\b.*|please let me know\b.*|if you have any\b.*|have a (?:great|nice|good)\b.*)[.!?)\]]*$/i;

/** "42 I hope it is correct": chatter run on after an answer without a period */
function cutChatter(line: string): string {
  const m = /\s(?:I hope|Hope (?:this|it)|Let me know|Thank you|Thanks|Please let me know)\b/.exec(line);
  return m ? line.slice(0, m.index) : line;
}

/** drops trailing chatter sentences ("I hope it is correct.") and a trailing period */
function dropChatter(text: string): string {
  let t = text.trimEnd();
  for (let k = 0; k < 6; k++) {
    // trailing punctuation, stripped by hand: /[.!?\s]+$/ is quadratic on a megabyte of dots
    let end = t.length;
    while (end > 0 && /[.!?\s]/.test(t[end - 1]!)) end--;
    const body = t.slice(0, end);
    // the last sentence: after the last sentence end followed by a space or newline
    const m = /(?:^|[.!?]\s+|\n)([^.!?\n]*)$/.exec(body.slice(-400));
    const last = m?.[1]?.trim() ?? "";
    if (last === "" || !CHATTER.test(last)) return t;
    t = body.slice(0, body.length - last.length).trimEnd();
  }
  return t;
}

/** words a bare answer may contain besides math: units, connectives, constants, times */
const BARE_WORDS = new Set(
  (
    "and or of percent pct percentage am pm sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh " +
    "log ln lg exp sqrt pi infty inf infinity undefined none yes no true false even odd " +
    "cm mm km m meters metres meter metre inches inch feet foot ft yards yard miles mile mph kg grams gram " +
    "lb lbs pounds pound dollars dollar cents cent usd eur euros seconds second sec minutes minute min " +
    "hours hour hrs hr days day weeks week years year degrees degree deg radians radian units unit " +
    "square sq cubic liters litres liter litre ml people students ways times points cups"
  ).split(" "),
);

const MAX_BARE_CHARS = 160;

/** "-5", "1 000", "28 percent", "x = 5", "Evelyn": the whole text is one answer, not a sentence */
function isBareAnswer(text: string, maxChars: number, anyLines = false): boolean {
  const t = text.trim();
  if (t.length === 0 || t.length > maxChars) return false;
  if (/^\S+$/.test(t)) return true;
  // in a response several lines are one answer only as a matrix or array; else they are working
  if (!anyLines && t.includes("\n") && !t.includes("\\begin")) return false;
  // a whole-answer \text{...} wrapper is an answer in words
  if (/^\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}$/.test(t)) return true;
  const words =
    t
      .replace(/\\(?:begin|end)\s*\{[a-zA-Z*]*\}(?:\{[a-z|]*\})?/g, " ")
      .replace(/\\[a-zA-Z]+/g, " ")
      .match(/[a-zA-Z]{2,}/g) ?? [];
  return words.every((w) => BARE_WORDS.has(w.toLowerCase()));
}

/** a number at the end of a window: "12,345,678", "2 500", "3,14", ".5", "-7", "2/3" */
const NUMBER_AT_END =
  /(?<![\w.,])([-\u2212]?(?:\d{1,3}(?:(?:,|[ \u00a0\u2009\u202f]|\\,)\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?|\.\d+)(?:\s?\/\s?\d+)?)$/;
const PERCENT_AFTER = /^\s*(?:\\?%|percent\b|percentage\b|pct\b)/i;

const TIME_AT_END = /(?<![\d:])(\d{1,2}:\d{2})$/;
const MERIDIEM_AFTER = /^\s*([aApP])\.?\s*[mM]\b\.?/;

/** the last number of the last sentence that has one, with a following percent sign; a time ("7:15 a.m.") whole */
function lastNumber(text: string): string | null {
  let end = text.length - 1;
  while (end >= 0 && !(text[end]! >= "0" && text[end]! <= "9")) end--;
  if (end < 0) return null;
  const window = text.slice(Math.max(0, end - 80), end + 1);
  const time = TIME_AT_END.exec(window);
  if (time) {
    const meridiem = MERIDIEM_AFTER.exec(text.slice(end + 1, end + 12));
    return meridiem ? `${time[1]} ${meridiem[1]!.toLowerCase()}m` : time[1]!;
  }
  const m = NUMBER_AT_END.exec(window);
  if (!m) return null;
  const number = m[1]!.replace(/\s+/g, " ").replace("\u2212", "-");
  return PERCENT_AFTER.test(text.slice(end + 1, end + 20)) ? `${number}%` : number;
}

/** strips a leading "the final answer is" / "is" / ":" and markdown emphasis from a marked answer */
function cleanMarked(s: string): string {
  let out = s.trim();
  for (let k = 0; k < 3; k++) {
    const before = out;
    out = out
      .replace(/^(?:\*\*|__|\\?["\u201c\u201d'`])+|(?:\*\*|__|\\?["\u201c\u201d'`])+$/g, "")
      .replace(/^[\s:=\uff1a]+/, "")
      .replace(/^(?:the\s+)?(?:final\s+)?answer\s+(?:is|was)\b:?/i, "")
      .replace(/^is\b:?/i, "")
      .trim();
    if (out === before) break;
  }
  return out.replace(/[.;,]$/, "").trim();
}

/** the value a marked sentence states: "The volume of $V$ is 120" -> "120" */
function narrowMarked(s: string): string {
  if (isBareAnswer(s, MAX_BARE_CHARS)) return s;
  // after the last " is " / " are " / " equals " outside math
  let inMath = false;
  let cut = -1;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "$") inMath = !inMath;
    if (inMath || c !== " ") continue;
    const m = /^ (?:is|are|equals|was|be)\b:?/i.exec(s.slice(i, i + 9));
    if (m) cut = i + m[0].length;
  }
  if (cut >= 0) {
    const value = s.slice(cut).trim();
    if (value.length > 0) return value;
  }
  const spans = mathSpans(s).filter((x) => !x.malformed);
  const last = spans[spans.length - 1];
  if (last && last.content.trim() !== "") return s.slice(last.start, last.stop);
  // a long formula is the answer as written, not a sentence to pick a number from
  return s.length <= 300 ? (lastNumber(s) ?? s) : s;
}

interface Marker {
  /** position just after the marker phrase */
  at: number;
  /** the phrase says "final answer" */
  final: boolean;
}

/** "Final Answer" / "answer is" / "answer:" markers; the last one wins */
function lastMarker(text: string): Marker | null {
  const lower = text.toLowerCase();
  let from = lower.length;
  for (let guard = 0; guard < 10_000; guard++) {
    const i = lower.lastIndexOf("answer", from);
    if (i < 0) return null;
    from = i - 1;
    const after = lower.slice(i + 6, i + 120);
    const before = lower.slice(Math.max(0, i - 12), i);
    const final = /final[\s*_#]*$/.test(before);
    // "answer is", "answer:", "answer to the question is"
    const verb =
      /^\s*(?:\*\*|__)?\s*(?:to\s[^.\n:$]{0,80}?\s)?(?:is|was|would be|should be|will be|[:\uff1a])(?![a-z])/.exec(
        after,
      );
    if (verb) return { at: i + 6 + verb[0].length, final };
    if (final) {
      // "**Final Answer**", "### Final Answer" as a heading: the answer follows, maybe on the next
      // line; "no final answer here" is no heading
      const heading =
        /^[ \t]*(?:\*\*|__)?[ \t]*(?:\([^)\n]{0,20}\))?[ \t]*(?:\*\*|__)?(?=[ \t]*(?:\n|$))|^(?:\*\*|__)/.exec(
          after,
        );
      if (heading) return { at: i + 6 + heading[0].length, final };
    }
    if (i === 0) return null;
  }
  return null;
}

/** the answer after a marker, up to the end of its sentence (or its math block) */
/** longest marked answer read; a longer one is returned whole and fails the answer size bound */
const MAX_MARKED_CHARS = 4000;

function afterMarker(text: string, marker: Marker | null): string | null {
  if (marker === null) return null;
  let rest = text.slice(marker.at, marker.at + MAX_MARKED_CHARS + 1).replace(/^[\s*:=\uff1a]+/, "");
  // a math block right after the marker may span lines: take it whole
  if (/^(?:\$\$|\\\[|\\\(|\$)/.test(rest)) {
    const span = mathSpans(rest)[0];
    if (span && span.start === 0 && !span.malformed) {
      const trailing = /^\s*(?:\\?%|percent\b)/i.exec(rest.slice(span.stop));
      return rest.slice(0, span.stop) + (trailing ? "%" : "");
    }
  }
  const newline = rest.indexOf("\n");
  if (newline >= 0) rest = rest.slice(0, newline);
  const sentence = cutSentence(cutChatter(rest));
  if (sentence.length > MAX_MARKED_CHARS) return sentence;
  const cleaned = cleanMarked(sentence);
  if (cleaned.length === 0) return null;
  const inner = extractBoxed(cleaned);
  return inner ?? narrowMarked(cleaned);
}

/**
 * Boxed or marked: the last box, unless a "Final Answer" statement follows it ("\boxed{255} ...
 * Final Answer: The final answer is $10,455$."); else the last marker.
 */
function markedAnswer(text: string): Extraction | null | "empty" {
  const boxes = finalBoxes(text);
  const marker = laterMarker(lastMarker(text), lastHashMarker(text));
  if (boxes !== null && marker?.final && marker.at > boxes.stop) {
    const restated = afterMarker(text, marker);
    if (restated !== null && isBareAnswer(restated, MAX_BARE_CHARS))
      return { answer: restated, kind: "marker" };
  }
  if (boxes !== null) return boxes.content.length > 0 ? { answer: boxes.content, kind: "boxed" } : "empty";
  const marked = afterMarker(text, marker);
  return marked === null ? null : { answer: marked, kind: "marker" };
}

/** "#### 42" (the GSM8K answer line); a markdown heading ("#### Step 2") is no answer */
function lastHashMarker(text: string): Marker | null {
  let i = text.lastIndexOf("####");
  while (i > 0 && !/\s/.test(text[i - 1]!)) i = text.lastIndexOf("####", i - 1);
  if (i < 0) return null;
  let at = i;
  while (text[at] === "#") at++;
  const line = cutChatter(text.slice(at, at + 200).split("\n", 1)[0]!).trim();
  return isBareAnswer(line.replace(/\.$/, ""), MAX_BARE_CHARS) ? { at, final: true } : null;
}

function laterMarker(a: Marker | null, b: Marker | null): Marker | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.at >= b.at ? a : b;
}

/** lenient: "Answer B", "the correct option is (C)": a choice letter after answer/option/choice */
function choiceAfterAnswer(text: string): string | null {
  const tail = text.slice(-400);
  let letter: string | null = null;
  for (const m of tail.matchAll(
    /(?:[Aa]nswer|[Oo]ption|[Cc]hoice)\s*(?:is\s*)?[:\uff1a]?\s*(?:\*\*)?\s*\(?([A-E])\)?(?![\w$])/g,
  ))
    letter = m[1]!;
  return letter;
}

function unfinishedThinking(response: string): boolean {
  const open = response.lastIndexOf("<think>");
  return open >= 0 && response.indexOf("</think>", open) < 0;
}

/** text after a closed <think> block, cut at the first stop token that follows some text */
function answerRegion(response: string): string {
  const thinkEnd = response.lastIndexOf("</think>");
  let text = thinkEnd >= 0 ? response.slice(thinkEnd + 8) : response;
  let cut = text.length;
  for (const token of STOP_TOKENS) {
    let at = text.indexOf(token);
    while (at >= 0 && at < cut && text.slice(0, at).trim() === "")
      at = text.indexOf(token, at + token.length);
    if (at >= 0 && at < cut) cut = at;
  }
  text = text.slice(0, cut);
  for (const token of STOP_TOKENS) if (text.includes(token)) text = text.split(token).join(" ");
  return text;
}

/**
 * The final answer of a response and how it was found, or null. See the order of preference at
 * the top of this file; `mode` strict stops after the marked answers.
 */
export function extractFinalAnswer(response: string, options: ExtractOptions = {}): Extraction | null {
  const maxChars = options.maxChars ?? DEFAULT_MAX_RESPONSE_CHARS;
  if (typeof response !== "string" || response.length === 0 || response.length > maxChars) return null;
  const text = answerRegion(response);
  const marked = markedAnswer(text);
  // an empty \boxed{} is an answer left blank, in either mode
  if (marked === "empty") return null;
  if (marked !== null || (options.mode ?? DEFAULT_REWARD_MODE) === "strict") return marked;
  // thinking that never closed, or a box never closed (a cut-off response): working, no answer
  if (unfinishedThinking(response) || /\\(?:boxed|fbox)\s*\{/.test(text)) return null;
  return freeForm(text, MAX_BARE_CHARS);
}

/** the last span with the spans right before it that only "and"/"or"/"," separate: "$-2$ and $1$" */
function joinedSpans(body: string, spans: readonly Span[], last: Span): string {
  const parts = [last.content.trim()];
  let k = spans.indexOf(last);
  let current = last;
  while (parts.length < 10 && k > 0) {
    const previous = spans[--k]!;
    if (
      previous.malformed ||
      previous.content.trim() === "" ||
      !isConnector(body.slice(previous.stop, current.start))
    )
      break;
    parts.unshift(previous.content.trim());
    current = previous;
  }
  return parts.join(", ");
}

const APPROXIMATELY = /^[^\d]{0,40}?\b(?:approximately|approx|about|roughly|around|nearly)\b[^\d]{0,12}\d/i;

/** lenient steps 3-6 on text with no box and no marker */
function freeForm(text: string, maxBare: number, anyLines = false): Extraction | null {
  const choice = choiceAfterAnswer(text);
  if (choice !== null) return { answer: choice, kind: "choice" };
  const body = dropChatter(text);
  const bare = body
    .trim()
    .replace(/(?<!\.)\.$/, "")
    .trim();
  if (isBareAnswer(bare, maxBare, anyLines)) return { answer: bare, kind: "bare" };
  const spans = mathSpans(body);
  // numbers inside math (even malformed math) are never plain-text answers
  const plain = plainText(body, spans);
  let last: Span | undefined;
  for (let k = spans.length - 1; k >= 0 && !last; k--) {
    const span = spans[k]!;
    if (!span.malformed && span.content.trim() !== "") last = span;
  }
  if (last) {
    // a number in plain text after the last span is the later, better candidate, unless it only
    // approximates the span ("$\frac{1}{6}$, about 16.7%")
    const after = plain.slice(last.stop);
    if (!/\d/.test(after) || APPROXIMATELY.test(after))
      return { answer: withPercent(joinedSpans(body, spans, last), body.slice(last.stop)), kind: "math" };
  }
  const number = lastNumber(plain);
  if (number !== null) return { answer: number, kind: "last_number" };
  return last ? { answer: last.content.trim(), kind: "math" } : null;
}

/** "$28$ %" / "$28$ percent": a percent sign written after the math span */
function withPercent(content: string, after: string): string {
  return PERCENT_AFTER.test(after) && !/%\s*$/.test(content) ? `${content}\\%` : content;
}

/**
 * The final answer of a response, or null (see extractFinalAnswer). `options` may be the longest
 * response considered, as before modes existed.
 */
export function extractAnswer(response: string, options: ExtractOptions | number = {}): string | null {
  const opts = typeof options === "number" ? { maxChars: options } : options;
  return extractFinalAnswer(response, opts)?.answer ?? null;
}

/**
 * A gold answer as the grader compares it: the boxed or marked answer of a worked solution, a
 * bare answer as written ("$x \in [-2,7]$", "\text{Evelyn}"), else what a lenient reader finds
 * in it; the gold as written when nothing is found. Golds are trusted text, so no size cap
 * applies to the bare form.
 */
export function extractGold(gold: string, maxChars = DEFAULT_MAX_RESPONSE_CHARS): Extraction {
  if (gold.length === 0 || gold.length > maxChars) return { answer: gold, kind: "whole" };
  const text = answerRegion(gold);
  const all = allBoxes(text);
  if (all !== null) return { answer: all, kind: "boxed" };
  const marked = markedAnswer(text);
  if (marked !== null && marked !== "empty") return marked;
  if (isBareAnswer(text, maxChars, true)) return { answer: gold.trim(), kind: "whole" };
  return freeForm(text, maxChars, true) ?? { answer: gold.trim(), kind: "whole" };
}
