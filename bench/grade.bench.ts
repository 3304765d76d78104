/**
 * Grading agreement, throughput and latency, with Python math-verify as the peer in the same run.
 * Prints one JSON object:
 * - agreement: for each labelled case set of test/fixtures/verifier-cases (graders' own tests,
 *   math-verify's own test suite, free-form responses), how often questa strict, questa lenient
 *   and math-verify agree with the labels, all in math-verify's protocol (both the gold and the
 *   whole prediction go through extraction, one configuration for every case); for the graders'
 *   tests also questa under each upstream test's own protocol (verdictFor)
 * - shared_cases, typical, synthetic_arithmetic: in-thread checks/s (median of 5 repeats), p50/p99
 * - pool: the typical workload through GraderPool (2 worker threads)
 * - adversarial: the slowest of the pathological checks, in both modes (target: each within 1 s)
 * - peer_math_verify: math-verify's checks/s on the same typical responses and case sets, and its
 *   verdict agreement with questa lenient; or why it could not run
 * - peer_compute_engine: @cortex-js/compute-engine parse + isEqual on the same typical answers
 * math-verify comes from PyPI, pinned with hashes (scripts/reference/requirements-math-verify.lock),
 * in a cached venv made by scripts/install-reference-venv.sh --kind math-verify.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ComputeEngine } from "@cortex-js/compute-engine";
import { z } from "zod";
import { extractAnswer, GraderPool, type GradingMode, gradeResponse } from "../functions/grading/index.ts";
import {
  type CaseSet,
  CaseSets,
  caseSetDir,
  loadVerifierCases,
  protocolPair,
  protocolVerdict,
  type VerifierCase,
  verdictFor,
} from "../functions/grading/verifier-cases.ts";

const REPEATS = 5;
const root = fileURLToPath(new URL("..", import.meta.url));

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

const PeerOutputSchema = z.object({
  math_verify: z.string(),
  python: z.string(),
  verdicts: z.array(z.boolean()),
  checks_per_s: z.array(z.number()),
  slowest_check_s: z.number(),
});
type PeerOutput = z.infer<typeof PeerOutputSchema>;

/** the cached venv with math-verify, installed from its hashed lock on first use; or why not */
function mathVerifyPython(): string | { unavailable: string } {
  try {
    const venv = execFileSync(join(root, "scripts", "install-reference-venv.sh"), ["--math-verify"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    }).trim();
    return join(venv, "bin", "python");
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { unavailable: (err.stderr || err.message).trim().split("\n").pop() ?? "install failed" };
  }
}

