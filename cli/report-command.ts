import { stat } from "node:fs/promises";
import { basename, join, relative, resolve } from "node:path";
import { z } from "zod";
import {
  CurriculumStageChanged,
  type CurriculumStageChangedData,
  EvaluationResult,
  type EvaluationResultData,
  RunStatus,
  type RunStatusData,
} from "../functions/contracts/events.ts";
import {
  type EvaluationProblemResult,
  EvaluationProblemResultSchema,
} from "../functions/contracts/shards.ts";
import { readTextIfPresent, writeFileAtomic } from "../functions/runtime/atomic-file.ts";
import { InputError, type InputIssue } from "../functions/runtime/errors.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { eventLogPath, listEventLogTopics, readEventLogFile } from "../functions/runtime/memory-bus.ts";
import { sha256Hex } from "../functions/runtime/sha256.ts";
import { parseJsonWith } from "../functions/runtime/stored-json.ts";
import { parseArgs } from "./args.ts";
import type { CommandDefinition, CommandRun } from "./io.ts";
import { renderChart, reportCharts } from "./report-charts.ts";
import { reportHtml } from "./report-html.ts";
import {
  buildReport,
  ReportSpecSchema,
  type RunEvents,
  resultsKey,
  taskDifferences,
} from "./report-model.ts";

const HELP = `usage: questa report RUN_DIR [--vs OTHER_RUN_DIR] [--out FILE]

Writes one HTML file with the plots of a local run (RUN_DIR, e.g. .questa/runs/quickstart; questa run
prints it and writes this report at its end): reward, training pass rate, entropy, clip fraction,
kept and dropped groups, staleness and tokens/s against step, under a band showing the hint
ratio of each curriculum stage; pass@1 by step and pass@k curves (k against pass@k, one panel
per evaluated step) per benchmark, with 95% intervals. The file is self-contained: the plots are
inline SVG, it has no script and fetches nothing when opened.
  --vs DIR     another run of the same task (e.g. the --baseline run, .questa/runs/<name>-baseline),
               overlaid on every plot
  --out FILE   where to write the report (default RUN_DIR/report.html)
Prints the report's path. Exit 1 when a run directory has no events, or the --vs run trained or
evaluated on other data.
`;

const RUN_DIR_HINT = "give a run directory, e.g. .questa/runs/<name> (questa run prints it)";

/** run.json: the spec a run directory was started from (functions/host/embedded-run.ts claimRunDir) */
const RunFileSchema = z.object({ spec: ReportSpecSchema });

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** the run name of a run directory's event logs: `<run>.<topic>`, the directory's name when it holds several */
async function runNameOf(dir: string, argument: string): Promise<string> {
  const prefixes = new Set(
    (await listEventLogTopics(dir)).flatMap((topic) => {
      const match = /^(.+)\.(status|evaluations)$/.exec(topic);
      return match?.[1] === undefined ? [] : [match[1]];
    }),
  );
  const name = basename(dir);
  if (prefixes.has(name)) return name;
  const [only, ...others] = prefixes;
  if (only !== undefined && others.length === 0) return only;
  throw new InputError("report.no_events", [
    {
      path: argument,
      message:
        prefixes.size === 0
          ? `${join(dir, "events")} holds no run status or evaluation events`
          : `${join(dir, "events")} holds the events of several runs (${[...prefixes].join(", ")})`,
      hint:
        prefixes.size === 0
          ? `${RUN_DIR_HINT}; a run with --kafka keeps its events in Kafka, not in its directory`
          : RUN_DIR_HINT,
    },
  ]);
}

async function readLog(dir: string, topic: string, argument: string): Promise<CloudEvent<unknown>[]> {
  const path = eventLogPath(dir, topic);
  try {
    return await readEventLogFile(path);
  } catch (error) {
    throw new InputError("report.bad_log", [
      {
        path: join(argument, relative(dir, path)),
        message: error instanceof Error ? error.message : String(error),
        hint: "a run's event log is written by questa run; restore or remove the damaged file",
      },
    ]);
  }
}

