import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import type { EvaluationResultData } from "../functions/contracts/events.ts";
import type { QuestATraining } from "../functions/contracts/questatraining.ts";
import { QuestATrainingSpecSchema } from "../functions/contracts/questatraining.ts";
import { readResourceFile } from "../functions/contracts/resource-file.ts";
import {
  effectiveSpec,
  type LoopTiming,
  type RunProgress,
  type RunSummary,
  runEmbedded,
  runName,
  type VllmRunSummary,
} from "../functions/host/embedded-run.ts";
import { LocalVllmFailed } from "../functions/host/local-vllm.ts";
import { TorchLearnerStopped } from "../functions/host/torch-learner-engine.ts";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import { asUsageError, numberFlag, parseArgs, UsageError } from "./args.ts";
import { type CliIO, type CommandDefinition, type CommandRun, limitLines } from "./io.ts";
import {
  FunctionProcessFailed,
  type ProcessRunSummary,
  type ProcessRunThroughput,
  parseBrokers,
  parseS3Location,
  runProcesses,
  type S3Location,
} from "./process-run.ts";

const USAGE = `usage: questa run FILE [--baseline] [--seed N] [--kafka BROKERS --s3 URL]

  FILE           a QuestATraining resource (e.g. manifests/examples/quickstart.yaml)
  --baseline     plain RL with the same budget: no hints (run name <name>-baseline)
  --seed N       override spec.seed
  --kafka B      Kafka brokers host:port[,host:port]: run each function as its own process
  --s3 URL       the object store of that run: s3://BUCKET[/PREFIX] or http://HOST:PORT/BUCKET[/PREFIX]
                 (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS SDK's chain)
Without --kafka: runs the whole pipeline in this process; results and events go to
<localDir>/runs/<name>/ and, at the end, its plots to report.html there (questa report; against the
baseline: questa report DIR --vs DIR-baseline). With --kafka and --s3: starts \`questa function X\`
for the four functions (restarting any that dies), logs in <localDir>/runs/<name>/logs/.
rollout.engine vllm without QUESTA_VLLM_ENDPOINTS: starts a local vLLM server on 127.0.0.1 (and,
with --kafka, its weight sync as \`questa function vllm-sync\`) from QUESTA_VLLM_PYTHON or the venv
of scripts/install-reference-venv.sh --kind vllm; its log in <localDir>/runs/<name>/vllm/.
Ctrl-C stops cleanly; running the same command again resumes.
Exit codes: 0 the run finished (also when it had finished before), 1 it failed (invalid resource,
a function that keeps failing, a server unreachable at the start), 2 usage errors, 130 stopped
by Ctrl-C before the end.
`;

/** "3 message(s) were dead-lettered (invalid-data 2, unknown-type 1); <where>" */
function deadLetterLine(count: number, reasons: Record<string, number>, where: string): string {
  const parts = Object.entries(reasons)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([reason, n]) => `${reason} ${n}`);
  return `${count} message(s) were dead-lettered (${parts.join(", ")}); ${where}\n`;
}

function fmt(value: number | undefined, digits = 3): string {
  return value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits);
}

/** Plain progress lines, or one rewritten status line on a terminal. */
export class ProgressView {
  readonly #io: CliIO;
  #lastPassAt1 = new Map<string, number>();
  #line = "";

  constructor(io: CliIO) {
    this.#io = io;
  }

  #print(text: string, persistent: boolean): void {
    if (this.#io.isTTY) {
      this.#io.stdout(`\r\u001b[2K${text}${persistent ? "\n" : ""}`);
      if (persistent && this.#line) this.#io.stdout(`\r\u001b[2K${this.#line}`);
      if (!persistent) this.#line = text;
    } else if (persistent || text !== this.#line) {
      this.#io.stdout(`${text}\n`);
      if (!persistent) this.#line = text;
    }
  }

  #passSummary(): string {
    const parts = [...this.#lastPassAt1].map(([name, value]) => `${name} ${fmt(value)}`);
    return parts.length > 0 ? ` | pass@1 ${parts.join(", ")}` : "";
  }

