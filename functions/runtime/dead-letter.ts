import { z } from "zod";
import type { BusMessage } from "./bus.ts";
import { ErrorAction, errorMessage, InputError } from "./errors.ts";
import { defineEvent } from "./event-definition.ts";

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
} as const;
export type DeadLetterReason = (typeof DeadLetterReason)[keyof typeof DeadLetterReason];

const textOrBase64 = z.object({
  encoding: z.enum(["utf8", "base64"]),
  data: z.string(),
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
        value: textOrBase64.describe("the value as UTF-8 text when it is valid UTF-8, else base64"),
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

/** The original bytes of a dead-lettered message, for replaying it after a fix. */
export function decodeValue(value: { encoding: "utf8" | "base64"; data: string }): Uint8Array {
  return value.encoding === "utf8"
    ? new TextEncoder().encode(value.data)
    : new Uint8Array(Buffer.from(value.data, "base64"));
}

export function deadLetterRecord(input: {
  functionName: string;
  group: string;
  reason: DeadLetterReason;
  attempts: number;
  time: string;
  message: BusMessage;
  error: unknown;
}): DeadLetterRecord {
  const { message, error } = input;
  const described = describeError(error);
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
      ...(message.key === undefined ? {} : { key: message.key }),
      headers: { ...message.headers },
      value: encodeValue(message.value),
      timestamp: message.timestamp,
    },
    error: described,
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
  const base = { code, message: errorMessage(error), action };
  if (error instanceof InputError) {
    return {
      ...base,
      issues: error.issues.map((i) =>
        i.hint === undefined ? { path: i.path, message: i.message } : { ...i },
      ),
    };
  }
  return base;
}
