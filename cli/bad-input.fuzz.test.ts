import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeResourceText, RESOURCE_LIMITS, validateYaml } from "../functions/contracts/validate.ts";
import { MAX_EVENT_BYTES, parseBinaryMessage, parseStructured } from "../functions/runtime/cloudevents.ts";
import { seededRandom } from "../functions/runtime/random.ts";
import { testTempDir } from "../test/temp-dir.ts";
import { MAX_PRINTED_ISSUES } from "./io.ts";
import { main } from "./main.ts";
import { captureIO } from "./test-io.ts";

/**
 * Seeded fuzzing of everything that reads user bytes: random bytes, deep nesting and documents
 * at and over the size limits go to `validate`, `grade`, `events` and the event decoders. Each
 * must answer (exit 0, 1 or 2 for the CLI; a result for the functions), never throw, and keep its
 * output within the documented caps. The work is bounded by the input caps, not by a clock.
 */
const random = seededRandom("questa-cli-fuzz");
const bytes = (n: number) => Uint8Array.from({ length: n }, () => random.int(256));
const pick = <T>(items: readonly T[]): T => items[random.int(items.length)] as T;
/** printable-ish YAML/JSON soup: the characters that steer the parsers */
const soup = (n: number) =>
  Array.from({ length: n }, () =>
    pick([
      "[",
      "]",
      "{",
      "}",
      ":",
      "-",
      " ",
      "\n",
      "&a",
      "*a",
      "'",
      '"',
      "a",
      "1",
      "#",
      ",",
      "---\n",
      "\t",
      "!!str",
      "? ",
    ]),
  ).join("");

function inputs(): { name: string; content: Uint8Array | string }[] {
  const cases: { name: string; content: Uint8Array | string }[] = [];
  for (let i = 0; i < 40; i++) cases.push({ name: `bytes-${i}`, content: bytes(random.int(4096)) });
  for (let i = 0; i < 40; i++) cases.push({ name: `soup-${i}`, content: soup(random.int(2000)) });
  for (const depth of [63, 64, 65, 1000, 100_000]) {
    cases.push({ name: `flow-${depth}`, content: `${"[".repeat(depth)}${"]".repeat(depth)}` });
    cases.push({ name: `map-${depth}`, content: `${"{a: ".repeat(depth)}1${"}".repeat(depth)}` });
    cases.push({ name: `open-${depth}`, content: "[".repeat(depth) });
  }
  cases.push({
    name: "block-deep",
    content: Array.from({ length: 2000 }, (_, i) => `${" ".repeat(i)}a:`).join("\n"),
  });
  const limit = RESOURCE_LIMITS.maxBytes;
  cases.push({ name: "list-at-limit", content: "- 1\n".repeat(limit / 4) });
  cases.push({ name: "flow-at-limit", content: `[${"1,".repeat(limit / 2 - 1)}]` });
  cases.push({
    name: "keys-at-limit",
    content: Array.from({ length: limit / 16 }, (_, i) => `k${String(i).padStart(10, "0")}: 1\n`)
      .join("")
      .slice(0, limit),
  });
  cases.push({ name: "over-limit", content: "- 1\n".repeat(limit) });
  cases.push({ name: "documents", content: "a: 1\n---\n".repeat(5000) });
  cases.push({
    name: "aliases",
    content: `a: &a [1]\n${Array.from({ length: 5000 }, (_, i) => `k${i}: *a`).join("\n")}`,
  });
  return cases;
}