  update(progress: RunProgress | { kind: "notice"; text: string }): void {
    switch (progress.kind) {
      case "notice":
        this.#print(progress.text, true);
        return;
      case "warm-start": {
        const p = progress.progress;
        const skill = p.skillAccuracy === undefined ? "" : `, skill accuracy ${fmt(p.skillAccuracy)}`;
        const text = progress.cached
          ? `warm start: reused a cached policy (${p.steps} steps${skill})`
          : `warm start ${p.step}/${p.steps}: loss ${fmt(p.loss)}, token accuracy ${fmt(p.tokenAccuracy)}${skill}`;
        this.#print(text, progress.cached || p.finished === true);
        return;
      }
      case "status": {
        const d = progress.data;
        if (d.kind === "step" && d.metrics) {
          const m = d.metrics;
          this.#print(
            `step ${d.step} stage ${d.stage} (p=${d.hintRatio}) reward ${fmt(m.rewardMean)} pass ${fmt(m.passRate)} entropy ${fmt(m.entropy)}${m.logProbGap === undefined ? "" : ` gap ${fmt(m.logProbGap)}`}${m.klToReference === undefined ? "" : ` kl ${fmt(m.klToReference)}`} kept ${m.groupsKept}/${m.groupsKept + m.groupsRejected}${this.#passSummary()}`,
            !this.#io.isTTY && d.step % 10 === 0,
          );
        } else if (d.kind === "finished" && d.step === 0 && d.message) {
          this.#print(d.message, true); // an evaluation-only run: no stage or hint to speak of
        } else if (d.kind !== "step") {
          this.#print(
            `${d.kind}: step ${d.step}, stage ${d.stage}, hint ratio ${d.hintRatio}${d.message ? ` (${d.message})` : ""}`,
            true,
          );
        }
        return;
      }
      case "evaluation": {
        const d = progress.data;
        this.#lastPassAt1.set(d.benchmark, d.passAt1);
        const ks = Object.entries(d.passAtK)
          .map(([k, v]) => `pass@${k} ${fmt(v)}`)
          .join(" ");
        this.#print(
          `eval step ${d.step} ${d.benchmark}: pass@1 ${fmt(d.passAt1)} [${fmt(d.passAt1Interval.low)}, ${fmt(d.passAt1Interval.high)}] ${ks}`,
          true,
        );
        if (d.example) {
          // what the model writes, on one line and short: a glance, not a transcript
          const text = d.example.response.replace(/\s+/g, " ").trim();
          const shown = text.length > 160 ? `${text.slice(0, 157)}...` : text;
          this.#print(
            `  e.g. ${d.example.problemId}: "${shown}" -> ${d.example.extracted ?? "no answer"} (${d.example.correct ? "right" : "wrong"})`,
            true,
          );
        }
        return;
      }
      case "checkpoint":
        this.#print(`checkpoint step ${progress.data.step} (${progress.data.reason})`, true);
        return;
      case "dead-letter":
        this.#print(
          `warning: ${progress.data.function} dead-lettered a message (${progress.data.reason}): ${progress.data.error.message}`,
          true,
        );
        return;
      default: {
        const never: never = progress;
        throw new Error(`unknown progress ${JSON.stringify(never)}`);
      }
    }
  }

  finish(): void {
    if (this.#io.isTTY && this.#line) this.#io.stdout("\n");
  }
}

function duration(totalSeconds: number): string {
  const seconds = Math.round(totalSeconds);
  return seconds >= 60 ? `${Math.floor(seconds / 60)}m ${seconds % 60}s` : `${seconds}s`;
}

function rate(value: number | undefined): string {
  return value === undefined ? "-" : value >= 1000 ? `${(value / 1000).toFixed(1)}K` : value.toFixed(1);
}

