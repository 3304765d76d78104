/**
 * The QuestA effect on the synthetic hard split: QuestA (hint curriculum) vs plain RL with the same
 * budget (`--baseline`: every hint ratio 0), same warm-started policy, several seeds. Prints one
 * JSON object and a table: per arm, pass@1 and pass@8 on the hard evaluation split (or
 * `--benchmark NAME`) at every evaluation step, the mean over seeds with a 95% t-interval, each
 * seed's values, and whether QuestA is ahead outside the intervals / in every seed.
 *
 *   npm run bench:questa [-- --file F] [--seeds 0,1,2] [--out DIR] [--benchmark NAME]
 *
 * Default file: bench/questa-bench.yaml (the quickstart at lr 3e-4); runs go to a temporary
 * directory (or --out), warm starts are cached in ~/.cache/questa (shared by both arms of a seed). With --out, a bench
 * resumes: an arm whose run already evaluated its final step is read from its event log, an
 * interrupted one resumes, so seeds can be added to an earlier bench (`--seeds 0,1,2` after
 * `--seeds 0`); a directory left by other settings is refused. Per seed it writes the HTML report
 * of the QuestA run against its baseline (`questa report RUN --vs BASELINE`) to
 * `<out>/reports/seed-<seed>.html` and prints its path.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { cpus, homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { writeReport } from "../cli/report-command.ts";
import { EvaluationResult, type EvaluationResultData } from "../functions/contracts/events.ts";
import { validateYaml } from "../functions/contracts/validate.ts";
import { claimRunDir, effectiveSpec, runEmbedded, runName } from "../functions/host/embedded-run.ts";
import { eventLogPath, readEventLogFile } from "../functions/runtime/memory-bus.ts";

// two-sided 97.5% quantiles of Student's t by degrees of freedom
const T975 = [Number.NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

function meanInterval(values: number[]): { mean: number; low: number; high: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, low: mean, high: mean };
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = (T975[n - 1] ?? 1.96) * (sd / Math.sqrt(n));
  // pass rates live in [0, 1]
  return { mean, low: Math.max(0, mean - half), high: Math.min(1, mean + half) };
}

const { values } = parseArgs({
  options: {
    file: { type: "string", default: "bench/questa-bench.yaml" },
    seeds: { type: "string", default: "0,1,2" },
    out: { type: "string" },
    benchmark: { type: "string", default: "synthetic-hard-eval" },
  },
});
const file = resolve(values.file);
const seeds = values.seeds.split(",").map(Number);
const docs = validateYaml(readFileSync(file, "utf8"));
const first = docs[0]?.result;
if (!first?.ok) throw new Error(`${file} is not a valid QuestATraining`);
const base = first.value;
const outDir = values.out ? resolve(values.out) : mkdtempSync(join(tmpdir(), "questa-bench-"));
const cacheDir = process.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");

/**
 * The run's evaluations of the benchmark, from its event log (all of them, across resumes); a run
 * directory left by different settings is refused, not read.
 */
