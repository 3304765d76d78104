import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { createInterface } from "node:readline";
import { z } from "zod";
import {
  DEFAULT_REPORT_MODE,
  DEFAULT_REWARD_SCALE,
  type GradeResult,
  type GradingMode,
  GradingModeSchema,
  gradeAnswer,
  gradeResponse,
} from "../functions/grading/index.ts";
import type { CliIO, CommandRun } from "./io.ts";

const USAGE = `usage: questa grade --gold G --response R [--mode strict|lenient] [--scale N]
       questa grade FILE.jsonl [--mode strict|lenient] [--scale N]

Grades model answers against gold answers and prints one JSON line per check:
{"equal":bool,"extracted":string|null,"reason":"correct"|"no_answer"|"mismatch"|"timeout"|"parse_error",
 "mode":"strict"|"lenient","extractedBy":"boxed"|"marker"|"choice"|"math"|"bare"|"last_number"}
FILE.jsonl lines hold "gold" and either "pred" (a bare answer) or "response" (a full model response).
--mode lenient (default) reads free-form answers too (the last math span, a bare answer, the last
number); strict reads only marked answers (\\boxed{}, "the answer is", "Final Answer:"), as the RL
reward does by default.
`;

/** one line of a grading file */
export const GradeLineSchema = z.union([
  z.object({ gold: z.string(), response: z.string() }),
  z.object({ gold: z.string(), pred: z.string() }),
]);

interface Parsed {
  gold?: string;
  response?: string;
  file?: string;
  scale: number;
  mode: GradingMode;
}

function parseArgs(args: string[]): Parsed | string {
  const out: Parsed = { scale: DEFAULT_REWARD_SCALE, mode: DEFAULT_REPORT_MODE };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (): string | undefined => args[++i];
    if (arg === "--gold") {
      const v = value();
      if (v === undefined) return "--gold needs a value";
      out.gold = v;
    } else if (arg === "--response") {
      const v = value();
      if (v === undefined) return "--response needs a value";
      out.response = v;
    } else if (arg === "--scale") {
      const v = Number(value());
      if (!Number.isFinite(v)) return "--scale needs a number";
      out.scale = v;
    } else if (arg === "--mode") {
      const mode = GradingModeSchema.safeParse(value());
      if (!mode.success) return "--mode needs strict or lenient";
      out.mode = mode.data;
    } else if (arg.startsWith("-")) {
      return `unknown option ${arg}`;
    } else if (out.file === undefined) {
      out.file = arg;
    } else {
      return `unexpected argument ${arg}`;
    }
  }
  const single = out.gold !== undefined || out.response !== undefined;
  if (single && out.file !== undefined) return "give either --gold/--response or FILE.jsonl, not both";
  if (single && (out.gold === undefined || out.response === undefined))
    return "--gold and --response go together";
  if (!single && out.file === undefined) return "nothing to grade";
  return out;
}

function line(r: GradeResult): string {
  const out: Record<string, unknown> = {
    equal: r.equal,
    extracted: r.extracted,
    reason: r.reason,
    mode: r.mode,
  };
  if (r.extractedBy !== undefined) out.extractedBy = r.extractedBy;
  return `${JSON.stringify(out)}\n`;
}

async function gradeFile(path: string, parsed: Parsed, io: CliIO): Promise<number> {
  const stream = createReadStream(path, { encoding: "utf8" });
  const opened = await new Promise<Error | undefined>((done) => {
    stream.once("open", () => done(undefined));
    stream.once("error", (e) => done(e));
  });
  if (opened) {
    io.stderr(`questa grade: cannot read ${path}: ${opened.message}\n`);
    return 1;
  }
  const options = { scale: parsed.scale, mode: parsed.mode };
  let bad = 0;
  let lineNo = 0;
  for await (const text of createInterface({ input: stream, crlfDelay: Infinity })) {
    lineNo++;
    if (text.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      bad++;
      io.stderr(`${path}:${lineNo}: not JSON (${(e as Error).message})\n`);
      continue;
    }
    const row = GradeLineSchema.safeParse(json);
    if (!row.success) {
      bad++;
      io.stderr(`${path}:${lineNo}: needs string fields "gold" and "pred" or "response"\n`);
      continue;
    }
    const r =
      "response" in row.data
        ? gradeResponse(row.data.gold, row.data.response, options)
        : gradeAnswer(row.data.gold, row.data.pred, options);
    io.stdout(line(r));
  }
  return bad > 0 ? 1 : 0;
}

/** `questa grade`: grade one response or a JSONL file of them; exit 2 on bad usage */
export const runGrade: CommandRun = async (args, io) => {
  if (args.includes("--help") || args.includes("-h")) {
    io.stdout(USAGE);
    return 0;
  }
  const parsed = parseArgs(args);
  if (typeof parsed === "string") {
    io.stderr(`questa grade: ${parsed}\n${USAGE}`);
    return 2;
  }
  if (parsed.file !== undefined) return gradeFile(resolve(io.cwd, parsed.file), parsed, io);
  io.stdout(line(gradeResponse(parsed.gold!, parsed.response!, { scale: parsed.scale, mode: parsed.mode })));
  return 0;
};
