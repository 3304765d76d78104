import { open } from "node:fs/promises";
import { resolve } from "node:path";
import { z } from "zod";
import { LearnerSchema } from "../functions/contracts/questatraining.ts";
import {
  DEFAULT_REPORT_MODE,
  DEFAULT_REWARD_SCALE,
  type GradeResult,
  GradingModeSchema,
  gradeAnswer,
  gradeResponse,
} from "../functions/grading/index.ts";
import { unreadableIssue } from "../functions/runtime/bounded-read.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { describeJsonError } from "../functions/runtime/json-text.ts";
import { readLines } from "../functions/runtime/line-reader.ts";
import { flagValue, numberFlag, parseArgs, UsageError } from "./args.ts";
import type { CliIO, CommandDefinition, CommandRun } from "./io.ts";

/** longest line of a grading file: a response of the grader's 1,000,000 characters, JSON-escaped */
export const MAX_GRADE_LINE_BYTES = 8 * 1024 * 1024;

const USAGE = `usage: questa grade --gold G --response R [--mode strict|lenient] [--scale N]
       questa grade FILE.jsonl [--mode strict|lenient] [--scale N]

Grades model answers against gold answers and prints one JSON line per check:
{"equal":bool,"extracted":string|null,"reason":"correct"|"no_answer"|"mismatch"|"timeout"|"parse_error",
 "mode":"strict"|"lenient","extractedBy":"boxed"|"marker"|"choice"|"math"|"bare"|"last_number",
 "reward":number,"detail":string}
reward is --scale (default ${DEFAULT_REWARD_SCALE}, learner.rewardScale) for a correct answer and 0 otherwise;
detail says why for a timeout or parse error (e.g. "answer longer than 4000 characters").
FILE.jsonl lines hold "gold" and either "pred" (a bare answer) or "response" (a full model response).
Each non-blank line gives one output line that starts with its "line" number; a line that cannot be
graded gives {"line":N,"error":"..."} (and a message on stderr), and the exit code is then 1.
Lines are at most ${MAX_GRADE_LINE_BYTES / 2 ** 20} MiB.
--mode lenient (default) reads free-form answers too (the last math span, a bare answer, the last
number); strict reads only marked answers (\\boxed{}, "the answer is", "Final Answer:"), as the RL
reward does by default.
`;

/** one line of a grading file */
export const GradeLineSchema = z.union([
  z.object({ gold: z.string(), response: z.string() }),
  z.object({ gold: z.string(), pred: z.string() }),
]);

/** `--scale N`: the same schema as learner.rewardScale */
const ScaleFlag = LearnerSchema.shape.rewardScale.unwrap();

function row(r: GradeResult, lineNumber?: number): string {
  const out: Record<string, unknown> = lineNumber === undefined ? {} : { line: lineNumber };
  out.equal = r.equal;
  out.extracted = r.extracted;
  out.reason = r.reason;
  out.mode = r.mode;
  if (r.extractedBy !== undefined) out.extractedBy = r.extractedBy;
  out.reward = r.reward;
  if (r.detail !== undefined) out.detail = r.detail;
  return `${JSON.stringify(out)}\n`;
}

interface GradeSettings {
  scale: number;
  mode: z.infer<typeof GradingModeSchema>;
}

async function gradeFile(file: string, path: string, options: GradeSettings, io: CliIO): Promise<number> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw new InputError("file.unreadable", [unreadableIssue(file, error)]);
  }
  try {
    if ((await handle.stat()).isDirectory()) {
      throw new InputError("file.is_directory", [
        { path: file, message: "is a directory", hint: "give a .jsonl file" },
      ]);
    }
    let bad = 0;
    const fail = (lineNumber: number, error: string) => {
      bad++;
      io.stderr(`${file}:${lineNumber}: ${error}\n`);
      io.stdout(`${JSON.stringify({ line: lineNumber, error })}\n`);
    };
    try {
      for await (const line of readLines(
        handle.createReadStream({ autoClose: false }),
        MAX_GRADE_LINE_BYTES,
      )) {
        if ("error" in line) {
          fail(line.number, line.error);
          continue;
        }
        if (line.text.trim() === "") continue;
        let json: unknown;
        try {
          json = JSON.parse(line.text);
        } catch (e) {
          fail(line.number, describeJsonError(e));
          continue;
        }
        const parsed = GradeLineSchema.safeParse(json);
        if (!parsed.success) {
          fail(line.number, 'needs string fields "gold" and "pred" or "response"');
          continue;
        }
        const r =
          "response" in parsed.data
            ? gradeResponse(parsed.data.gold, parsed.data.response, options)
            : gradeAnswer(parsed.data.gold, parsed.data.pred, options);
        io.stdout(row(r, line.number));
      }
    } catch (error) {
      // a read error after the open (EISDIR on some systems, EIO)
      throw new InputError("file.unreadable", [unreadableIssue(file, error)]);
    }
    return bad > 0 ? 1 : 0;
  } finally {
    await handle.close();
  }
}

/** `questa grade`: grade one response or a JSONL file of them */
const runGrade: CommandRun = async (args, io) => {
  const parsed = parseArgs(args, {
    values: ["gold", "response", "mode", "scale"],
    positionals: { min: 0, max: 1, what: "a file" },
  });
  const options: GradeSettings = {
    scale: numberFlag(parsed, "scale", ScaleFlag) ?? DEFAULT_REWARD_SCALE,
    mode: flagValue(parsed, "mode", GradingModeSchema) ?? DEFAULT_REPORT_MODE,
  };
  const gold = parsed.options.get("gold");
  const response = parsed.options.get("response");
  const file = parsed.positionals[0];
  const single = gold !== undefined || response !== undefined;
  if (single && file !== undefined)
    throw new UsageError("give either --gold/--response or FILE.jsonl, not both");
  if (file !== undefined) return gradeFile(file, resolve(io.cwd, file), options, io);
  if (!single) throw new UsageError("nothing to grade");
  if (gold === undefined || response === undefined) throw new UsageError("--gold and --response go together");
  io.stdout(row(gradeResponse(gold, response, options)));
  return 0;
};

export const gradeCommand: CommandDefinition = { help: USAGE, run: runGrade };