/** where the loop's time went: wall time, the engines' sampling time, each function's busy share, speeds */
export function timingLine(timing: LoopTiming): string {
  const wall = duration(timing.wallSeconds);
  const percent = (part: number) => `${Math.round((part / timing.wallSeconds) * 100)}%`;
  const busy = Object.entries(timing.functions)
    .sort(([, a], [, b]) => b.busySeconds - a.busySeconds)
    .map(([name, f]) => `${name} ${Math.round(f.share * 100)}%`)
    .join(", ");
  return [
    `time ${wall} (after set-up); sampling ${percent(timing.samplingSeconds.rollout)} for rollout, ${percent(timing.samplingSeconds.evaluate)} for evaluation`,
    `handlers busy (waits included): ${busy}`,
    `sampling ${rate(timing.samplingTokensPerSecond)} tok/s (${timing.rolloutMeanDecodeRows === undefined ? "-" : Math.round(timing.rolloutMeanDecodeRows)} rows per decode step), training ${rate(timing.trainTokensPerSecond)} tok/s${gapText(timing.logProbGap)}`,
  ].join("; ");
}

/** rollout.engine vllm: the local server's start and the reloads that kept the servers on the learner's policy */
export function vllmLine(v: VllmRunSummary): string {
  const local = v.local
    ? `local server (${v.local.device === "cpu" ? "CPU build" : "GPU"}) ready in ${Math.round(v.local.startSeconds)} s, ${v.local.restarts} restart(s), log ${v.local.logFile}; `
    : "";
  const reloads =
    v.reloads === undefined
      ? ""
      : `${v.reloads} reload(s)${v.reloadSeconds === undefined ? "" : ` of ${v.reloadSeconds.toFixed(2)} s on average`}; `;
  const served =
    v.servedStep < 0 ? "the server did not say what it serves" : `serving step ${v.servedStep} at the end`;
  return `vLLM: ${local}${reloads}${served}`;
}

/**
 * A run whose functions are other processes: its wall time and speeds from the events (each
 * function's busy time is in its own process's metrics, `questa_function_busy_seconds_total`)
 */
export function throughputLine(t: ProcessRunThroughput): string {
  return `time ${duration(t.wallSeconds)} (after set-up); ${t.sampledTokens} tokens sampled; sampling ${rate(t.samplingTokensPerSecond)} tok/s per rollout engine, training ${rate(t.trainTokensPerSecond)} tok/s${gapText(t.logProbGap)} (each function's busy time: its /metrics)`;
}

/** the learner's mean log-prob gap to the sampler, when the steps reported one */
function gapText(gap: number | undefined): string {
  return gap === undefined ? "" : `, log-prob gap ${fmt(gap)}`;
}

