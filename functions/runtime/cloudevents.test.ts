import { describe, expect, it } from "vitest";
import {
  fromBinaryMessage,
  parseBinaryMessage,
  parseStructured,
  toBinaryMessage,
  toStructured,
} from "./cloudevents.ts";
import { DeadLetterError } from "./errors.ts";
import type { CloudEvent } from "./event-definition.ts";

const event: CloudEvent<unknown> = {
  specversion: "1.0",
  id: "0f3c",
  source: "/questa/run-1/rollout",
  type: "dev.questa.rollout.group.v1",
  subject: "run-1",
  time: "2026-01-02T03:04:05.678Z",
  datacontenttype: "application/json",
  partitionkey: "question-7",
  data: { rewards: [0, 5, 5], uri: "file:///tmp/x", nested: { ok: true }, text: "ünï ∑" },
};

function errorOf(result: ReturnType<typeof parseBinaryMessage>): DeadLetterError {
  if (result.ok) throw new Error("expected a parse failure");
  return result.error;
}

describe("CloudEvents binary mode", () => {
  it("maps attributes to ce_ headers, data to JSON bytes and partitionkey to the key", () => {
    const message = toBinaryMessage(event);
    expect(message.key).toBe("question-7");
    expect(message.headers).toEqual({
      ce_specversion: "1.0",
      ce_id: "0f3c",
      ce_source: "/questa/run-1/rollout",
      ce_type: "dev.questa.rollout.group.v1",
      ce_subject: "run-1",
      ce_time: "2026-01-02T03:04:05.678Z",
      ce_partitionkey: "question-7",
      "content-type": "application/json",
    });
    expect(JSON.parse(new TextDecoder().decode(message.value))).toEqual(event.data);
  });

  it("round-trips", () => {
    expect(fromBinaryMessage(toBinaryMessage(event))).toEqual(event);
    const { partitionkey: _unused, ...keyless } = event;
    expect(fromBinaryMessage(toBinaryMessage(keyless))).toEqual(keyless);
  });

  it("accepts a content type with parameters and header names in any case", () => {
    const message = toBinaryMessage(event);
    const headers = Object.fromEntries(Object.entries(message.headers).map(([k, v]) => [k.toUpperCase(), v]));
    headers["CONTENT-TYPE"] = "application/json; charset=utf-8";
    expect(fromBinaryMessage({ ...message, headers })).toEqual(event);
  });

  it("names the header or field that is wrong", () => {
    const message = toBinaryMessage(event);
    const without = (name: string) => {
      const headers = { ...message.headers };
      delete headers[name];
      return { ...message, headers };
    };
    expect(errorOf(parseBinaryMessage(without("ce_specversion"))).message).toBe(
      "header ce_specversion is missing (not a CloudEvent)",
    );
    expect(errorOf(parseBinaryMessage(without("ce_id"))).message).toMatch(/^header ce_id: /);
    expect(errorOf(parseBinaryMessage(without("ce_time"))).message).toMatch(/^header ce_time: /);
    expect(errorOf(parseBinaryMessage(without("content-type"))).message).toMatch(/^header content-type: /);
    const badTime = { ...message, headers: { ...message.headers, ce_time: "yesterday" } };
    expect(errorOf(parseBinaryMessage(badTime)).message).toMatch(/^header ce_time: /);
    const badVersion = { ...message, headers: { ...message.headers, ce_specversion: "0.3" } };
    expect(errorOf(parseBinaryMessage(badVersion)).message).toMatch(/^header ce_specversion: /);
    const xml = { ...message, headers: { ...message.headers, "content-type": "application/xml" } };
    expect(errorOf(parseBinaryMessage(xml)).message).toMatch(/content-type is "application\/xml"/);
    const badJson = { ...message, value: new TextEncoder().encode("{nope") };
    expect(errorOf(parseBinaryMessage(badJson)).message).toMatch(/^value is not valid JSON: /);
    const badExtension = { ...message, headers: { ...message.headers, "ce_Trace-Parent": "x" } };
    expect(errorOf(parseBinaryMessage(badExtension)).message).toMatch(/extension attribute names/);
    const mismatch = { ...message, key: "other" };
    expect(errorOf(parseBinaryMessage(mismatch)).message).toMatch(/differs from header ce_partitionkey/);
    expect(() => fromBinaryMessage(badJson)).toThrow(DeadLetterError);
    expect(errorOf(parseBinaryMessage(badJson)).code).toBe("invalid_cloudevent");
  });
});

describe("CloudEvents structured mode", () => {
  it("round-trips one JSON line", () => {
    const line = toStructured(event);
    expect(line).not.toContain("\n");
    const parsed = parseStructured(line);
    expect(parsed).toEqual({ ok: true, value: event });
    expect(parseStructured(JSON.parse(line))).toEqual({ ok: true, value: event });
  });

  it("binary and structured modes agree", () => {
    const viaBinary = fromBinaryMessage(toBinaryMessage(event));
    const viaStructured = parseStructured(toStructured(viaBinary));
    expect(viaStructured).toEqual({ ok: true, value: event });
  });

  it("reports bad JSON, missing attributes and base64 data", () => {
    const fail = (input: unknown) => {
      const result = parseStructured(input);
      if (result.ok) throw new Error("expected failure");
      return result.error.message;
    };
    expect(fail("{")).toMatch(/not valid JSON/);
    expect(fail({ ...event, id: undefined })).toMatch(/^id: /);
    expect(fail({ ...event, subject: undefined })).toMatch(/^subject: /);
    expect(fail({ ...event, data: undefined, data_base64: "AA==" })).toMatch(/data_base64/);
  });
});
