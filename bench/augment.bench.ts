/**
 * Augmentation benchmark: records/s of QuestA hint augmentation over OpenR1-style records (an R1
 * `<think>` trace, then a ~700-character solution with a boxed answer; 10% contain characters
 * outside the BMP, so the code-point path is measured too), on one core:
 * - chars unit (the official default), target >= 50,000 records/s;
 * - tokens unit with a UTF-8 byte tokenizer (one token per byte: an upper bound on token counts);
 * - reading the same records from JSONL (parse + map + stable ids);
 * - the peer: the official add_prefix.py logic in CPython on the same records (augmentation loop
 *   only, JSON already parsed), when python3 is installed; its prompts' sha256 must equal ours.
 * Prints one JSON document; numbers are medians over repeats.
 * Env: QUESTA_BENCH_RECORDS (default 100000), QUESTA_BENCH_REPEATS (default 5).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createRng, type Rng } from "../functions/model/rng.ts";
import { Augmenter, type Tokenizer } from "../functions/questa/augmentation.ts";
import { parseDataset } from "../functions/questa/dataset-readers.ts";
import type { MathRecord } from "../functions/questa/record.ts";

const count = Number(process.env.QUESTA_BENCH_RECORDS ?? 100_000);
const repeats = Number(process.env.QUESTA_BENCH_REPEATS ?? 5);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const WORDS = [
  "we",
  "have",
  "the",
  "sum",
  "of",
  "roots",
  "so",
  "thus",
  "let",
  "then",
  "x",
  "y",
  "=",
  "+",
  "\\frac{1}{2}",
  "$",
  "≤",
  "π",
];

function text(rng: Rng, chars: number, astral: boolean): string {
  let out = "";
  while (out.length < chars) {
    out += WORDS[Math.floor(rng.next() * WORDS.length)];
    out += rng.next() < 0.1 ? "\n" : " ";
    if (astral && rng.next() < 0.01) out += "𝑥 ";
  }
  return out;
}

/** the dataset as JSON Lines, built row by row so the rows themselves are never all held */
function openR1Jsonl(rng: Rng, n: number): string {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const answer = String(Math.floor(rng.next() * 1000));
    const astral = rng.next() < 0.1;
    const solution = `${text(rng, 650, astral)}The answer is $\\boxed{${answer}}$.`;
    const row = {
      problem: `Problem ${i}: ${text(rng, 250, false)}Find the answer.`,
      answer,
      generation: `<think>${text(rng, 600, astral)}</think>\n${solution}`,
    };
    lines.push(JSON.stringify(row));
  }
  return `${lines.join("\n")}\n`;
}

const utf8Bytes: Tokenizer = {
  encode: (value) => Array.from(new TextEncoder().encode(value)),
  decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids)),
};

function measure(
  records: readonly MathRecord[],
  augmenter: Augmenter,
  runs: number,
): { perSecond: number; digest: string } {
  const rates: number[] = [];
  let digest = "";
  for (let run = 0; run < runs; run++) {
    const start = performance.now();
    const prompts: string[] = [];
    for (const record of records) {
      const outcome = augmenter.augment(record);
      if (outcome.kind === "augmented") prompts.push(outcome.question.prompt);
    }
    const seconds = (performance.now() - start) / 1000;
    rates.push(records.length / seconds);
    if (run === 0) digest = createHash("sha256").update(prompts.join("\u0000")).digest("hex");
  }
  return { perSecond: Math.round(median(rates)), digest };
}

const OFFICIAL_PYTHON = String.raw`
import hashlib, json, sys, time
# the logic of foreverlasting1202/QuestA AReaL/datasets/add_prefix.py (ratio 0.5)
def split_prefix(text, scale):
    length = len(text)
    length *= scale
    return text[:int(length)], text[int(length):]
rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
repeats = int(sys.argv[2])
rates = []
for run in range(repeats):
    start = time.perf_counter()
    prompts = []
    for d in rows:
        text = d['generation']
        if text[0] == '"':
            text = text[1:]
            text = text[:-1]
        solution = text.split('</think>')[-1]
        prefix, suffix = split_prefix(solution, 0.5)
        if len(prefix) < 10:
            prompt = d['problem'] + '\n\n'
        else:
            prompt = d['problem'] + '\n\n' + '## Hint.' + prefix
        if d['answer'] not in solution:
            continue
        prompts.append(prompt)
    rates.append(len(rows) / (time.perf_counter() - start))
    if run == 0:
        digest = hashlib.sha256('\0'.join(prompts).encode('utf-8', 'surrogatepass')).hexdigest()
rates.sort()
print(json.dumps({"perSecond": round(rates[len(rates) // 2]), "digest": digest}))
`;

function officialPython(
  path: string,
): { perSecond: number; digest: string; python: string } | { skipped: string } {
  const version = spawnSync("python3", ["--version"], { encoding: "utf8" });
  if (version.status !== 0) return { skipped: "python3 not found" };
  const result = spawnSync(
    "python3",
    ["-c", OFFICIAL_PYTHON, path, String(Math.max(1, Math.min(repeats, 3)))],
    {
      encoding: "utf8",
      maxBuffer: 1 << 20,
    },
  );
  if (result.status !== 0) return { skipped: `python3 failed: ${result.stderr.slice(0, 300)}` };
  return {
    ...(JSON.parse(result.stdout) as { perSecond: number; digest: string }),
    python: version.stdout.trim(),
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "questa-augment-bench-"));
  const path = join(dir, "openr1.jsonl");
  writeFileSync(path, openR1Jsonl(createRng(20250717), count));
  try {
    const bytes = new Uint8Array(readFileSync(path));
    const readRates: number[] = [];
    let records: MathRecord[] = [];
    for (let run = 0; run < Math.min(repeats, 3); run++) {
      const start = performance.now();
      const read = await parseDataset(bytes, { source: "openr1", mapping: "openr1", format: "jsonl" });
      readRates.push(read.records.length / ((performance.now() - start) / 1000));
      records = read.records;
    }
    const chars = measure(records, new Augmenter({ ratio: 0.5 }), repeats);
    const tokens = measure(
      records,
      new Augmenter({ ratio: 0.5, unit: "tokens", tokenizer: utf8Bytes }),
      Math.min(repeats, 3),
    );
    const lines = measure(records, new Augmenter({ ratio: 0.5, unit: "lines" }), repeats);
    // the reader already cut the text after </think>; the official script gets the raw generations
    const peer = officialPython(path);
    const cpu = cpus()[0];
    console.log(
      JSON.stringify(
        {
          benchmark: "augment",
          records: records.length,
          repeats,
          meanSolutionChars: Math.round(
            records.reduce((n, r) => n + (r.solution?.length ?? 0), 0) / records.length,
          ),
          recordsPerSecond: {
            chars: chars.perSecond,
            tokens: tokens.perSecond,
            lines: lines.perSecond,
            readJsonl: Math.round(median(readRates)),
          },
          target: { charsRecordsPerSecond: 50_000, met: chars.perSecond >= 50_000 },
          officialPython:
            "skipped" in peer
              ? peer
              : {
                  ...peer,
                  sameBytesAsOfficial: peer.digest === chars.digest,
                  speedup: Math.round((chars.perSecond / peer.perSecond) * 10) / 10,
                },
          machine: {
            cpu: cpu?.model ?? "unknown",
            cores: cpus().length,
            memoryGiB: Math.round(totalmem() / 2 ** 30),
            node: process.version,
            singleThread: true,
          },
        },
        null,
        2,
      ),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
