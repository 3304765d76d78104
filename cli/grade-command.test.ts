import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runGrade } from "./grade-command.ts";
import type { CliIO } from "./io.ts";

function fakeIO(cwd = process.cwd()): CliIO & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    cwd,
    env: {},
    interrupted: new Promise<void>(() => {}),
    isTTY: false,
  };
}

const lines = (chunks: string[]): unknown[] =>
  chunks
    .join("")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));

describe("questa grade", () => {
  it("grades one response given on the command line", async () => {
    const io = fakeIO();
    const code = await runGrade(["--gold", "025", "--response", "So the answer is \\boxed{25}."], io);
    expect(code).toBe(0);
    expect(lines(io.out)).toEqual([
      { equal: true, extracted: "25", reason: "correct", mode: "lenient", extractedBy: "boxed" },
    ]);
  });

  it("reads free-form answers by default and only marked ones with --mode strict", async () => {
    const response = "Adding the parts gives 12 + 13 = 25.";
    const lenient = fakeIO();
    expect(await runGrade(["--gold", "25", "--response", response], lenient)).toBe(0);
    expect(lines(lenient.out)).toEqual([
      { equal: true, extracted: "25", reason: "correct", mode: "lenient", extractedBy: "last_number" },
    ]);
    const strict = fakeIO();
    expect(await runGrade(["--gold", "25", "--response", response, "--mode", "strict"], strict)).toBe(0);
    expect(lines(strict.out)).toEqual([
      { equal: false, extracted: null, reason: "no_answer", mode: "strict" },
    ]);
  });

  it("grades a JSONL file relative to the working directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-grade-"));
    writeFileSync(
      join(dir, "cases.jsonl"),
      [
        JSON.stringify({ gold: "\\frac12", pred: "0.5" }),
        JSON.stringify({ gold: "7", response: "I think \\boxed{8}" }),
        JSON.stringify({ gold: "7", response: "no idea" }),
        "",
      ].join("\n"),
    );
    const io = fakeIO(dir);
    const code = await runGrade(["cases.jsonl"], io);
    expect(code).toBe(0);
    expect(lines(io.out)).toEqual([
      { equal: true, extracted: "0.5", reason: "correct", mode: "lenient" },
      { equal: false, extracted: "8", reason: "mismatch", mode: "lenient", extractedBy: "boxed" },
      { equal: false, extracted: null, reason: "no_answer", mode: "lenient" },
    ]);
  });

  it("reports malformed lines by line number and exits 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-grade-"));
    writeFileSync(join(dir, "bad.jsonl"), `${JSON.stringify({ gold: ["4"], pred: "4" })}\nnot json\n`);
    const io = fakeIO(dir);
    expect(await runGrade(["bad.jsonl"], io)).toBe(1);
    expect(io.err.join("")).toMatch(/bad\.jsonl:1: needs string fields/);
    expect(io.err.join("")).toMatch(/bad\.jsonl:2: not JSON/);
  });

  it("exits 2 with a message on bad usage", async () => {
    for (const args of [
      [],
      ["--gold", "1"],
      ["--bogus"],
      ["a.jsonl", "--gold", "1", "--response", "x"],
      ["a.jsonl", "--mode", "loose"],
    ]) {
      const io = fakeIO();
      expect(await runGrade(args, io)).toBe(2);
      expect(io.err.join("")).toMatch(/questa grade: .*\nusage:/);
    }
  });

  it("exits 1 when the file cannot be read", async () => {
    const io = fakeIO(tmpdir());
    expect(await runGrade(["missing-file-questa.jsonl"], io)).toBe(1);
    expect(io.err.join("")).toMatch(/cannot read/);
  });
});