/** The final table: every evaluation, by step and benchmark. */
export function summaryTable(evaluations: readonly EvaluationResultData[]): string {
  if (evaluations.length === 0) return "no evaluations\n";
  const ks = [...new Set(evaluations.flatMap((e) => Object.keys(e.passAtK)))].sort(
    (a, b) => Number(a) - Number(b),
  );
  const header = [
    "step",
    "benchmark",
    "pass@1",
    "95% CI",
    ...ks.filter((k) => k !== "1").map((k) => `pass@${k}`),
  ];
  const rows = evaluations.map((e) => [
    String(e.step),
    e.benchmark,
    fmt(e.passAt1),
    `${fmt(e.passAt1Interval.low)}-${fmt(e.passAt1Interval.high)}`,
    ...ks.filter((k) => k !== "1").map((k) => fmt(e.passAtK[k])),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const table = [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
  return `${table}\n${changeLines(evaluations, ks).join("")}`;
}

/** per benchmark, each pass@k at its first evaluation against its last: what the run changed */
function changeLines(evaluations: readonly EvaluationResultData[], ks: readonly string[]): string[] {
  const benchmarks = [...new Set(evaluations.map((e) => e.benchmark))];
  return benchmarks.flatMap((benchmark) => {
    const evals = evaluations.filter((e) => e.benchmark === benchmark).sort((a, b) => a.step - b.step);
    const first = evals[0];
    const last = evals.at(-1);
    if (!first || !last || first.step === last.step) return [];
    const changes = ["1", ...ks.filter((k) => k !== "1")].map((k) => {
      const value = (e: EvaluationResultData) => (k === "1" ? e.passAt1 : e.passAtK[k]);
      return `pass@${k} ${fmt(value(first))} -> ${fmt(value(last))}`;
    });
    return [`${benchmark}, step ${first.step} -> ${last.step}: ${changes.join(", ")}\n`];
  });
}

/** `--seed N`: the same schema as spec.seed */
const SeedFlag = QuestATrainingSpecSchema.shape.seed.unwrap();

const runRun: CommandRun = async (args, io) => {
  const parsed = parseArgs(args, {
    booleans: ["baseline"],
    values: ["seed", "kafka", "s3"],
    positionals: { min: 1, max: 1, what: "a QuestATraining file" },
  });
  const file = parsed.positionals[0] as string;
  const seed = numberFlag(parsed, "seed", SeedFlag);
  const kafkaText = parsed.options.get("kafka");
  const s3Text = parsed.options.get("s3");
  if ((kafkaText === undefined) !== (s3Text === undefined)) {
    throw new UsageError("--kafka and --s3 go together (the functions as processes need both)");
  }
  const cluster =
    kafkaText !== undefined && s3Text !== undefined
      ? asUsageError(() => ({ brokers: parseBrokers(kafkaText), s3: parseS3Location(s3Text) }))
      : undefined;
  const path = resolve(io.cwd, file);
  const documents = await readResourceFile(path, file);
  if (documents.length !== 1) {
    io.stderr(
      `questa run: ${file} holds ${documents.length} documents; give a file with one QuestATraining\n`,
    );
    return 1;
  }
  const result = documents[0]?.result;
  if (!result?.ok) {
    io.stderr(`${file}: invalid QuestATraining\n`);
    for (const line of limitLines((result?.issues ?? []).map(formatInputIssue))) io.stderr(`  ${line}\n`);
    return 1;
  }
  const controller = new AbortController();
  let complete = false;
  const onComplete = () => {
    complete = true;
  };
  void io.interrupted.then(() => {
    // after the run completed, Ctrl-C only hurries the clean-up along; nothing is interrupted
    io.stderr(
      complete
        ? "\nthe run is complete; stopping its functions...\n"
        : "\nstopping: finishing in-flight work (run the same command again to resume)...\n",
    );
    controller.abort();
  });
  const view = new ProgressView(io);
  const baseline = parsed.options.has("baseline");
  io.stdout(`questa run ${result.value.metadata.name}${baseline ? " (baseline: no hints)" : ""}\n`);
  if (cluster !== undefined) {
    return runAsProcesses(io, view, controller.signal, onComplete, {
      resource: result.value,
      baseDir: dirname(path),
      baseline,
      ...(seed === undefined ? {} : { seed }),
      ...cluster,
    });
  }
  let summary: RunSummary;
  try {
    summary = await runEmbedded({
      resource: result.value,
      baseDir: dirname(path),
      workDir: io.cwd,
      baseline,
      ...(seed === undefined ? {} : { seed }),
      signal: controller.signal,
      report: (p) => view.update(p),
      cacheDir: io.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa"),
      onComplete,
    });
  } catch (error) {
    view.finish();
    if (controller.signal.aborted) {
      io.stderr("stopped before the run started; run the same command again to continue\n");
      return 130;
    }
    if (error instanceof InputError || error instanceof LocalVllmFailed) {
      io.stderr(`questa run: ${error.message}\n`);
      return 1;
    }
    if (error instanceof TorchLearnerStopped) {
      io.stderr(
        `questa run: ${error.message}\nthe run stopped with its state kept: run the same command again to resume it\n`,
      );
      return 1;
    }
    throw error;
  }
  view.finish();
  io.stdout(`\n${summaryTable(summary.evaluations)}`);
  io.stdout(`${timingLine(summary.timing)}\n`);
  if (summary.vllm) io.stdout(`${vllmLine(summary.vllm)}\n`);
  io.stdout(`run directory: ${summary.runDir} (events: questa events ${summary.runDir})\n`);
  await writeRunReport(io, summary.runDir);
  if (summary.deadLetters > 0) {
    io.stdout(
      deadLetterLine(
        summary.deadLetters,
        summary.deadLetterReasons,
        `see questa events ${summary.runDir} --type dev.questa.dead.letter.v1`,
      ),
    );
  }
  if (summary.interrupted && !summary.finished) {
    io.stdout(`stopped at step ${summary.step}; run the same command again to resume\n`);
    return 130;
  }
  io.stdout(`finished ${summary.step} steps\n`);
  return 0;
};

/**
 * The run's HTML report (questa report), written at the end of an embedded run, also a stopped
 * one. The run itself is done by then: a report that cannot be written is a warning with the
 * command that retries it, not a failed run.
 */
async function writeRunReport(io: CliIO, runDir: string): Promise<void> {
  try {
    // loaded here: the plotting library is needed once, at the end
    const { writeReport } = await import("./report-command.ts");
    const written = await writeReport({ runDir });
    for (const warning of written.warnings) io.stderr(`questa run: report: plotting: ${warning}\n`);
    io.stdout(`report: ${written.path}\n`);
  } catch (error) {
    const reason =
      error instanceof InputError
        ? error.issues.map(formatInputIssue).join("; ")
        : error instanceof Error
          ? `${error.name}: ${error.message}`
          : String(error);
    io.stderr(`questa run: the report was not written (${reason}); write it with: questa report ${runDir}\n`);
  }
}

/** `questa run FILE --kafka B --s3 URL`: the same run, its functions as separate processes. */
async function runAsProcesses(
  io: CliIO,
  view: ProgressView,
  signal: AbortSignal,
  onComplete: () => void,
  options: {
    resource: QuestATraining;
    baseDir: string;
    baseline: boolean;
    seed?: number;
    brokers: string[];
    s3: S3Location;
  },
): Promise<number> {
  const name = runName(options.resource, options.baseline);
  const spec = effectiveSpec(options.resource.spec, options);
  const resource: QuestATraining = {
    ...options.resource,
    metadata: { ...options.resource.metadata, name },
    spec,
  };
  let summary: ProcessRunSummary;
  try {
    summary = await runProcesses({
      resource,
      runDir: resolve(io.cwd, spec.storage.localDir, "runs", name),
      brokers: options.brokers,
      s3: options.s3,
      env: { ...io.env, QUESTA_CACHE_DIR: io.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa") },
      questaBin: join(import.meta.dirname, "..", "bin", "questa.js"),
      signal,
      report: (p) => view.update(p),
      notice: (line) => view.update({ kind: "notice", text: line }),
      onComplete,
    });
  } catch (error) {
    view.finish();
    if (
      error instanceof InputError ||
      error instanceof FunctionProcessFailed ||
      error instanceof LocalVllmFailed
    ) {
      io.stderr(`questa run: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
  view.finish();
  io.stdout(`\n${summaryTable(summary.evaluations)}`);
  io.stdout(`${throughputLine(summary.throughput)}\n`);
  if (summary.vllm) io.stdout(`${vllmLine(summary.vllm)}\n`);
  io.stdout(`objects: ${summary.objects}\nfunction logs: ${summary.logDir}\n`);
  if (summary.deadLetters > 0) {
    io.stdout(
      deadLetterLine(
        summary.deadLetters,
        summary.deadLetterReasons,
        `see the topic ${summary.deadLetterTopic} (each record says why, with the message's size, sha256 and start)`,
      ),
    );
  }
  if (summary.interrupted && !summary.finished) {
    io.stdout(`stopped at step ${summary.step}; run the same command again to resume\n`);
    return 130;
  }
  io.stdout(`finished ${summary.step} steps\n`);
  return 0;
}

/** `questa run FILE`: a whole run, embedded or with its functions as processes */
export const runCommand: CommandDefinition = { help: USAGE, run: runRun };
