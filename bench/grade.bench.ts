/**
 * Grading throughput and latency. Prints one JSON object:
 * - shared_cases: every labelled case of ../shared/verifier-cases, graded in-thread, one process
 * - typical: RL-style responses (a few hundred words of reasoning, then \boxed{...}) against
 *   AIME-like integer, fraction and radical golds, 16 samples per gold
 * - synthetic_arithmetic: the built-in task's boxed integers
 * - pool: the typical workload through GraderPool (2 worker threads)
 * - adversarial: the slowest of a few pathological checks (deep nesting, towers, megabyte strings)
 * - peer_compute_engine: @cortex-js/compute-engine parse + isEqual on the same typical answers
 * - peer_math_verify: Python math-verify (HuggingFace; `pip install math-verify`) parse + verify on
 *   the same responses, gold parses cached as ours are, when python3 has it; else the reason
 * Medians over repeats; p99 from per-check timings.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ComputeEngine } from "@cortex-js/compute-engine";
import { extractAnswer, GraderPool, gradeResponse } from "../functions/grading/index.ts";
import { loadVerifierCases, verdictFor } from "../functions/grading/verifier-cases.ts";

const REPEATS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function percentile(xs: Float64Array, p: number): number {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

/** runs `check` over `n` items per repeat; returns median checks/s and latency percentiles (µs) */
function measure(n: number, check: (i: number) => unknown) {
  for (let i = 0; i < Math.min(n, 2000); i++) check(i); // warm-up
  const rates: number[] = [];
  const latencies = new Float64Array(n);
  for (let r = 0; r < REPEATS; r++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      check(i);
      latencies[i] = performance.now() - t;
    }
    rates.push(n / ((performance.now() - start) / 1000));
  }
  return {
    checks_per_repeat: n,
    verifications_per_s: Math.round(median(rates)),
    p50_us: Math.round(percentile(latencies, 0.5) * 10_000) / 10,
    p99_us: Math.round(percentile(latencies, 0.99) * 10_000) / 10,
  };
}

const MATH_VERIFY_SCRIPT = `
import json, sys, time
from math_verify import parse, verify
items = json.load(open(sys.argv[1]))
gold_cache = {}
verdicts = []
start = time.perf_counter()
for gold, response in items:
    g = gold_cache.get(gold)
    if g is None:
        g = gold_cache[gold] = parse("$" + gold + "$")
    verdicts.append(bool(verify(g, parse(response))))
elapsed = time.perf_counter() - start
print(json.dumps({"rate": len(items) / elapsed, "verdicts": verdicts}))
`;

