/** One line of a text stream: its text, or why it has none (too long, not UTF-8). */
export type TextLine = { number: number; text: string } | { number: number; error: string };

/**
 * Splits a byte stream into numbered lines (`\n` or `\r\n`) holding at most `maxLineBytes` of one
 * line in memory: a longer line is skipped to its end and reported as an error line, so one huge
 * line costs no more than a short one. A last line without a newline is a line too.
 */
export async function* readLines(
  chunks: AsyncIterable<Uint8Array | string>,
  maxLineBytes: number,
): AsyncGenerator<TextLine> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let parts: Uint8Array[] = [];
  let length = 0;
  let overflow = false;
  let number = 0;
  const finish = (): TextLine => {
    number++;
    if (overflow) {
      overflow = false;
      parts = [];
      length = 0;
      return { number, error: `longer than ${maxLineBytes} bytes` };
    }
    const bytes = Buffer.concat(parts, length);
    parts = [];
    length = 0;
    try {
      const text = decoder.decode(bytes);
      return { number, text: text.endsWith("\r") ? text.slice(0, -1) : text };
    } catch {
      return { number, error: "not UTF-8 text" };
    }
  };
  const take = (bytes: Uint8Array) => {
    if (overflow || bytes.length === 0) return;
    if (length + bytes.length > maxLineBytes) {
      overflow = true;
      parts = [];
      length = 0;
      return;
    }
    parts.push(bytes);
    length += bytes.length;
  };
  for await (const chunk of chunks) {
    let bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    for (let end = bytes.indexOf(10); end !== -1; end = bytes.indexOf(10)) {
      take(bytes.subarray(0, end));
      yield finish();
      bytes = bytes.subarray(end + 1);
    }
    take(bytes);
  }
  if (length > 0 || overflow) yield finish();
}
