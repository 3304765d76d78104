/**
 * The QuestA effect on the synthetic task: QuestA (hint curriculum) vs plain RL with the same
 * budget (`--baseline`: every hint ratio 0), same warm-started policy, several seeds. Prints one
 * JSON object and a table per benchmark (the hard and the easy split): per arm, pass@1 and pass@8
 * at every evaluation step, the mean over seeds with a 95% t-interval, each seed's values, and the
 * paired per-seed difference QuestA - baseline with its 95% t-interval (the comparison that counts:
 * both arms of a seed start from the same policy), and whether QuestA kept its step-0 pass@8.
 * It also counts the rollout groups each arm sampled (the success-rate filter refills every step's
 * batch, so an arm whose groups rarely carry signal samples more per step) and compares QuestA's
 * final step with the baseline's evaluation nearest in rollout groups: the comparison at equal
 * sampling compute.
 *
 *   npm run bench:questa [-- --file F] [--seeds 0,1,...,9] [--out DIR] [--replicate DIR2 ...] [--benchmark NAME]
 *
 * Default file: bench/questa-bench.yaml (the quickstart, evaluated every 50 steps); runs go to a temporary
 * directory (or --out), warm starts are cached in ~/.cache/questa (shared by both arms of a seed). With --out, a bench
 * resumes: an arm whose run already evaluated its final step is read from its event log, an
 * interrupted one resumes, so seeds can be added to an earlier bench (`--seeds 0,1,2` after
 * `--seeds 0`); a directory left by other settings is refused. Per seed it writes the HTML report
 * of the QuestA run against its baseline (`questa report RUN --vs BASELINE`) to
 * `<out>/reports/seed-<seed>.html` and prints its path.
 *
 * The loop is asynchronous, so a second run of a seed from the same warm start does not repeat the
 * first's numbers. `--replicate DIR` (repeatable) reads the finished runs of another bench directory
 * of the same file and seeds as replicates: every per-seed value is then the mean over the seed's
 * runs (each run pairing its own two arms), so the intervals over seeds hold run-to-run noise down.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { cpus, homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeReport } from "../cli/report-command.ts";
import { EvaluationResult, type EvaluationResultData, RunStatus } from "../functions/contracts/events.ts";
import { validateYaml } from "../functions/contracts/validate.ts";
import { claimRunDir, effectiveSpec, runEmbedded, runName } from "../functions/host/embedded-run.ts";
import { eventLogPath, readEventLogFile } from "../functions/runtime/memory-bus.ts";

// two-sided 97.5% quantiles of Student's t by degrees of freedom
const T975 = [Number.NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

/**
 * The mean with its two-sided 95% t-interval; pass rates are clamped to [0, 1], differences not.
 * One value has no interval: its bounds are NaN (null in the JSON, "one seed" in the table).
 */
function meanInterval(values: number[], clampTo01 = true): { mean: number; low: number; high: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, low: Number.NaN, high: Number.NaN };
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = (T975[n - 1] ?? 1.96) * (sd / Math.sqrt(n));
  return clampTo01
    ? { mean, low: Math.max(0, mean - half), high: Math.min(1, mean + half) }
    : { mean, low: mean - half, high: mean + half };
}

const { values } = parseArgs({
  options: {
    file: { type: "string", default: "bench/questa-bench.yaml" },
    seeds: { type: "string", default: "0,1,2,3,4,5,6,7,8,9" },
    out: { type: "string" },
    /** other --out directories of this bench (the same file and seeds, finished), read back as replicate runs */
    replicate: { type: "string", multiple: true },
    /** one benchmark only; default: every benchmark of the file */
    benchmark: { type: "string" },
  },
});
const file = resolve(values.file);
const seeds = values.seeds.split(",").map(Number);
const docs = validateYaml(readFileSync(file, "utf8"));
const first = docs[0]?.result;
if (!first?.ok) throw new Error(`${file} is not a valid QuestATraining`);
const base = first.value;
const outDir = values.out ? resolve(values.out) : mkdtempSync(join(tmpdir(), "questa-bench-"));
const replicates = (values.replicate ?? []).map((dir) => resolve(dir));
const cacheDir = process.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");
const benchmarks = values.benchmark ? [values.benchmark] : base.spec.evaluation.benchmarks.map((b) => b.name);
if (benchmarks.length === 0) throw new Error(`${file} evaluates no benchmark`);
// the benchmark the per-run lines and the pass@8 check follow: the file lists the hard split first
const hardBenchmark = benchmarks[0]!;