async function loggedEvaluations(
  resource: typeof base,
  baseline: boolean,
  seed: number,
): Promise<EvaluationResultData[]> {
  const run = runName(resource, baseline);
  const runDir = join(outDir, "runs", run);
  await claimRunDir(runDir, effectiveSpec(resource.spec, { baseline, seed }));
  const log = eventLogPath(runDir, `${run}.${EvaluationResult.topic}`);
  const byStep = new Map<number, EvaluationResultData>();
  for (const event of await readEventLogFile(log)) {
    const data = EvaluationResult.data.parse(event.data);
    if (data.benchmark === values.benchmark) byStep.set(data.step, data);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
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
const results: Record<Arm, Record<number, EvaluationResultData[]>> = { questa: {}, baseline: {} };
const seconds: Record<Arm, number[]> = { questa: [], baseline: [] };
const reports: string[] = [];
for (const seed of seeds) {
  const runDirs: Partial<Record<Arm, string>> = {};
  for (const arm of ["questa", "baseline"] as const) {
    const resource = {
      ...base,
      metadata: { ...base.metadata, name: `bench-s${seed}` },
      spec: { ...base.spec, storage: { ...base.spec.storage, localDir: outDir } },
    };
    const baseline = arm === "baseline";
    const started = Date.now();
    let evaluations = await loggedEvaluations(resource, baseline, seed);
    let took = "from its event log";
    if (!evaluations.some((e) => e.step === base.spec.learner.totalSteps)) {
      await runEmbedded({ resource, baseDir: outDir, baseline, seed, cacheDir });
      const wall = (Date.now() - started) / 1000;
      seconds[arm].push(wall);
      took = `${wall.toFixed(0)} s`;
      evaluations = await loggedEvaluations(resource, baseline, seed);
    }
    results[arm][seed] = evaluations;
    runDirs[arm] = join(outDir, "runs", runName(resource, baseline));
    const scores = evaluations
      .map((e) => `step ${e.step} ${METRICS.map((m) => `${m} ${metricValue(e, m).toFixed(3)}`).join(" ")}`)
      .join("; ");
    process.stderr.write(`seed ${seed} ${arm}: ${took}: ${scores}\n`);
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

const steps = [...new Set(Object.values(results.questa).flatMap((evals) => evals.map((e) => e.step)))].sort(
  (a, b) => a - b,
);
type Interval = ReturnType<typeof meanInterval> & { perSeed: number[] };
interface Row {
  step: number;
  arms: Record<Arm, Record<Metric, Interval>>;
  /** QuestA's interval lies wholly above the baseline's */
  questaAheadOutsideIntervals: Record<Metric, boolean>;
  /** QuestA's mean is above the baseline's in every seed */
  questaAheadInEverySeed: Record<Metric, boolean>;
}
const table: Row[] = steps.map((step) => {
  const cell = (arm: Arm, metric: Metric): Interval => {
    const perSeed = seeds.map((seed) => {
      const e = results[arm][seed]?.find((x) => x.step === step);
      return e ? metricValue(e, metric) : Number.NaN;
    });
    return { ...meanInterval(perSeed), perSeed };
  };
  const arms = {
    questa: byMetric((m) => cell("questa", m)),
    baseline: byMetric((m) => cell("baseline", m)),
  };
  // one seed has no interval: it can only be ahead in every seed
  const outside = (m: Metric) => seeds.length > 1 && arms.questa[m].low > arms.baseline[m].high;
  const everySeed = (m: Metric) =>
    arms.questa[m].perSeed.every((q, i) => q > (arms.baseline[m].perSeed[i] ?? Number.POSITIVE_INFINITY));
  return {
    step,
    arms,
    questaAheadOutsideIntervals: byMetric(outside),
    questaAheadInEverySeed: byMetric(everySeed),
  };
});

const cpu = cpus()[0]?.model ?? "unknown";
process.stdout.write(
  `${JSON.stringify(
    {
      bench: "questa",
      machine: { cpu, cores: cpus().length, node: process.version },
      file: values.file,
      benchmark: values.benchmark,
      seeds,
      wallSeconds: { questa: seconds.questa, baseline: seconds.baseline },
      reports,
      steps: table,
      final: table.at(-1) ?? null,
    },
    null,
    2,
  )}\n`,
);
const f = (v: Interval) => `${v.mean.toFixed(3)} [${v.low.toFixed(3)}, ${v.high.toFixed(3)}]`;
const mark = (row: Row, m: Metric) =>
  row.questaAheadOutsideIntervals[m] ? " >>" : row.questaAheadInEverySeed[m] ? " > " : "   ";
process.stdout.write(
  "\nstep  QuestA pass@1             baseline pass@1        QuestA pass@8             baseline pass@8\n",
);
for (const row of table) {
  const { questa, baseline } = row.arms;
  process.stdout.write(
    `${String(row.step).padEnd(5)} ${f(questa["pass@1"]).padEnd(22)}${mark(row, "pass@1")} ${f(baseline["pass@1"]).padEnd(22)} ${f(questa["pass@8"]).padEnd(22)}${mark(row, "pass@8")} ${f(baseline["pass@8"])}\n`,
  );
}
process.stdout.write(
  "\n>> QuestA ahead outside the 95% intervals; >  ahead in every seed, intervals overlapping\n",
);
