import { InputError } from "./errors.ts";

/**
 * Checks an object key: `/`-separated, relative, no empty, `.` or `..` segments, no NUL or backslash.
 * Keys are built from run names a user chose, so a bad key is an input error, never a path escape.
 */
export function assertObjectKey(key: string): string {
  const problem = objectKeyProblem(key);
  if (problem) {
    throw new InputError("invalid_object_key", [
      { path: "key", message: `${JSON.stringify(key)} ${problem}`, hint: "use a relative a/b/c key" },
    ]);
  }
  return key;
}

export function objectKeyProblem(key: string): string | undefined {
  if (key.length === 0) return "is empty";
  if (key.length > 1024) return "is longer than 1024 characters";
  if (key.startsWith("/")) return "starts with /";
  if (/[\\\0]/.test(key)) return "contains a backslash or NUL";
  for (const segment of key.split("/")) {
    if (segment === "" || segment === "." || segment === "..") return "has an empty, . or .. segment";
  }
  return undefined;
}

/** Turns any text (a run name, a benchmark id) into one safe key segment. */
export function keySegment(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[.-]+/, "");
  return cleaned.length > 0 ? cleaned.slice(0, 200) : "_";
}