/** the data of the events of `definition`'s type, each checked by its schema; bad ones become issues */
function dataOf<T>(
  events: readonly CloudEvent<unknown>[],
  definition: { type: string; data: z.ZodType<T> },
  where: string,
  issues: InputIssue[],
): T[] {
  return events.flatMap((event) => {
    if (event.type !== definition.type) return [];
    const parsed = definition.data.safeParse(event.data);
    if (parsed.success) return [parsed.data];
    const problem = parsed.error.issues[0];
    issues.push({
      path: `${where} event ${event.id}`,
      message: `does not match ${definition.type}: ${problem ? `${problem.path.join(".") || "(data)"}: ${problem.message}` : "invalid"}`,
    });
    return [];
  });
}

/** an evaluation's per-problem results from the run's object store, when it is there and intact */
async function readResults(
  store: FsObjectStore,
  evaluation: EvaluationResultData,
): Promise<EvaluationProblemResult[] | undefined> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await store.get(evaluation.results.key);
  } catch {
    return undefined; // a key this store cannot hold: the results live elsewhere (S3)
  }
  if (bytes === undefined || sha256Hex(bytes) !== evaluation.results.sha256) return undefined;
  const rows: EvaluationProblemResult[] = [];
  for (const line of Buffer.from(bytes).toString("utf8").split("\n")) {
    if (line.trim() === "") continue;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      return undefined;
    }
    const row = EvaluationProblemResultSchema.safeParse(json);
    if (!row.success) return undefined;
    rows.push(row.data);
  }
  return rows;
}

async function readSpec(dir: string, argument: string): Promise<RunEvents["spec"]> {
  const text = await readTextIfPresent(join(dir, "run.json"));
  if (text === undefined) return undefined;
  const parsed = parseJsonWith(text, RunFileSchema);
  if (!parsed.ok) {
    throw new InputError("report.bad_run_file", [
      {
        path: join(argument, "run.json"),
        message: "is not the spec of a run (questa run writes it when the run starts)",
        hint: "restore the file, or remove it: the report then skips the checks that need the spec",
      },
    ]);
  }
  return parsed.value.spec;
}

/** Reads a local run's events, spec and evaluation results; `argument` is how the user named it. */
export async function readRunEvents(dir: string, argument: string): Promise<RunEvents> {
  if (!(await isDirectory(dir))) {
    throw new InputError("report.no_run", [
      { path: argument, message: `${dir} is not a directory`, hint: RUN_DIR_HINT },
    ]);
  }
  if (!(await isDirectory(join(dir, "events")))) {
    throw new InputError("report.no_events", [
      {
        path: argument,
        message: `${join(dir, "events")} does not exist: the run has written no events (yet)`,
        hint: `${RUN_DIR_HINT}; a run with --kafka keeps its events in Kafka, not in its directory`,
      },
    ]);
  }
  const run = await runNameOf(dir, argument);
  const issues: InputIssue[] = [];
  const statusTopic = `${run}.${RunStatus.topic}`;
  const statusEvents = await readLog(dir, statusTopic, argument);
  const where = (topic: string) => join(argument, "events", `${topic}.jsonl`);
  const status: RunStatusData[] = dataOf(statusEvents, RunStatus, where(statusTopic), issues);
  const stageChanges: CurriculumStageChangedData[] = dataOf(
    statusEvents,
    CurriculumStageChanged,
    where(statusTopic),
    issues,
  );
  const evaluationTopic = `${run}.${EvaluationResult.topic}`;
  const evaluations = dataOf(
    await readLog(dir, evaluationTopic, argument),
    EvaluationResult,
    where(evaluationTopic),
    issues,
  );
  if (issues.length > 0) throw new InputError("report.bad_events", issues);
  if (status.length === 0 && evaluations.length === 0) {
    throw new InputError("report.no_events", [
      {
        path: argument,
        message: `the run ${run} has no status or evaluation events yet`,
        hint: "wait until the run has taken a step or evaluated (questa events DIR --follow shows its progress)",
      },
    ]);
  }
  const store = new FsObjectStore(join(dir, "objects"));
  const results = new Map<string, readonly EvaluationProblemResult[]>();
  for (const evaluation of evaluations) {
    const rows = await readResults(store, evaluation);
    if (rows !== undefined) results.set(resultsKey(evaluation.benchmark, evaluation.step), rows);
  }
  const spec = await readSpec(dir, argument);
  return { run, status, stageChanges, evaluations, results, ...(spec === undefined ? {} : { spec }) };
}

