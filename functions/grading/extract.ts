/**
 * Final-answer extraction from a model response. Every scan is linear (indexOf / lastIndexOf and
 * single passes), so a megabyte response costs milliseconds, never a regex blow-up.
 */

export const DEFAULT_MAX_RESPONSE_CHARS = 1_000_000;

const BOX_COMMANDS = ["\\boxed", "\\fbox"];

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
        if (m) return { content: m[0], start: at, stop: j + m[0].length };
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

/** text allowed between boxes that list several answers: "\boxed{1} and \boxed{2}", "$\boxed{1}$, $\boxed{2}$" */
function isConnector(gap: string): boolean {
  if (gap.length > 40) return false;
  const word = gap.replace(/\\[()[\]]|\\q?quad|\\,|[\s$.,;]/g, "").toLowerCase();
  return (
    word === "" || word === "and" || word === "or" || word === "&" || /^\\text\{(?:and|or)\}$/.test(word)
  );
}

/** the final box, joined with the boxes right before it when only connectors separate them */
function finalBoxes(text: string): string | null {
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
  return parts.join(", ");
}

/** the answer after "answer is" / "answer:" up to the end of the sentence */
function afterMarker(response: string, lower: string): string | null {
  let best = -1;
  let bestLen = 0;
  for (const marker of ["answer is", "answer:", "answer :"]) {
    const i = lower.lastIndexOf(marker);
    if (i > best) {
      best = i;
      bestLen = marker.length;
    }
  }
  if (best < 0) return null;
  let rest = response.slice(best + bestLen, best + bestLen + 2000);
  rest = rest.replace(/^[\s*]*[:=]?[\s*]*/, "");
  const newline = rest.indexOf("\n");
  if (newline >= 0) rest = rest.slice(0, newline);
  rest = cutSentence(rest).trim();
  // markdown emphasis around the answer: **17**
  rest = rest.replace(/^\*+|\*+$/g, "").trim();
  return rest.length > 0 ? rest : null;
}

/** cuts at the first sentence end outside math: ". " or a final "." (decimal points survive) */
function cutSentence(s: string): string {
  let inMath = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === "$") inMath = !inMath;
    if (inMath) continue;
    if (c === "." && (i === s.length - 1 || s[i + 1] === " ")) return s.slice(0, i);
  }
  return s;
}

/** the math block the response ends with: $...$, $$...$$, \(...\), \[...\] */
function finalMath(response: string): string | null {
  let endAt = response.trimEnd().length;
  while (endAt > 0 && (response[endAt - 1] === "." || response[endAt - 1] === "!")) endAt--;
  const trimmed = response.slice(0, endAt).trimEnd();
  const pairs: ReadonlyArray<readonly [string, string]> = [
    ["$$", "$$"],
    ["\\[", "\\]"],
    ["\\(", "\\)"],
    ["$", "$"],
  ];
  for (const [open, close] of pairs) {
    if (!trimmed.endsWith(close)) continue;
    const body = trimmed.slice(0, trimmed.length - close.length);
    const start = body.lastIndexOf(open);
    if (start < 0) continue;
    const inner = body.slice(start + open.length).trim();
    if (open === "$" && inner.includes("$")) continue;
    if (inner.length > 0) return inner;
  }
  return null;
}

/**
 * The final answer of a response: the last \boxed{...}/\fbox{...} (with the boxes just before it
 * when only "and"/","/"or" separate them: several answers), else the text after the last
 * "The answer is"/"Final Answer:", else the math block the response ends with; null when none.
 * Text inside a <think> block is ignored when the block is closed.
 */
export function extractAnswer(response: string, maxChars = DEFAULT_MAX_RESPONSE_CHARS): string | null {
  if (typeof response !== "string" || response.length === 0 || response.length > maxChars) return null;
  const thinkEnd = response.lastIndexOf("</think>");
  const text = thinkEnd >= 0 ? response.slice(thinkEnd + 8) : response;
  const boxed = finalBoxes(text);
  if (boxed !== null) return boxed.length > 0 ? boxed : null;
  const marked = afterMarker(text, text.toLowerCase());
  if (marked !== null) {
    const inner = extractBoxed(marked);
    return inner ?? marked;
  }
  return finalMath(text);
}
