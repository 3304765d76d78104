import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../test/temp-dir.ts";
import { MAX_GRADE_LINE_BYTES } from "./grade-command.ts";
import { main } from "./main.ts";
import { captureIO } from "./test-io.ts";

async function grade(args: string[], cwd = process.cwd()) {
  const capture = captureIO(cwd);
  const code = await main(["grade", ...args], capture.io);
  return { code, out: capture.stdout(), err: capture.stderr() };
}

const rows = (text: string): unknown[] =>
  text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));

describe("questa grade", () => {
  it("grades one response given on the command line, with its reward", async () => {
    const { code, out } = await grade(["--gold", "025", "--response", "So the answer is \\boxed{25}."]);
    expect(code).toBe(0);
    expect(rows(out)).toEqual([
      { equal: true, extracted: "25", reason: "correct", mode: "lenient", extractedBy: "boxed", reward: 5 },
    ]);
  });

  it("reads free-form answers by default and only marked ones with --mode strict", async () => {
    const response = "Adding the parts gives 12 + 13 = 25.";
    const lenient = await grade(["--gold", "25", "--response", response]);
    expect(lenient.code).toBe(0);
    expect(rows(lenient.out)).toEqual([
      {
        equal: true,
        extracted: "25",
        reason: "correct",
        mode: "lenient",
        extractedBy: "last_number",
        reward: 5,
      },
    ]);
    const strict = await grade(["--gold", "25", "--response", response, "--mode", "strict"]);
    expect(strict.code).toBe(0);
    expect(rows(strict.out)).toEqual([
      { equal: false, extracted: null, reason: "no_answer", mode: "strict", reward: 0 },
    ]);
  });

  it("shows --scale in the reward and says why a parse error happened", async () => {
    const scaled = await grade(["--gold", "7", "--response", "\\boxed{7}", "--scale", "1.5"]);
    expect(rows(scaled.out)).toEqual([expect.objectContaining({ equal: true, reward: 1.5 })]);
    const long = await grade(["--gold", "7", "--response", `\\boxed{${"1+".repeat(3000)}1}`]);
    expect(rows(long.out)).toEqual([
      expect.objectContaining({
        reason: "parse_error",
        reward: 0,
        detail: "answer longer than 4000 characters",
      }),
    ]);
  });

  it("grades a JSONL file relative to the working directory, one row per line with its number", async () => {
    const dir = testTempDir("questa-grade-");
    writeFileSync(
      join(dir, "cases.jsonl"),
      [
        JSON.stringify({ gold: "\\frac12", pred: "0.5" }),
        JSON.stringify({ gold: "7", response: "I think \\boxed{8}" }),
        JSON.stringify({ gold: "7", response: "no idea" }),
        "",
      ].join("\n"),
    );
    const { code, out } = await grade(["cases.jsonl"], dir);
    expect(code).toBe(0);
    expect(rows(out)).toEqual([
      { line: 1, equal: true, extracted: "0.5", reason: "correct", mode: "lenient", reward: 5 },
      {
        line: 2,
        equal: false,
        extracted: "8",
        reason: "mismatch",
        mode: "lenient",
        extractedBy: "boxed",
        reward: 0,
      },
      { line: 3, equal: false, extracted: null, reason: "no_answer", mode: "lenient", reward: 0 },
    ]);
  });

  it("gives bad lines an error row with their line number, on stdout and stderr, and exits 1", async () => {
    const dir = testTempDir("questa-grade-");
    writeFileSync(
      join(dir, "bad.jsonl"),
      [
        JSON.stringify({ gold: ["4"], pred: "4" }),
        "not json",
        "",
        JSON.stringify({ gold: "4", pred: "4" }),
        `{"gold":"1","pred":"${"9".repeat(MAX_GRADE_LINE_BYTES)}"}`,
        JSON.stringify({ gold: "2", pred: "2" }), // the last line, without a newline
      ].join("\n"),
    );
    const { code, out, err } = await grade(["bad.jsonl"], dir);
    expect(code).toBe(1);
    expect(err).toMatch(/bad\.jsonl:1: needs string fields/);
    expect(err).toMatch(/bad\.jsonl:2: not JSON/);
    expect(err).toMatch(/bad\.jsonl:5: longer than 8388608 bytes/);
    expect(rows(out).map((r) => [(r as { line: number }).line, "error" in (r as object)])).toEqual([
      [1, true],
      [2, true],
      [4, false],
      [5, true],
      [6, false],
    ]);
  });

  it("exits 2 with the reason and the usage on a wrong command line", async () => {
    for (const args of [
      [],
      ["--gold", "1"],
      ["--bogus"],
      ["a.jsonl", "--gold", "1", "--response", "x"],
      ["a.jsonl", "--mode", "loose"],
      ["a.jsonl", "--scale", "0"],
      ["a.jsonl", "--scale", "0x10"],
    ]) {
      const { code, err, out } = await grade(args);
      expect(code, args.join(" ")).toBe(2);
      expect(err).toMatch(/questa grade: .*\nusage:/);
      expect(out).toBe("");
    }
  });

  it("exits 1 with one line when the file cannot be read or is a directory", async () => {
    const missing = await grade(["missing-file-questa.jsonl"], tmpdir());
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(
      "questa grade: missing-file-questa.jsonl: cannot read: ENOENT (no such file or directory)\n",
    );
    const dir = testTempDir("questa-grade-");
    mkdirSync(join(dir, "answers"));
    const directory = await grade(["answers"], dir);
    expect(directory.code).toBe(1);
    expect(directory.err).toBe("questa grade: answers: is a directory (fix: give a .jsonl file)\n");
  });
});
