/**
 * The QuestA effect on the synthetic hard split: QuestA (hint curriculum) vs plain RL with the same
 * budget (`--baseline`: every hint ratio 0), same warm-started policy, several seeds. Prints one
 * JSON object and a table: per arm, pass@1 and pass@8 on the hard evaluation split at every
 * evaluation step, the mean over seeds with a 95% t-interval, and each seed's values.
 *
 *   npm run bench:questa [-- --file F] [--seeds 0,1,2] [--out DIR]
 *
 * Default file: manifests/examples/quickstart.yaml; runs go to a temporary directory (or --out),
 * warm starts are cached in ~/.cache/questa (shared by both arms of a seed).
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { cpus, homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { EvaluationResultData } from "../functions/contracts/events.ts";
import { validateYaml } from "../functions/contracts/validate.ts";
import { runEmbedded } from "../functions/pipeline/embedded-run.ts";

// two-sided 97.5% quantiles of Student's t by degrees of freedom
const T975 = [Number.NaN, 12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

function meanInterval(values: number[]): { mean: number; low: number; high: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, low: mean, high: mean };
  const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const half = (T975[n - 1] ?? 1.96) * (sd / Math.sqrt(n));
  return { mean, low: mean - half, high: mean + half };
}

const { values } = parseArgs({
  options: {
    file: { type: "string", default: "manifests/examples/quickstart.yaml" },
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

type Arm = "questa" | "baseline";
const results: Record<Arm, Record<number, EvaluationResultData[]>> = { questa: {}, baseline: {} };
const seconds: Record<Arm, number[]> = { questa: [], baseline: [] };
for (const seed of seeds) {
  for (const arm of ["questa", "baseline"] as const) {
    const resource = {
      ...base,
      metadata: { ...base.metadata, name: `bench-s${seed}` },
      spec: { ...base.spec, storage: { ...base.spec.storage, localDir: outDir } },
    };
    const started = Date.now();
    const summary = await runEmbedded({
      resource,
      baseDir: outDir,
      baseline: arm === "baseline",
      seed,
      cacheDir,
    });
    seconds[arm].push((Date.now() - started) / 1000);
    results[arm][seed] = summary.evaluations.filter((e) => e.benchmark === values.benchmark);
    const hard = results[arm][seed]
      .map(
        (e) =>
          `step ${e.step} pass@1 ${e.passAt1.toFixed(3)} pass@8 ${(e.passAtK["8"] ?? Number.NaN).toFixed(3)}`,
      )
      .join("; ");
    process.stderr.write(`seed ${seed} ${arm}: ${seconds[arm].at(-1)?.toFixed(0)} s: ${hard}\n`);
  }
}

const steps = [...new Set(Object.values(results.questa).flatMap((evals) => evals.map((e) => e.step)))].sort(
  (a, b) => a - b,
);
const table = steps.map((step) => {
  const row: Record<string, unknown> = { step };
  for (const arm of ["questa", "baseline"] as const) {
    for (const metric of ["pass@1", "pass@8"] as const) {
      const perSeed = seeds.map((seed) => {
        const e = results[arm][seed]?.find((x) => x.step === step);
        if (!e) return Number.NaN;
        return metric === "pass@1" ? e.passAt1 : (e.passAtK["8"] ?? Number.NaN);
      });
      row[`${arm} ${metric}`] = { ...meanInterval(perSeed), perSeed };
    }
  }
  return row;
});

const final = table.at(-1) ?? {};
const ahead = (metric: string) => {
  const q = final[`questa ${metric}`] as { low: number } | undefined;
  const b = final[`baseline ${metric}`] as { high: number } | undefined;
  return q !== undefined && b !== undefined && q.low > b.high;
};
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
      steps: table,
      questaAheadOutsideIntervals: { "pass@1": ahead("pass@1"), "pass@8": ahead("pass@8") },
    },
    null,
    2,
  )}\n`,
);
const f = (x: unknown) => {
  const v = x as { mean: number; low: number; high: number };
  return `${v.mean.toFixed(3)} [${v.low.toFixed(3)}, ${v.high.toFixed(3)}]`;
};
process.stdout.write(
  "\nstep  QuestA pass@1          baseline pass@1        QuestA pass@8          baseline pass@8\n",
);
for (const row of table) {
  process.stdout.write(
    `${String(row.step).padEnd(5)} ${f(row["questa pass@1"]).padEnd(22)} ${f(row["baseline pass@1"]).padEnd(22)} ${f(row["questa pass@8"]).padEnd(22)} ${f(row["baseline pass@8"])}\n`,
  );
}
