const THINK_END = "</think>";
const SURROGATE = /[\uD800-\uDFFF]/;

/** Python's `text.split('</think>')[-1]`: the text after the last `</think>`, or all of it. */
export function solutionAfterThink(text: string): string {
  const at = text.lastIndexOf(THINK_END);
  return at < 0 ? text : text.slice(at + THINK_END.length);
}

/** true when the text has UTF-16 surrogates, i.e. code points and code units differ */
export function hasSurrogates(text: string): boolean {
  return SURROGATE.test(text);
}

/**
 * Python's `len(text)`: Unicode code points, not UTF-16 code units (an emoji or a rare CJK
 * character is one character in Python and two units in JavaScript).
 */
export function codePointLength(text: string): number {
  if (!SURROGATE.test(text)) return text.length;
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // a high surrogate followed by a low one is one code point; lone surrogates count alone, as in Python
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}

/** Python's `text[:count]` for a non-negative count: the first `count` code points. */
export function codePointPrefix(text: string, count: number): string {
  if (count <= 0) return "";
  if (!SURROGATE.test(text)) return text.slice(0, count);
  let seen = 0;
  let i = 0;
  while (i < text.length && seen < count) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    i++;
    seen++;
  }
  return text.slice(0, i);
}

/**
 * The official split point: `text[:int(len(text) * p)]`. The product is an IEEE double in both
 * languages and Python's `int()` truncates toward zero, so `Math.trunc` of the same product gives
 * the same count, including products like 0.57 * 100 = 56.99999999999999 that land just below.
 */
export function prefixCount(length: number, ratio: number): number {
  return Math.trunc(length * ratio);
}
