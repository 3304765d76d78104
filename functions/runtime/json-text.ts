/**
 * A JSON syntax error described without quoting the text: V8's messages quote the first bytes of
 * the input ("Unexpected token 'A', \"AKIA…\" is not valid JSON"), and the input may be a file a
 * spec pointed at (a mounted secret), whose bytes must not reach logs, statuses or dead letters.
 */
export function describeJsonError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/Unexpected end of JSON input/.test(message)) return "not JSON (it ends too early)";
  const position = /at position (\d+)/.exec(message)?.[1];
  return position === undefined ? "not JSON" : `not JSON (at character ${position})`;
}