/** refuses a --vs run that is not comparable: the same directory, or another task */
function checkComparable(
  primary: RunEvents,
  vs: RunEvents,
  runArg: string,
  vsArg: string,
  same: boolean,
): void {
  const hint =
    "give a run of the same resource, e.g. RUN_DIR's --baseline run (.questa/runs/<name>-baseline)";
  if (same) {
    throw new InputError("report.vs_same", [
      { path: "--vs", message: `${vsArg} is the run RUN_DIR names (${runArg})`, hint },
    ]);
  }
  let differences: string[];
  if (primary.spec !== undefined && vs.spec !== undefined) {
    differences = taskDifferences(primary.spec, vs.spec);
  } else {
    // no spec to compare: the benchmarks they were evaluated on must be the same
    const names = (events: RunEvents) =>
      [...new Set(events.evaluations.map((e) => e.benchmark))].sort().join(",");
    differences = names(primary) === names(vs) ? [] : ["the benchmarks evaluated"];
  }
  if (differences.length > 0) {
    throw new InputError("report.vs_other_task", [
      {
        path: "--vs",
        message: `${vsArg} is a run of a different task than ${runArg} (${differences.join(" and ")} differ), so their plots would not compare`,
        hint,
      },
    ]);
  }
}

export interface WrittenReport {
  path: string;
  /** what the plotting library warned about (none expected) */
  warnings: string[];
}

/**
 * Reads RUN_DIR (and the --vs run), builds the report and writes it to `out` (default
 * RUN_DIR/report.html). `runArg`/`vsArg` name the directories in messages as the user gave them.
 */
export async function writeReport(options: {
  runDir: string;
  runArg?: string;
  vsDir?: string;
  vsArg?: string;
  out?: string;
  now?: Date;
}): Promise<WrittenReport> {
  const runArg = options.runArg ?? options.runDir;
  const primary = await readRunEvents(options.runDir, runArg);
  let vs: RunEvents | undefined;
  if (options.vsDir !== undefined) {
    const vsArg = options.vsArg ?? options.vsDir;
    vs = await readRunEvents(options.vsDir, vsArg);
    checkComparable(primary, vs, runArg, vsArg, resolve(options.vsDir) === resolve(options.runDir));
  }
  const model = buildReport(primary, vs);
  const warnings: string[] = [];
  const charts = [];
  // one at a time: each holds a Vega view, and there are only a dozen or so
  for (const chart of reportCharts(model)) charts.push(await renderChart(chart, warnings));
  const html = reportHtml(model, charts, (options.now ?? new Date()).toISOString());
  const path = options.out ?? join(options.runDir, "report.html");
  try {
    await writeFileAtomic(path, html);
  } catch (error) {
    throw new InputError("report.not_written", [
      {
        path: options.out === undefined ? runArg : "--out",
        message: `cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`,
        hint: "give a writable place with --out FILE",
      },
    ]);
  }
  return { path, warnings };
}

const runReport: CommandRun = async (args, io) => {
  const parsed = parseArgs(args, {
    booleans: [],
    values: ["vs", "out"],
    positionals: { min: 1, max: 1, what: "a run directory, e.g. .questa/runs/quickstart" },
  });
  const runArg = parsed.positionals[0] as string;
  const vsArg = parsed.options.get("vs");
  const outArg = parsed.options.get("out");
  const written = await writeReport({
    runDir: resolve(io.cwd, runArg),
    runArg,
    ...(vsArg === undefined ? {} : { vsDir: resolve(io.cwd, vsArg), vsArg }),
    ...(outArg === undefined ? {} : { out: resolve(io.cwd, outArg) }),
  });
  for (const warning of written.warnings) io.stderr(`questa report: plotting: ${warning}\n`);
  io.stdout(`report: ${written.path}\n`);
  return 0;
};

/** `questa report RUN_DIR [--vs DIR] [--out FILE]`: a run's plots as one HTML file */
export const reportCommand: CommandDefinition = { help: HELP, run: runReport };