/** Python math-verify on the same responses, or why it could not run */
function mathVerifyPeer(
  items: Array<{ gold: string; response: string }>,
  ours: boolean[],
): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), "questa-grade-bench-"));
  try {
    const file = join(dir, "items.json");
    writeFileSync(file, JSON.stringify(items.map((x) => [x.gold, x.response])));
    const run = spawnSync("python3", ["-c", MATH_VERIFY_SCRIPT, file], {
      encoding: "utf8",
      timeout: 300_000,
    });
    if (run.status !== 0) return { unavailable: (run.stderr || String(run.error)).trim().split("\n").pop() };
    const out = JSON.parse(run.stdout) as { rate: number; verdicts: boolean[] };
    const agree = out.verdicts.filter((v, i) => v === ours[i]).length;
    return {
      what: "math_verify.verify(parse(gold), parse(response)), one process",
      checks: items.length,
      verifications_per_s: Math.round(out.rate),
      agreement_with_ours: agree / items.length,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** deterministic RL-like workload: golds x 16 samples, about half correct, varied spellings */
function typicalWorkload(): Array<{ gold: string; response: string }> {
  const golds: Array<{ gold: string; right: string[]; wrong: string[] }> = [];
  for (let k = 0; k < 64; k++) {
    const n = (k * 37 + 11) % 1000;
    golds.push({
      gold: String(n),
      right: [String(n), `0${n}`, `${n}.0`],
      wrong: [String(n + 1), String(n * 2 + 3)],
    });
    golds.push({
      gold: `\\frac{${k + 1}}{${k + 7}}`,
      right: [`\\frac{${k + 1}}{${k + 7}}`, `\\dfrac{${2 * (k + 1)}}{${2 * (k + 7)}}`, `${k + 1}/${k + 7}`],
      wrong: [`\\frac{${k + 2}}{${k + 7}}`],
    });
    golds.push({
      gold: `${k + 2}\\sqrt{${(k % 5) + 2}}`,
      right: [`${k + 2}\\sqrt{${(k % 5) + 2}}`, `\\sqrt{${(k + 2) ** 2 * ((k % 5) + 2)}}`],
      wrong: [`${k + 3}\\sqrt{${(k % 5) + 2}}`],
    });
  }
  const reasoning = "We consider the cases one by one and simplify each expression carefully. ".repeat(30);
  const out: Array<{ gold: string; response: string }> = [];
  for (const g of golds) {
    for (let s = 0; s < 16; s++) {
      const pool = s % 2 === 0 ? g.right : g.wrong;
      out.push({
        gold: g.gold,
        response: `${reasoning}\nTherefore the answer is $\\boxed{${pool[s % pool.length]}}$.`,
      });
    }
  }
  return out;
}

async function main(): Promise<void> {
  const casesDir = fileURLToPath(new URL("../../shared/verifier-cases", import.meta.url));
  const cases = loadVerifierCases(casesDir);
  const shared = measure(cases.length * 20, (i) => verdictFor(cases[i % cases.length]!));

  const typicalItems = typicalWorkload();
  let correct = 0;
  for (const item of typicalItems) if (gradeResponse(item.gold, item.response).equal) correct++;
  const typical = measure(typicalItems.length * 4, (i) => {
    const item = typicalItems[i % typicalItems.length]!;
    return gradeResponse(item.gold, item.response);
  });

  const arithmetic = measure(20_000, (i) => {
    const n = (i * 7919) % 97;
    return gradeResponse(
      String(n),
      `3 * 5 = 15\n15 + ${n} = ${15 + n}\n... \\boxed{${(n + (i % 3 === 0 ? 1 : 0)) % 97}}`,
    );
  });

  const pool = new GraderPool({ size: 2 });
  await Promise.all(typicalItems.slice(0, 64).map((x) => pool.grade(x.gold, x.response)));
  const poolRates: number[] = [];
  for (let r = 0; r < 3; r++) {
    const start = performance.now();
    await Promise.all(typicalItems.map((x) => pool.grade(x.gold, x.response)));
    poolRates.push(typicalItems.length / ((performance.now() - start) / 1000));
  }
  await pool.close();

  const ce = new ComputeEngine();
  const answers = typicalItems.slice(0, 400).map((x) => [x.gold, extractAnswer(x.response) ?? ""] as const);
  const peer = measure(answers.length, (i) => {
    const [g, p] = answers[i]!;
    return ce.parse(g).isEqual(ce.parse(p));
  });

  // pathological inputs, in-thread: the slowest single check
  const adversarial: Array<[string, string]> = [
    ["1", `\\boxed{${"(".repeat(50_000)}1${")".repeat(50_000)}}`],
    ["1", "\\boxed{10^{10^{10}}}"],
    ["1", "\\boxed{(10^{10})!}"],
    ["1", "\\boxed{".repeat(100_000)],
    ["1", `The answer is ${"1+".repeat(400_000)}1`],
    ["1", `\\boxed{${"x+".repeat(1900)}1}`],
    ["1", "\\boxed{\\sum_{k=1}^{10^{9}} k}"],
  ];
  let adversarialMaxMs = 0;
  for (const [gold, response] of adversarial) {
    const t = performance.now();
    gradeResponse(gold, response);
    adversarialMaxMs = Math.max(adversarialMaxMs, performance.now() - t);
  }

  const peerItems = typicalItems.filter((_, i) => i % 4 === 0);
  const peerMathVerify = mathVerifyPeer(
    peerItems,
    peerItems.map((x) => gradeResponse(x.gold, x.response).equal),
  );

  const cpu = cpus();
  console.log(
    JSON.stringify(
      {
        benchmark: "grade",
        machine: { cpu: cpu[0]?.model ?? "unknown", cores: cpu.length, node: process.version },
        repeats: REPEATS,
        shared_cases: { cases: cases.length, ...shared },
        typical: {
          responses: typicalItems.length,
          correct_fraction: correct / typicalItems.length,
          ...typical,
        },
        synthetic_arithmetic: arithmetic,
        pool: { workers: 2, verifications_per_s: Math.round(median(poolRates)) },
        adversarial: { inputs: adversarial.length, max_ms: Math.round(adversarialMaxMs * 10) / 10 },
        peer_compute_engine: { what: "ce.parse(gold).isEqual(ce.parse(answer)), extracted answers", ...peer },
        peer_math_verify: peerMathVerify,
      },
      null,
      2,
    ),
  );
}

await main();
