import { z } from "zod";
import type { Headers, OutgoingMessage } from "./bus.ts";
import { DeadLetterError } from "./errors.ts";
import type { CloudEvent } from "./event-definition.ts";

/**
 * CloudEvents 1.0 as questa carries them.
 * - binary mode (Kafka protocol binding) on the bus: context attributes as `ce_<name>` headers,
 *   `datacontenttype` as the `content-type` header, `data` as the message value (JSON bytes), the
 *   `partitionkey` extension as the message key;
 * - structured mode (one JSON object per event) in local event logs and `questa events` output.
 * Questa requires `subject`, `time` and JSON data on every event it reads; other extensions are
 * checked for valid names and dropped.
 */

const attributeName = /^[a-z0-9]{1,20}$/;
const rfc3339 = z.iso.datetime({ offset: true });

/** The CloudEvents 1.0 envelope in structured mode (spec-level rules only). */
export const CloudEventEnvelopeSchema = z
  .object({
    specversion: z.literal("1.0"),
    id: z.string().min(1),
    source: z.string().min(1),
    type: z.string().min(1),
    subject: z.string().min(1).optional(),
    time: rfc3339.optional(),
    datacontenttype: z.string().min(1).optional(),
    dataschema: z.string().min(1).optional(),
    data: z.unknown().optional(),
    data_base64: z.string().optional(),
  })
  .catchall(z.union([z.string(), z.number(), z.boolean()]));
export type CloudEventEnvelope = z.infer<typeof CloudEventEnvelopeSchema>;

/** What questa requires on top of the envelope: subject, time and JSON data. */
export const QuestaCloudEventSchema = z.object({
  specversion: z.literal("1.0"),
  id: z.string().min(1),
  source: z.string().min(1),
  type: z.string().min(1),
  subject: z.string().min(1),
  time: rfc3339,
  datacontenttype: z.literal("application/json"),
  partitionkey: z.string().optional(),
  data: z.unknown(),
});

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: DeadLetterError };

const jsonContentType = "application/json";
const knownAttributes = new Set([
  "specversion",
  "id",
  "source",
  "type",
  "subject",
  "time",
  "datacontenttype",
  "dataschema",
  "data",
  "data_base64",
]);

function invalid(message: string): { ok: false; error: DeadLetterError } {
  return { ok: false, error: new DeadLetterError("invalid_cloudevent", message) };
}

/**
 * Largest event decoded (value bytes in binary mode, characters in structured mode). Questa's
 * events carry object references, not payloads, and are a few KiB; this bounds what a hostile or
 * broken producer can make a decoder parse.
 */
export const MAX_EVENT_BYTES = 16 * 1024 * 1024;
/** problems named in one dead-letter reason before "and N more" */
const MAX_DESCRIBED = 5;

function firstFew(parts: readonly string[]): string {
  const shown = parts.slice(0, MAX_DESCRIBED).join("; ");
  return parts.length > MAX_DESCRIBED ? `${shown}; and ${parts.length - MAX_DESCRIBED} more` : shown;
}

function describeIssues(error: z.ZodError, prefix: (path: string) => string): string {
  return firstFew(
    error.issues.map(
      (issue) => `${prefix(issue.path.map(String).join(".").slice(0, 200) || "(root)")}: ${issue.message}`,
    ),
  );
}

/** Checks extension names and the questa-required attributes; returns the typed event. */
function toQuestaEvent(envelope: Record<string, unknown>, where: (path: string) => string) {
  const badNames = Object.keys(envelope).filter(
    (name) => !knownAttributes.has(name) && !attributeName.test(name),
  );
  if (badNames.length > 0) {
    return invalid(
      `extension attribute names must be 1-20 lowercase letters or digits: ${firstFew(badNames.map((n) => where(n.slice(0, 40))))}`,
    );
  }
  const parsed = QuestaCloudEventSchema.safeParse(envelope);
  if (!parsed.success) return invalid(describeIssues(parsed.error, where));
  const { partitionkey, ...rest } = parsed.data;
  const event: CloudEvent<unknown> =
    partitionkey === undefined ? { ...rest, data: rest.data } : { ...rest, data: rest.data, partitionkey };
  return { ok: true as const, value: event };
}