/** math-verify on (gold, prediction) pairs in one process (scripts/reference/math_verify_peer.py) */
function runMathVerify(
  python: string,
  pairs: Array<[string | null, string]>,
  repeats: number,
): PeerOutput | { unavailable: string } {
  const dir = mkdtempSync(join(tmpdir(), "questa-grade-bench-"));
  try {
    const file = join(dir, "pairs.json");
    writeFileSync(file, JSON.stringify({ pairs, repeats }));
    const run = spawnSync(python, [join(root, "scripts", "reference", "math_verify_peer.py"), file], {
      encoding: "utf8",
      timeout: 900_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (run.status !== 0)
      return { unavailable: (run.stderr || String(run.error)).trim().split("\n").pop() ?? "failed" };
    const parsed = PeerOutputSchema.safeParse(JSON.parse(run.stdout));
    return parsed.success ? parsed.data : { unavailable: `unexpected output: ${parsed.error.message}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** a bare LaTeX gold as math-verify's users pass it: between dollars */
function inDollars(gold: string): string {
  return /\$|\\\(|\\\[|\\boxed/.test(gold) ? gold : `$${gold}$`;
}

const ratio = (agree: number, total: number): number => Math.round((agree / total) * 10_000) / 10_000;

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

/** pathological inputs: each must come back (not equal) well within the 1 s bound */
const ADVERSARIAL: Array<[string, string]> = [
  ["1", `\\boxed{${"(".repeat(50_000)}1${")".repeat(50_000)}}`],
  ["1", "\\boxed{10^{10^{10}}}"],
  ["1", "\\boxed{(10^{10})!}"],
  ["1", "\\boxed{".repeat(100_000)],
  ["1", `The answer is ${"1+".repeat(400_000)}1`],
  ["1", `\\boxed{${"x+".repeat(1900)}1}`],
  ["1", "\\boxed{\\sum_{k=1}^{10^{9}} k}"],
  ["1", `${"$x$ and ".repeat(60_000)}done`],
  ["1", `${"$".repeat(500_000)}1`],
  ["1", `${"\\(".repeat(200_000)}1`],
  ["1", `${"answer ".repeat(100_000)}1`],
  ["1", `${"1,".repeat(300_000)}1`],
  ["1", `${"9 ".repeat(300_000)}9`],
  ["x<1", `$${"-x > -1 \\wedge ".repeat(100)}x<1$`],
  ["1", `$${"\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}".repeat(8)}$`],
];

async function main(): Promise<void> {
  const sets = Object.fromEntries(CaseSets.map((set) => [set, loadVerifierCases(caseSetDir(set))])) as Record<
    CaseSet,
    VerifierCase[]
  >;
  const allCases = CaseSets.flatMap((set) => sets[set]);
  const shared = measure(allCases.length * 10, (i) =>
    protocolVerdict(allCases[i % allCases.length]!, "lenient"),
  );

  const typicalItems = typicalWorkload();
  let correct = 0;
  for (const item of typicalItems) if (gradeResponse(item.gold, item.response).equal) correct++;
  const typical = measure(typicalItems.length * 4, (i) => {
    const item = typicalItems[i % typicalItems.length]!;
    return gradeResponse(item.gold, item.response, { mode: "lenient" });
  });
  const typicalStrict = measure(typicalItems.length * 4, (i) => {
    const item = typicalItems[i % typicalItems.length]!;
    return gradeResponse(item.gold, item.response, { mode: "strict" });
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
    await Promise.all(typicalItems.map((x) => pool.grade(x.gold, x.response, { mode: "lenient" })));
    poolRates.push(typicalItems.length / ((performance.now() - start) / 1000));
  }
  await pool.close();

  const ce = new ComputeEngine();
  const answers = typicalItems.slice(0, 400).map((x) => [x.gold, extractAnswer(x.response) ?? ""] as const);
  const peerCe = measure(answers.length, (i) => {
    const [g, p] = answers[i]!;
    return ce.parse(g).isEqual(ce.parse(p));
  });

  const adversarialMs: Record<GradingMode, number> = { strict: 0, lenient: 0 };
  for (const mode of ["strict", "lenient"] as const) {
    for (const [gold, response] of ADVERSARIAL) {
      const t = performance.now();
      gradeResponse(gold, response, { mode });
      adversarialMs[mode] = Math.max(adversarialMs[mode], performance.now() - t);
    }
  }

  // agreement with the labels, every grader in the same protocol, on every case set
  const python = mathVerifyPython();
  const peerVerdicts: Partial<Record<CaseSet, PeerOutput | { unavailable: string }>> = {};
  const agreement: Record<string, unknown> = {};
  for (const set of CaseSets) {
    const cases = sets[set];
    const strict = cases.map((c) => protocolVerdict(c, "strict"));
    const lenient = cases.map((c) => protocolVerdict(c, "lenient"));
    const count = (verdicts: boolean[]) => verdicts.filter((v, i) => v === cases[i]!.expected).length;
    const row: Record<string, unknown> = {
      cases: cases.length,
      questa_strict: ratio(count(strict), cases.length),
      questa_lenient: ratio(count(lenient), cases.length),
    };
    if (set === "shared")
      row.questa_upstream_protocols = ratio(
        cases.filter((c) => verdictFor(c) === c.expected).length,
        cases.length,
      );
    if (typeof python === "string") {
      const pairs = cases.map(protocolPair);
      const peer = runMathVerify(python, pairs, 1);
      peerVerdicts[set] = peer;
      if ("verdicts" in peer) {
        row.math_verify = ratio(count(peer.verdicts), cases.length);
        // math-verify reads LaTeX only between delimiters: the usual "$" + gold + "$" call, for reference
        const wrapped = runMathVerify(
          python,
          pairs.map(([g, p]) => [g === null ? null : inDollars(g), p]),
          1,
        );
        if ("verdicts" in wrapped)
          row.math_verify_gold_in_dollars = ratio(count(wrapped.verdicts), cases.length);
        row.lenient_misses = cases.filter((c, i) => lenient[i] !== c.expected).map((c) => c.id);
        row.math_verify_misses = cases.filter((c, i) => peer.verdicts[i] !== c.expected).map((c) => c.id);
      } else row.math_verify = peer;
    } else row.math_verify = python;
    agreement[set] = row;
  }

  let peerMathVerify: Record<string, unknown>;
  if (typeof python === "string") {
    const peerItems = typicalItems.filter((_, i) => i % 4 === 0);
    const peer = runMathVerify(
      python,
      peerItems.map((x) => [inDollars(x.gold), x.response]),
      3,
    );
    if ("verdicts" in peer) {
      const ours = peerItems.map((x) => gradeResponse(x.gold, x.response, { mode: "lenient" }).equal);
      const caseRates = CaseSets.flatMap((set) => {
        const p = peerVerdicts[set];
        return p && "checks_per_s" in p ? p.checks_per_s : [];
      });
      peerMathVerify = {
        what: 'math_verify.verify(parse("$" + gold + "$"), parse(response)) with defaults, one process, gold parses cached',
        version: peer.math_verify,
        python: peer.python,
        typical_checks: peerItems.length,
        typical_verifications_per_s: Math.round(median(peer.checks_per_s)),
        case_sets_verifications_per_s: caseRates.map(Math.round),
        slowest_typical_check_ms: Math.round(peer.slowest_check_s * 10_000) / 10,
        typical_agreement_with_questa_lenient: ratio(
          peer.verdicts.filter((v, i) => v === ours[i]).length,
          peerItems.length,
        ),
      };
    } else peerMathVerify = peer;
  } else peerMathVerify = python;

  const cpu = cpus();
  console.log(
    JSON.stringify(
      {
        benchmark: "grade",
        machine: { cpu: cpu[0]?.model ?? "unknown", cores: cpu.length, node: process.version },
        repeats: REPEATS,
        agreement,
        case_sets: { cases: allCases.length, mode: "lenient", ...shared },
        typical: {
          responses: typicalItems.length,
          correct_fraction: correct / typicalItems.length,
          lenient: typical,
          strict: typicalStrict,
        },
        synthetic_arithmetic: arithmetic,
        pool: { workers: 2, verifications_per_s: Math.round(median(poolRates)) },
        adversarial: {
          inputs: ADVERSARIAL.length,
          max_ms_strict: Math.round(adversarialMs.strict * 10) / 10,
          max_ms_lenient: Math.round(adversarialMs.lenient * 10) / 10,
        },
        peer_math_verify: peerMathVerify,
        peer_compute_engine: {
          what: "ce.parse(gold).isEqual(ce.parse(answer)), extracted answers",
          ...peerCe,
        },
      },
      null,
      2,
    ),
  );
}

await main();