/** a bench's run of one seed's arm, in the directory `dir` (an --out of this bench) */
function armResource(dir: string, seed: number) {
  return {
    ...base,
    metadata: { ...base.metadata, name: `bench-s${seed}` },
    spec: { ...base.spec, storage: { ...base.spec.storage, localDir: dir } },
  };
}

/** the arm's resource, its run's name and the run's folder under `dir` */
function armRun(dir: string, seed: number, baseline: boolean) {
  const resource = armResource(dir, seed);
  const run = runName(resource, baseline);
  return { resource, run, runDir: join(dir, "runs", run) };
}

/**
 * The run's evaluations of each benchmark, from its event log (all of them, across resumes); a run
 * directory left by different settings is refused, not read.
 */
async function loggedEvaluations(
  dir: string,
  seed: number,
  baseline: boolean,
): Promise<Map<string, EvaluationResultData[]>> {
  const { resource, run, runDir } = armRun(dir, seed, baseline);
  await claimRunDir(runDir, effectiveSpec(resource.spec, { baseline, seed }));
  const log = eventLogPath(runDir, `${run}.${EvaluationResult.topic}`);
  const byBenchmark = new Map<string, Map<number, EvaluationResultData>>();
  for (const event of await readEventLogFile(log)) {
    const data = EvaluationResult.data.parse(event.data);
    const byStep = byBenchmark.get(data.benchmark) ?? new Map<number, EvaluationResultData>();
    byStep.set(data.step, data);
    byBenchmark.set(data.benchmark, byStep);
  }
  return new Map(
    benchmarks.map((name) => [
      name,
      [...(byBenchmark.get(name)?.values() ?? [])].sort((a, b) => a.step - b.step),
    ]),
  );
}

/**
 * From the run's status log: the rollout groups it sampled for training (kept and rejected by the
 * success-rate filter), cumulative at each learner step, i.e. the sampling compute an arm spent to
 * reach that step; and the loop's seconds, from each start to that session's last status event (a
 * resumed run adds its sessions, not the pause between them; the warm start comes before it).
 */
async function loggedStatus(
  dir: string,
  seed: number,
  baseline: boolean,
): Promise<{ groups: Map<number, number>; loopSeconds: number }> {
  const { run, runDir } = armRun(dir, seed, baseline);
  const log = eventLogPath(runDir, `${run}.${RunStatus.topic}`);
  const perStep = new Map<number, number>();
  let loopMs = 0;
  let session: { started: number; last: number } | undefined;
  for (const event of await readEventLogFile(log)) {
    if (event.type !== RunStatus.type) continue;
    const status = RunStatus.data.parse(event.data);
    const time = Date.parse(event.time);
    if (status.kind === "started") {
      if (session) loopMs += session.last - session.started;
      session = { started: time, last: time };
    } else if (session) {
      session.last = time;
    }
    // a resumed run may report a step again: its last report counts
    if (status.kind === "step" && status.metrics) {
      perStep.set(status.step, status.metrics.groupsKept + status.metrics.groupsRejected);
    }
  }
  if (session) loopMs += session.last - session.started;
  const groups = new Map<number, number>([[0, 0]]);
  let total = 0;
  for (const step of [...perStep.keys()].sort((a, b) => a - b)) {
    total += perStep.get(step) ?? 0;
    groups.set(step, total);
  }
  return { groups, loopSeconds: loopMs / 1000 };
}

type Arm = "questa" | "baseline";
const METRICS = ["pass@1", "pass@8"] as const;
type Metric = (typeof METRICS)[number];

function metricValue(e: EvaluationResultData, metric: Metric): number {
  return metric === "pass@1" ? e.passAt1 : (e.passAtK["8"] ?? Number.NaN);
}

/** one value per metric */
function byMetric<T>(f: (metric: Metric) => T): Record<Metric, T> {
  return { "pass@1": f("pass@1"), "pass@8": f("pass@8") };
}

/** what one run of a seed's arm left: each benchmark's evaluations by step, and its status log's counts */
interface ArmRun {
  evaluations: Map<string, EvaluationResultData[]>;
  groups: Map<number, number>;
  loopSeconds: number;
}
const finishedRun = (evals: Map<string, EvaluationResultData[]>) =>
  benchmarks.every((name) => evals.get(name)?.some((e) => e.step === base.spec.learner.totalSteps));