/** The bus message (binary mode) carrying `event`; its key is the `partitionkey` extension. */
export function toBinaryMessage(event: CloudEvent<unknown>): OutgoingMessage {
  const headers: Headers = {
    ce_specversion: event.specversion,
    ce_id: event.id,
    ce_source: event.source,
    ce_type: event.type,
    ce_subject: event.subject,
    ce_time: event.time,
    "content-type": event.datacontenttype,
  };
  if (event.partitionkey !== undefined) headers.ce_partitionkey = event.partitionkey;
  const value = new TextEncoder().encode(JSON.stringify(event.data));
  return event.partitionkey === undefined ? { headers, value } : { key: event.partitionkey, headers, value };
}

/**
 * Reads a binary-mode CloudEvent from bus headers and value. Failures are values (a
 * `DeadLetterError` naming the header or field), since a malformed message is poison, not a bug.
 */
export function parseBinaryMessage(message: {
  headers: Headers;
  value: Uint8Array;
  key?: string | undefined;
}): ParseResult<CloudEvent<unknown>> {
  const envelope: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(message.headers)) {
    const lower = name.toLowerCase();
    if (lower === "content-type") envelope.datacontenttype = value;
    else if (lower.startsWith("ce_")) envelope[lower.slice(3)] = value;
  }
  const headerName = (path: string) =>
    path === "datacontenttype" ? "header content-type" : path === "data" ? "value" : `header ce_${path}`;
  if (envelope.specversion === undefined)
    return invalid("header ce_specversion is missing (not a CloudEvent)");
  const contentType = envelope.datacontenttype;
  if (typeof contentType === "string" && !isJsonContentType(contentType)) {
    return invalid(
      `header content-type is ${JSON.stringify(contentType)}; questa events carry application/json`,
    );
  }
  if (typeof contentType === "string") envelope.datacontenttype = jsonContentType;
  if (message.value.byteLength > MAX_EVENT_BYTES) {
    return invalid(`value is ${message.value.byteLength} bytes, over the limit of ${MAX_EVENT_BYTES}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(message.value);
  } catch {
    return invalid("value is not valid UTF-8 (expected JSON data)");
  }
  try {
    envelope.data = JSON.parse(text);
  } catch (error) {
    return invalid(`value is not valid JSON: ${(error as Error).message}`);
  }
  const result = toQuestaEvent(envelope, headerName);
  if (!result.ok) return result;
  if (
    message.key !== undefined &&
    result.value.partitionkey !== undefined &&
    message.key !== result.value.partitionkey
  ) {
    return invalid(
      `message key ${JSON.stringify(message.key)} differs from header ce_partitionkey ${JSON.stringify(result.value.partitionkey)}`,
    );
  }
  return result;
}

/** Same as `parseBinaryMessage`, throwing the `DeadLetterError`. */
export function fromBinaryMessage(message: {
  headers: Headers;
  value: Uint8Array;
  key?: string | undefined;
}) {
  const result = parseBinaryMessage(message);
  if (!result.ok) throw result.error;
  return result.value;
}

/** One event in structured mode, as one line of JSON (no trailing newline). */
export function toStructured(event: CloudEvent<unknown>): string {
  return JSON.stringify(event);
}

/** Reads a structured-mode event from JSON text or an already parsed object. */
export function parseStructured(input: string | unknown): ParseResult<CloudEvent<unknown>> {
  let value: unknown = input;
  if (typeof input === "string" && input.length > MAX_EVENT_BYTES) {
    return invalid(`structured event is ${input.length} characters, over the limit of ${MAX_EVENT_BYTES}`);
  }
  if (typeof input === "string") {
    try {
      value = JSON.parse(input);
    } catch (error) {
      return invalid(`structured event is not valid JSON: ${(error as Error).message}`);
    }
  }
  const envelope = CloudEventEnvelopeSchema.safeParse(value);
  if (!envelope.success) return invalid(describeIssues(envelope.error, (p) => p));
  if (envelope.data.data_base64 !== undefined) return invalid("data_base64: questa events carry JSON data");
  if (envelope.data.datacontenttype !== undefined && isJsonContentType(envelope.data.datacontenttype)) {
    envelope.data.datacontenttype = jsonContentType;
  }
  return toQuestaEvent(envelope.data, (p) => p);
}

function isJsonContentType(contentType: string): boolean {
  const mediaType = contentType.split(";")[0]?.trim().toLowerCase();
  return mediaType === jsonContentType;
}