describe("bad input fuzz", () => {
  const cases = inputs();

  it("validateYaml answers every input within its limits", () => {
    for (const { name, content } of cases) {
      const raw = typeof content === "string" ? new TextEncoder().encode(content) : content;
      const decoded = decodeResourceText(raw);
      if (!decoded.ok) {
        expect(decoded.issue.path, name).toBe("(file)");
        continue;
      }
      const results = validateYaml(decoded.text);
      expect(results.length, name).toBeGreaterThan(0);
      expect(results.length, name).toBeLessThanOrEqual(RESOURCE_LIMITS.maxDocuments + 1);
      if (raw.length > RESOURCE_LIMITS.maxBytes) expect(results[0]?.result.ok, name).toBe(false);
    }
  });

  it("questa validate exits 0, 1 or 2 with bounded output for every input", async () => {
    const dir = testTempDir("questa-fuzz-");
    for (const { name, content } of cases) writeFileSync(join(dir, `${name}.yaml`), content);
    for (const { name } of cases) {
      const capture = captureIO(dir);
      const code = await main(["validate", `${name}.yaml`], capture.io);
      expect([0, 1], name).toContain(code);
      const lines = capture.stderr().split("\n").length + capture.stdout().split("\n").length;
      expect(lines, name).toBeLessThanOrEqual(
        (RESOURCE_LIMITS.maxDocuments + 1) * (MAX_PRINTED_ISSUES + 2) + 2,
      );
      expect(capture.stderr(), name).not.toMatch(/\n\s+at /);
    }
  });

  it("questa grade gives every line of a random file one row with its number, or an error", async () => {
    const dir = testTempDir("questa-fuzz-grade-");
    for (let i = 0; i < 20; i++) {
      const lines = Array.from({ length: 1 + random.int(20) }, () =>
        pick([
          () => JSON.stringify({ gold: soup(random.int(50)), response: soup(random.int(500)) }),
          () => JSON.stringify({ gold: soup(10), pred: `\\boxed{${"{".repeat(random.int(500))}}` }),
          () => Buffer.from(bytes(random.int(200))).toString("latin1"),
          () => soup(random.int(100)),
          () => `[${"[".repeat(random.int(10_000))}`,
        ])(),
      );
      writeFileSync(join(dir, `g${i}.jsonl`), lines.join("\n"));
      const capture = captureIO(dir);
      const code = await main(["grade", `g${i}.jsonl`], capture.io);
      expect([0, 1]).toContain(code);
      const rows = capture
        .stdout()
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { line: number; error?: string; reward?: number });
      const numbers = rows.map((r) => r.line);
      expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
      expect(new Set(numbers).size).toBe(numbers.length);
      for (const r of rows) expect(r.error !== undefined || typeof r.reward === "number").toBe(true);
      expect(code === 1).toBe(rows.some((r) => r.error !== undefined));
    }
  });

  it("the event decoders and questa events answer random bytes, deep JSON and huge values", async () => {
    const values: Uint8Array[] = [
      ...Array.from({ length: 50 }, () => bytes(random.int(2000))),
      new TextEncoder().encode(`${"[".repeat(200_000)}${"]".repeat(200_000)}`),
      new TextEncoder().encode(JSON.stringify({ a: "x".repeat(1000) })),
      new Uint8Array(MAX_EVENT_BYTES + 1),
    ];
    for (const value of values) {
      const headers: Record<string, string> = {
        ce_specversion: "1.0",
        ce_id: "id",
        ce_source: "/s",
        ce_type: "t",
        ce_subject: "s",
        ce_time: "2026-01-01T00:00:00Z",
        "content-type": "application/json",
      };
      for (let i = 0; i < random.int(50); i++) headers[`ce_${soup(5)}`] = soup(5);
      const binary = parseBinaryMessage({ headers, value });
      if (!binary.ok) expect(binary.error.message.length).toBeLessThan(4000);
      const structured = parseStructured(Buffer.from(value).toString("utf8"));
      if (!structured.ok) expect(structured.error.message.length).toBeLessThan(4000);
    }
    const many = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`Bad-${i}`, 1]));
    const wide = parseStructured({ specversion: "1.0", id: "i", source: "s", type: "t", ...many });
    expect(wide.ok).toBe(false);
    if (!wide.ok) expect(wide.error.message).toMatch(/and 9995 more$/);

    const dir = testTempDir("questa-fuzz-events-");
    mkdirSync(join(dir, "events"));
    writeFileSync(
      join(dir, "events", "a.jsonl"),
      Buffer.concat(values.slice(0, 52).map((v) => Buffer.concat([Buffer.from(v), Buffer.from("\n")]))),
    );
    const capture = captureIO(dir);
    expect(await main(["events", "."], capture.io)).toBe(0);
    expect(capture.stderr().split("\n").length).toBeLessThanOrEqual(24);
  });
});