const hardScores = (evaluations: Map<string, EvaluationResultData[]>) =>
  (evaluations.get(hardBenchmark) ?? [])
    .map((e) => `step ${e.step} ${METRICS.map((m) => `${m} ${metricValue(e, m).toFixed(3)}`).join(" ")}`)
    .join("; ");

/** per arm, per seed: its runs, this bench's first, then one per --replicate directory */
const runs: Record<Arm, Record<number, ArmRun[]>> = { questa: {}, baseline: {} };
const reports: string[] = [];
for (const seed of seeds) {
  const runDirs: Partial<Record<Arm, string>> = {};
  for (const arm of ["questa", "baseline"] as const) {
    const baseline = arm === "baseline";
    const started = Date.now();
    let evaluations = await loggedEvaluations(outDir, seed, baseline);
    let took = "from its event log";
    if (!finishedRun(evaluations)) {
      await runEmbedded({ resource: armResource(outDir, seed), baseDir: outDir, baseline, seed, cacheDir });
      took = `${((Date.now() - started) / 1000).toFixed(0)} s`;
      evaluations = await loggedEvaluations(outDir, seed, baseline);
    }
    const armRuns: ArmRun[] = [{ evaluations, ...(await loggedStatus(outDir, seed, baseline)) }];
    runDirs[arm] = armRun(outDir, seed, baseline).runDir;
    process.stderr.write(`seed ${seed} ${arm}: ${took}: ${hardBenchmark} ${hardScores(evaluations)}\n`);
    for (const dir of replicates) {
      // read, never started: a replicate directory without this run is refused before anything is written
      const present = existsSync(join(armRun(dir, seed, baseline).runDir, "run.json"));
      const replicate = present
        ? await loggedEvaluations(dir, seed, baseline)
        : new Map<string, EvaluationResultData[]>();
      if (!finishedRun(replicate)) {
        throw new Error(
          `--replicate ${dir}: seed ${seed}'s ${arm} run has not evaluated step ${base.spec.learner.totalSteps}; finish it first (--out ${dir} --seeds ${seed})`,
        );
      }
      armRuns.push({ evaluations: replicate, ...(await loggedStatus(dir, seed, baseline)) });
      process.stderr.write(`seed ${seed} ${arm} (${dir}): ${hardBenchmark} ${hardScores(replicate)}\n`);
    }
    runs[arm][seed] = armRuns;
  }
  if (runDirs.questa !== undefined && runDirs.baseline !== undefined) {
    // both arms overlaid, the plots of `questa report` (its page says what each shows)
    const report = await writeReport({
      runDir: runDirs.questa,
      vsDir: runDirs.baseline,
      out: join(outDir, "reports", `seed-${seed}.html`),
    });
    for (const warning of report.warnings) process.stderr.write(`seed ${seed} report: ${warning}\n`);
    process.stderr.write(`seed ${seed} report: ${report.path}\n`);
    reports.push(report.path);
  }
}

const meanOf = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
/** a seed's value: the mean of `value` over its runs (NaN when a run lacks it) */
const overRuns = (arm: Arm, seed: number, value: (run: ArmRun) => number) =>
  meanOf((runs[arm][seed] ?? []).map(value));
const evaluationAt = (run: ArmRun, benchmark: string, step: number) =>
  run.evaluations.get(benchmark)?.find((e) => e.step === step);

type Interval = ReturnType<typeof meanInterval> & { perSeed: number[] };
interface Row {
  step: number;
  arms: Record<Arm, Record<Metric, Interval>>;
  /** QuestA - baseline per seed (both arms of a seed start from the same policy), with its interval */
  pairedDifference: Record<Metric, Interval>;
  /** the paired difference's 95% interval lies above 0 */
  questaAheadBeyondNoise: Record<Metric, boolean>;
  /** QuestA is above the baseline in every seed */
  questaAheadInEverySeed: Record<Metric, boolean>;
}

