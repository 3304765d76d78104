import { z } from "zod";
import type { BusMessage } from "./bus.ts";
import { ErrorAction, errorMessage, InputError } from "./errors.ts";
import { defineEvent } from "./event-definition.ts";
import { sha256Hex } from "./sha256.ts";

/** Why a message was parked. */
export const DeadLetterReason = {
  /** not a readable CloudEvent (headers, content type, JSON) */
  invalidCloudEvent: "invalid-cloudevent",
  /** a consumed type whose data fails the event's schema */
  invalidData: "invalid-data",
  /** the handler threw a DeadLetterError or InputError */
  nonRetryable: "non-retryable",
  /** the handler kept failing with retryable errors until the attempt limit */
  retriesExhausted: "retries-exhausted",
  /** the handler emitted an event that is undeclared or fails its schema (a handler bug) */
  invalidEmittedEvent: "invalid-emitted-event",
  /** the broker refused an event the handler emitted (too large, invalid): the input cannot succeed as is */
  outputRejected: "output-rejected",
  /** an event of a type no questa component defines (a foreign or mistyped producer) */
  unknownType: "unknown-type",
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

/** bytes of the original value kept in the record itself; the rest goes to the object store */
export const DEAD_LETTER_VALUE_BYTES = 16 * 1024;
/** largest serialised dead-letter event: far under Kafka's default 1 MB message limit */
export const DEAD_LETTER_MAX_BYTES = 256 * 1024;

const textOrBase64 = z.object({
  encoding: z.enum(["utf8", "base64"]),
  /** the value, or its first DEAD_LETTER_VALUE_BYTES bytes when `truncated` */
  data: z.string(),
  size: z.int().min(0).optional().describe("the whole value's size in bytes"),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional()
    .describe("the whole value's sha256"),
  truncated: z.boolean().optional().describe("data holds only the start of the value"),
  stored: z
    .object({ uri: z.string(), key: z.string(), sha256: z.string(), size: z.int().min(0) })
    .optional()
    .describe("where the whole value was written, when it did not fit in the record"),
});

export const DeadLetterRecordSchema = z
  .object({
    function: z.string().describe("the function that gave up on the message"),
    group: z.string().describe("its consumer group"),
    reason: z.enum([
      DeadLetterReason.invalidCloudEvent,
      DeadLetterReason.invalidData,
      DeadLetterReason.nonRetryable,
      DeadLetterReason.retriesExhausted,
      DeadLetterReason.invalidEmittedEvent,
      DeadLetterReason.outputRejected,
      DeadLetterReason.unknownType,
    ]),
    attempts: z.int().min(0).describe("handler attempts made (0 = rejected before the handler)"),
    time: z.iso.datetime({ offset: true }),
    message: z
      .object({
        topic: z.string(),
        partition: z.int().min(0),
        offset: z.string().regex(/^\d+$/),
        key: z.string().optional(),
        headers: z.record(z.string(), z.string()),
        value: textOrBase64.describe(
          "the value (its start, beyond 16 KiB) as UTF-8 text when it is valid UTF-8, else base64; its size and sha256",
        ),
        timestamp: z.number(),
      })
      .describe("the original message, as it was read"),
    error: z.object({
      code: z.string(),
      message: z.string(),
      action: z.enum([ErrorAction.retry, ErrorAction.deadLetter, ErrorAction.reject]),
      issues: z
        .array(z.object({ path: z.string(), message: z.string(), hint: z.string().optional() }))
        .optional(),
    }),
  })
  .describe("a message a function could not process, with the reason");
export type DeadLetterRecord = z.infer<typeof DeadLetterRecordSchema>;

export const DeadLetter = defineEvent({
  type: "dev.questa.dead.letter.v1",
  topic: "dead-letter",
  data: DeadLetterRecordSchema,
  description: "a message parked by a function (poison, schema-invalid or out of retries), with the reason",
});

export function encodeValue(value: Uint8Array): { encoding: "utf8" | "base64"; data: string } {
  try {
    return { encoding: "utf8", data: new TextDecoder("utf-8", { fatal: true }).decode(value) };
  } catch {
    return { encoding: "base64", data: Buffer.from(value).toString("base64") };
  }
}

/**
 * The start of a value (at most `limit` bytes; UTF-8 cut at a character boundary) with the whole
 * value's size and sha256, so any message the broker accepted fits a dead-letter record.
 */
export function valueExcerpt(
  value: Uint8Array,
  limit: number = DEAD_LETTER_VALUE_BYTES,
): DeadLetterRecord["message"]["value"] {
  const truncated = value.byteLength > limit;
  let head = truncated ? value.subarray(0, limit) : value;
  // back off to a character boundary: a cut multi-byte character would read as invalid UTF-8
  if (truncated) {
    let end = head.byteLength;
    while (end > 0 && end > head.byteLength - 4 && (head[end - 1]! & 0xc0) === 0x80) end--;
    if (end > 0 && head[end - 1]! >= 0xc0) end--;
    head = head.subarray(0, end);
  }
  return {
    ...encodeValue(head),
    size: value.byteLength,
    sha256: sha256Hex(value),
    ...(truncated ? { truncated: true } : {}),
  };
}

/** The original bytes of a dead-lettered message (when the record holds all of them), for replaying it after a fix. */
export function decodeValue(value: {
  encoding: "utf8" | "base64";
  data: string;
  truncated?: boolean;
}): Uint8Array {
  if (value.truncated)
    throw new Error("the record holds only the start of the value; read it from value.stored");
  return value.encoding === "utf8"
    ? new TextEncoder().encode(value.data)
    : new Uint8Array(Buffer.from(value.data, "base64"));
}

const MAX_ERROR_MESSAGE = 4096;
const MAX_ISSUES = 100;
const MAX_HEADERS = 32;
const MAX_HEADER_BYTES = 1024;

const cut = (text: string, max: number) =>
  text.length <= max ? text : `${text.slice(0, max)}... (${text.length - max} more characters)`;

export function deadLetterRecord(input: {
  functionName: string;
  group: string;
  reason: DeadLetterReason;
  attempts: number;
  time: string;
  message: BusMessage;
  error: unknown;
  /** where the whole value was written when it is larger than the record keeps */
  stored?: { uri: string; key: string; sha256: string; size: number };
}): DeadLetterRecord {
  const { message, error } = input;
  const described = describeError(error);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers).slice(0, MAX_HEADERS)) {
    headers[cut(name, 256)] = cut(value, MAX_HEADER_BYTES);
  }
  return {
    function: input.functionName,
    group: input.group,
    reason: input.reason,
    attempts: input.attempts,
    time: input.time,
    message: {
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      ...(message.key === undefined ? {} : { key: cut(message.key, MAX_HEADER_BYTES) }),
      headers,
      value: { ...valueExcerpt(message.value), ...(input.stored ? { stored: input.stored } : {}) },
      timestamp: message.timestamp,
    },
    error: described,
  };
}

