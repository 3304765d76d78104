import type { z } from "zod";
import { DeadLetterError } from "./errors.ts";
import type { ObjectStore } from "./object-store.ts";

/** JSON text (or its UTF-8 bytes) checked by a schema: the value, or why not */
export type ParsedJson<T> =
  | { ok: true; value: T }
  | { ok: false; problem: "not-json"; error: SyntaxError }
  | { ok: false; problem: "schema"; error: z.ZodError };

export function parseJsonWith<T>(body: Uint8Array | string, schema: z.ZodType<T>): ParsedJson<T> {
  let value: unknown;
  try {
    value = JSON.parse(typeof body === "string" ? body : new TextDecoder().decode(body));
  } catch (error) {
    return { ok: false, problem: "not-json", error: error as SyntaxError };
  }
  const parsed = schema.safeParse(value);
  return parsed.success
    ? { ok: true, value: parsed.data }
    : { ok: false, problem: "schema", error: parsed.error };
}

/**
 * An object (or one line of it) read back from the store, checked by its schema. What we wrote
 * ourselves and now fails to parse is corrupt for good, so redelivery cannot help: a
 * `DeadLetterError` with `code` (`notJsonCode` for bytes that are not JSON at all).
 */
export function parseStoredJson<T>(
  body: Uint8Array | string,
  key: string,
  schema: z.ZodType<T>,
  code: string,
  notJsonCode = code,
): T {
  const parsed = parseJsonWith(body, schema);
  if (parsed.ok) return parsed.value;
  if (parsed.problem === "not-json") {
    throw new DeadLetterError(notJsonCode, `${key} is not JSON`, { cause: parsed.error });
  }
  throw new DeadLetterError(code, `${key}: ${parsed.error.message}`, { cause: parsed.error });
}

/** `parseStoredJson` of the object at `key`; undefined when there is none */
export async function readStoredJson<T>(
  store: ObjectStore,
  key: string,
  schema: z.ZodType<T>,
  code: string,
): Promise<T | undefined> {
  const bytes = await store.get(key);
  return bytes === undefined ? undefined : parseStoredJson(bytes, key, schema, code);
}