/** one benchmark's rows, one per evaluation step */
function comparison(benchmark: string): Row[] {
  const steps = [
    ...new Set(
      Object.values(runs.questa).flatMap((armRuns) =>
        (armRuns[0]?.evaluations.get(benchmark) ?? []).map((e) => e.step),
      ),
    ),
  ].sort((a, b) => a - b);
  return steps.map((step) => {
    const perSeed = (arm: Arm, metric: Metric) =>
      seeds.map((seed) =>
        overRuns(arm, seed, (run) => {
          const e = evaluationAt(run, benchmark, step);
          return e ? metricValue(e, metric) : Number.NaN;
        }),
      );
    const interval = (values: number[], clampTo01: boolean): Interval => ({
      ...meanInterval(values, clampTo01),
      perSeed: values,
    });
    const arms = {
      questa: byMetric((m) => interval(perSeed("questa", m), true)),
      baseline: byMetric((m) => interval(perSeed("baseline", m), true)),
    };
    const pairedDifference = byMetric((m) => {
      const baseline = perSeed("baseline", m);
      return interval(
        perSeed("questa", m).map((q, i) => q - (baseline[i] ?? Number.NaN)),
        false,
      );
    });
    return {
      step,
      arms,
      pairedDifference,
      // one seed has no interval: it can only be ahead in every seed
      questaAheadBeyondNoise: byMetric((m) => seeds.length > 1 && pairedDifference[m].low > 0),
      questaAheadInEverySeed: byMetric((m) => pairedDifference[m].perSeed.every((d) => d > 0)),
    };
  });
}

const tables = Object.fromEntries(benchmarks.map((name) => [name, comparison(name)]));
/** the paper's pass@k claim in miniature: QuestA's final pass@8 on the hard split against its step 0 */
const hardRows = tables[hardBenchmark] ?? [];
const firstHard = hardRows[0];
const finalHard = hardRows.at(-1);
const passAt8Kept =
  firstHard && finalHard && finalHard !== firstHard
    ? {
        benchmark: hardBenchmark,
        step0: firstHard.arms.questa["pass@8"].mean,
        final: finalHard.arms.questa["pass@8"].mean,
        finalDifference: passAt8Change(finalHard, firstHard),
      }
    : null;

/** QuestA's final pass@8 minus its step-0 value, per seed, with its interval */
function passAt8Change(final: Row, first: Row) {
  const perSeed = final.arms.questa["pass@8"].perSeed.map(
    (v, i) => v - (first.arms.questa["pass@8"].perSeed[i] ?? Number.NaN),
  );
  return { ...meanInterval(perSeed, false), perSeed };
}

/**
 * QuestA's final evaluation against the baseline's evaluation whose rollout groups are nearest to
 * QuestA's final count: the comparison at equal sampling compute. The success-rate filter refills
 * each step's batch, so an arm whose groups rarely carry signal samples more groups per step. With
 * replicates each run pairs its own arms, and a seed's difference is the mean over its runs.
 */
function equalRollouts(benchmark: string) {
  const finalStep = base.spec.learner.totalSteps;
  const matched = seeds.map((seed) => {
    const questaRuns = runs.questa[seed] ?? [];
    const pairs = questaRuns.map((questaRun, index) => {
      const baselineRun = runs.baseline[seed]?.[index];
      const questaGroups = questaRun.groups.get(finalStep) ?? Number.NaN;
      let baseline: { evaluation: EvaluationResultData; groups: number } | undefined;
      for (const evaluation of baselineRun?.evaluations.get(benchmark) ?? []) {
        const groups = baselineRun?.groups.get(evaluation.step);
        if (groups === undefined) continue;
        if (!baseline || Math.abs(groups - questaGroups) < Math.abs(baseline.groups - questaGroups)) {
          baseline = { evaluation, groups };
        }
      }
      return { questaGroups, questa: evaluationAt(questaRun, benchmark, finalStep), baseline };
    });
    return { seed, pairs };
  });
  return {
    benchmark,
    perSeed: matched.map((m) => ({
      seed: m.seed,
      questaStep: finalStep,
      runs: m.pairs.map((p) => ({
        questaGroups: p.questaGroups,
        baselineStep: p.baseline?.evaluation.step ?? Number.NaN,
        baselineGroups: p.baseline?.groups ?? Number.NaN,
      })),
    })),
    pairedDifference: byMetric((metric): Interval => {
      const values = matched.map((m) =>
        meanOf(
          m.pairs.map((p) =>
            p.questa && p.baseline
              ? metricValue(p.questa, metric) - metricValue(p.baseline.evaluation, metric)
              : Number.NaN,
          ),
        ),
      );
      return { ...meanInterval(values, false), perSeed: values };
    }),
  };
}
const atEqualRollouts = benchmarks.map(equalRollouts);
/** rollout groups each arm sampled to reach the final step, per seed (mean over its runs) */
const groupsToFinal = (arm: Arm) =>
  seeds.map((seed) =>
    overRuns(arm, seed, (run) => run.groups.get(base.spec.learner.totalSteps) ?? Number.NaN),
  );