/**
 * The same record with nothing of the original message but its coordinates, size and sha256, and
 * a short error: what still goes out when the broker refuses the full record.
 */
export function minimalDeadLetterRecord(record: DeadLetterRecord): DeadLetterRecord {
  const { data: _data, ...value } = record.message.value;
  return {
    ...record,
    message: {
      ...record.message,
      headers: {},
      ...(record.message.key === undefined ? {} : { key: cut(record.message.key, 128) }),
      value: { ...value, encoding: "base64", data: "", truncated: true },
    },
    error: { code: record.error.code, message: cut(record.error.message, 512), action: record.error.action },
  };
}

function describeError(error: unknown): DeadLetterRecord["error"] {
  const code =
    typeof error === "object" && error !== null && typeof (error as { code?: unknown }).code === "string"
      ? (error as { code: string }).code
      : error instanceof Error
        ? error.name
        : "unknown";
  const action =
    typeof error === "object" && error !== null && "action" in error
      ? z
          .enum([ErrorAction.retry, ErrorAction.deadLetter, ErrorAction.reject])
          .catch(ErrorAction.retry)
          .parse((error as { action: unknown }).action)
      : ErrorAction.retry;
  const base = { code: cut(code, 256), message: cut(errorMessage(error), MAX_ERROR_MESSAGE), action };
  if (error instanceof InputError) {
    return {
      ...base,
      issues: error.issues.slice(0, MAX_ISSUES).map((i) => ({
        path: cut(i.path, 512),
        message: cut(i.message, 1024),
        ...(i.hint === undefined ? {} : { hint: cut(i.hint, 1024) }),
      })),
    };
  }
  return base;
}