/** the RL loop's seconds (after the warm start), per seed, one per run */
const loopSeconds = (arm: Arm) =>
  Object.fromEntries(seeds.map((seed) => [seed, (runs[arm][seed] ?? []).map((run) => run.loopSeconds)]));

const cpu = cpus()[0]?.model ?? "unknown";
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "questa",
      machine: { cpu, cores: cpus().length, node: process.version },
      file: values.file,
      benchmarks,
      seeds,
      runs: [outDir, ...replicates],
      loopSeconds: { questa: loopSeconds("questa"), baseline: loopSeconds("baseline") },
      reports,
      tables,
      final: Object.fromEntries(benchmarks.map((name) => [name, tables[name]?.at(-1) ?? null])),
      passAt8Kept,
      rolloutGroupsToFinalStep: { questa: groupsToFinal("questa"), baseline: groupsToFinal("baseline") },
      atEqualRollouts,
    },
    null,
    2,
  )}\n`,
);
const bounds = (v: Interval) =>
  Number.isNaN(v.low) ? "[one seed]" : `[${v.low.toFixed(3)}, ${v.high.toFixed(3)}]`;
const f = (v: Interval) => `${v.mean.toFixed(3)} ${bounds(v)}`;
const signed = (v: Interval) => `${v.mean >= 0 ? "+" : ""}${v.mean.toFixed(3)} ${bounds(v)}`;
const mark = (row: Row, m: Metric) =>
  row.questaAheadBeyondNoise[m] ? " >>" : row.questaAheadInEverySeed[m] ? " > " : "   ";
for (const name of benchmarks) {
  process.stdout.write(
    `\n${name}\nstep  ${METRICS.map((m) => `QuestA ${m}`.padEnd(23) + `baseline ${m}`.padEnd(23) + `difference ${m}`.padEnd(28)).join("")}\n`,
  );
  for (const row of tables[name] ?? []) {
    const cells = METRICS.map(
      (m) =>
        f(row.arms.questa[m]).padEnd(23) +
        f(row.arms.baseline[m]).padEnd(23) +
        `${signed(row.pairedDifference[m])}${mark(row, m)}`.padEnd(28),
    );
    process.stdout.write(`${String(row.step).padEnd(5)} ${cells.join("")}\n`);
  }
}
process.stdout.write(
  "\nmeans over seeds [95% t-interval]; difference: QuestA - baseline per seed (paired)\n" +
    ">> the difference's interval lies above 0; >  QuestA ahead in every seed, the interval reaching 0\n",
);
if (passAt8Kept) {
  process.stdout.write(
    `QuestA ${hardBenchmark} pass@8: step 0 ${passAt8Kept.step0.toFixed(3)}, final ${passAt8Kept.final.toFixed(3)} (change ${signed(passAt8Kept.finalDifference)})\n`,
  );
}
process.stdout.write(
  `rollout groups sampled to step ${base.spec.learner.totalSteps}: QuestA ${meanOf(groupsToFinal("questa")).toFixed(0)}, baseline ${meanOf(groupsToFinal("baseline")).toFixed(0)} (mean over seeds)\n`,
);
const loopMinutes = (arm: Arm) => meanOf(Object.values(loopSeconds(arm)).flat()) / 60;
process.stdout.write(
  `RL loop minutes (after the warm start): QuestA ${loopMinutes("questa").toFixed(1)}, baseline ${loopMinutes("baseline").toFixed(1)} (mean over runs)\n`,
);
for (const equal of atEqualRollouts) {
  const steps = equal.perSeed
    .map(
      (s) =>
        `seed ${s.seed}: ${s.runs.map((r) => `${r.questaGroups} vs step ${r.baselineStep}, ${r.baselineGroups}`).join(" / ")}`,
    )
    .join("; ");
  process.stdout.write(
    `${equal.benchmark} at equal rollouts, QuestA's final step against the baseline's evaluation with the nearest rollout groups (${steps}): ${METRICS.map((m) => `${m} ${signed(equal.pairedDifference[m])}`).join(", ")}\n`,
  );
}
