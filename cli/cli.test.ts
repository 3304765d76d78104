import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { testTempDir } from "../test/temp-dir.ts";
import { main } from "./main.ts";
import { captureIO } from "./test-io.ts";

const root = join(import.meta.dirname, "..");

describe("questa validate", () => {
  it("exits 0 for the examples", async () => {
    const { io, stdout } = captureIO(root);
    const code = await main(
      [
        "validate",
        "manifests/examples/quickstart.yaml",
        "manifests/examples/nemotron-aime.yaml",
        "manifests/examples/tiny-qwen2.yaml",
      ],
      io,
    );
    expect(code).toBe(0);
    expect(stdout()).toContain("valid QuestATraining quickstart");
  });

  it("lists all three mistakes of a file with their field paths", async () => {
    const dir = testTempDir("questa-validate-");
    writeFileSync(
      join(dir, "bad.yaml"),
      [
        "apiVersion: questa.dev/v1alpha1",
        "kind: QuestATraining",
        "metadata: { name: bad }",
        "spec:",
        "  datasets: { train: [{ name: t, synthetic: {} }] }",
        "  rollout: { groupSize: sixteen }",
        "  learner: { learningRatee: 0.1 }",
        "  augmentation: { curriculum: [{ ratio: 1.5 }] }",
      ].join("\n"),
    );
    const { io, stderr } = captureIO(dir);
    expect(await main(["validate", "bad.yaml"], io)).toBe(1);
    expect(stderr()).toContain("3 errors");
    expect(stderr()).toContain("spec.rollout.groupSize");
    expect(stderr()).toContain("spec.learner.learningRatee: unknown field");
    expect(stderr()).toContain("spec.augmentation.curriculum[0].ratio");
  });

  it("refuses a storage prefix or local directory that climbs out, and another run's topic prefix", async () => {
    const dir = testTempDir("questa-validate-");
    writeFileSync(
      join(dir, "climb.yaml"),
      [
        "apiVersion: questa.dev/v1alpha1",
        "kind: QuestATraining",
        "metadata: { name: climb, namespace: team-a }",
        "spec:",
        "  datasets: { train: [{ name: t, synthetic: {} }] }",
        "  storage: { prefix: ../../x, localDir: ../outside }",
        "  kafka: { topicPrefix: questa.team-b.victim }",
      ].join("\n"),
    );
    const { io, stderr } = captureIO(dir);
    expect(await main(["validate", "climb.yaml"], io)).toBe(1);
    expect(stderr()).toContain("3 errors");
    expect(stderr()).toContain("spec.storage.prefix: storage.prefix climbs out with a .. segment");
    expect(stderr()).toContain("spec.storage.localDir: storage.localDir climbs out with a .. segment");
    expect(stderr()).toContain(
      'spec.kafka.topicPrefix: "questa.team-b.victim" is not this run\'s: topic prefixes must be questa.team-a.climb',
    );
  });

  it("reports a missing file and usage errors", async () => {
    const { io, stderr } = captureIO(root);
    expect(await main(["validate", "nope.yaml"], io)).toBe(1);
    expect(stderr()).toContain("nope.yaml: cannot read: ENOENT");
    expect(await main(["validate"], captureIO(root).io)).toBe(2);
    expect(await main(["no-such-command"], captureIO(root).io)).toBe(2);
  });
});

describe("questa crd", () => {
  it("prints the CRD with printer columns", async () => {
    const { io, stdout } = captureIO(root);
    expect(await main(["crd"], io)).toBe(0);
    const crd = parse(stdout()) as {
      kind: string;
      spec: { versions: { additionalPrinterColumns: unknown[] }[] };
    };
    expect(crd.kind).toBe("CustomResourceDefinition");
    expect(crd.spec.versions[0]?.additionalPrinterColumns).toHaveLength(5);
  });
});

describe("questa events", () => {
  function event(type: string, time: string, data: unknown) {
    return `${JSON.stringify({ specversion: "1.0", id: `${type}-${time}`, source: "/questa/r/learn", type, subject: "r", time, datacontenttype: "application/json", data })}\n`;
  }

  it("prints a run's events oldest first, filtered by type", async () => {
    const dir = testTempDir("questa-events-");
    mkdirSync(join(dir, "events"));
    const status = { run: "r", kind: "started", step: 0, stage: 0, hintRatio: 0.5 };
    appendFileSync(
      join(dir, "events", "status.jsonl"),
      event("dev.questa.run.status.v1", "2026-01-01T00:00:02Z", status),
    );
    appendFileSync(
      join(dir, "events", "checkpoints.jsonl"),
      event("dev.questa.checkpoint.published.v1", "2026-01-01T00:00:01Z", { run: "r" }),
    );
    const all = captureIO(dir);
    expect(await main(["events", "."], all.io)).toBe(0);
    const lines = all.stdout().trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual([
      "dev.questa.checkpoint.published.v1",
      "dev.questa.run.status.v1",
    ]);
    // the checkpoint event above is missing fields: it is printed, with a warning
    expect(all.stderr()).toContain("does not match its schema");
    const filtered = captureIO(dir);
    expect(await main(["events", ".", "--type", "run.status"], filtered.io)).toBe(0);
    expect(filtered.stdout().trim().split("\n")).toHaveLength(1);
  });

  it("follows new events until interrupted", async () => {
    const dir = testTempDir("questa-follow-");
    mkdirSync(join(dir, "events"));
    let interrupt = () => {};
    const interrupted = new Promise<void>((resolve) => {
      interrupt = resolve;
    });
    const capture = captureIO(dir, interrupted);
    const running = main(["events", ".", "--follow"], capture.io);
    const status = { run: "r", kind: "step", step: 1, stage: 0, hintRatio: 0.5 };
    appendFileSync(
      join(dir, "events", "status.jsonl"),
      event("dev.questa.run.status.v1", "2026-01-01T00:00:03Z", status),
    );
    await expect.poll(() => capture.stdout(), { timeout: 10_000 }).toContain('"step":1');
    interrupt();
    expect(await running).toBe(0);
  });

  it("says what a run directory is when DIR is wrong", async () => {
    const { io, stderr } = captureIO(root);
    expect(await main(["events", "no-such-run"], io)).toBe(1);
    expect(stderr()).toContain("run directory");
  });
});

describe("questa run progress view", () => {
  it("says where the loop's time went", async () => {
    const { timingLine } = await import("./run-command.ts");
    const line = timingLine({
      wallSeconds: 312.4,
      functions: {
        learn: { busySeconds: 62, share: 0.198 },
        rollout: { busySeconds: 222, share: 0.711 },
      },
      samplingSeconds: { rollout: 156.2, evaluate: 31.24 },
      sampledTokens: 2_464_200,
      samplingTokensPerSecond: 11_100,
      rolloutMeanDecodeRows: 95.4,
      trainTokensPerSecond: 850.25,
      logProbGap: 0.0123,
    });
    expect(line).toBe(
      "time 5m 12s (after set-up); sampling 50% for rollout, 10% for evaluation; handlers busy (waits included): rollout 71%, learn 20%; sampling 11.1K tok/s (95 rows per decode step), training 850.3 tok/s, log-prob gap 0.012",
    );
  });

  it("says how fast a run with its functions as processes went", async () => {
    const { throughputLine } = await import("./run-command.ts");
    expect(
      throughputLine({
        wallSeconds: 95.6,
        sampledTokens: 123_456,
        samplingTokensPerSecond: 8_250,
        trainTokensPerSecond: undefined,
        logProbGap: undefined,
      }),
    ).toBe(
      "time 1m 36s (after set-up); 123456 tokens sampled; sampling 8.3K tok/s per rollout engine, training - tok/s (each function's busy time: its /metrics)",
    );
  });

  it("says what the vLLM servers did: the local one's start and restarts, the reloads, the step served at the end", async () => {
    const { vllmLine } = await import("./run-command.ts");
    expect(
      vllmLine({
        local: {
          url: "http://127.0.0.1:41000",
          device: "cpu",
          startSeconds: 62.4,
          restarts: 1,
          logFile: "/r/vllm/server-2.log",
        },
        reloads: 7,
        reloadSeconds: 0.1849,
        servedStep: 6,
      }),
    ).toBe(
      "vLLM: local server (CPU build) ready in 62 s, 1 restart(s), log /r/vllm/server-2.log; 7 reload(s) of 0.18 s on average; serving step 6 at the end",
    );
    // servers of the user's own (no local one); the reloads counted by a vllm-sync process elsewhere
    expect(vllmLine({ reloads: 0, servedStep: -1 })).toBe(
      "vLLM: 0 reload(s); the server did not say what it serves",
    );
    expect(vllmLine({ servedStep: 12 })).toBe("vLLM: serving step 12 at the end");
  });

  it("prints plain lines off a terminal and rewrites one status line on a terminal", async () => {
    const { ProgressView, summaryTable } = await import("./run-command.ts");
    const status = {
      kind: "status" as const,
      data: {
        run: "r",
        kind: "step" as const,
        step: 10,
        stage: 0,
        hintRatio: 0.5,
        metrics: {
          rewardMean: 1,
          passRate: 0.2,
          entropy: 0.3,
          clipFraction: 0,
          approxKl: 0,
          gradNorm: 1,
          loss: 0,
          tokensPerSecond: 1,
          staleness: 0,
          groupsKept: 16,
          groupsRejected: 4,
        },
      },
    };
    const plain = captureIO(root);
    new ProgressView(plain.io).update(status);
    expect(plain.stdout()).toBe("step 10 stage 0 (p=0.5) reward 1.000 pass 0.200 entropy 0.300 kept 16/20\n");
    const withGap = captureIO(root);
    new ProgressView(withGap.io).update({
      ...status,
      data: { ...status.data, metrics: { ...status.data.metrics, logProbGap: 0.0421 } },
    });
    expect(withGap.stdout()).toBe(
      "step 10 stage 0 (p=0.5) reward 1.000 pass 0.200 entropy 0.300 gap 0.042 kept 16/20\n",
    );
    const tty = captureIO(root);
    const view = new ProgressView({ ...tty.io, isTTY: true });
    view.update(status);
    view.update({ ...status, data: { ...status.data, step: 11 } });
    expect(tty.stdout()).toContain("\r\u001b[2Kstep 11");
    expect(tty.stdout()).not.toContain("\n");
    const evaluation = {
      run: "r",
      step: 10,
      benchmark: "hard",
      problems: 2,
      samples: 4,
      temperature: 0.6,
      topP: 0.95,
      hinted: false as const,
      passAt1: 0.25,
      passAtK: { "1": 0.25, "4": 0.5 },
      majAtK: {},
      passAt1Interval: { low: 0.1, high: 0.4 },
      results: { uri: "u", key: "k", sha256: "0".repeat(64), size: 1 },
    };
    expect(summaryTable([evaluation])).toContain("10    hard       0.250   0.100-0.400  0.500");
    // with more than one evaluation, a line per benchmark from the first to the last
    const start = { ...evaluation, step: 0, passAt1: 0.05, passAtK: { "1": 0.05, "4": 0.24 } };
    expect(summaryTable([start, evaluation])).toContain(
      "hard, step 0 -> 10: pass@1 0.050 -> 0.250, pass@4 0.240 -> 0.500\n",
    );
    expect(summaryTable([evaluation])).not.toContain("->");
  });
});

describe("one convention for help, versions and exit codes", () => {
  const run = async (args: string[], cwd = root) => {
    const capture = captureIO(cwd);
    const code = await main(args, capture.io);
    return { code, out: capture.stdout(), err: capture.stderr() };
  };

  it("prints --version, and help on stdout with exit 0 for every command, by --help, -h and help CMD", async () => {
    const version = await run(["--version"]);
    expect(version).toMatchObject({ code: 0, err: "" });
    expect(version.out).toMatch(/^questa \d+\.\d+\.\d+\n$/);
    for (const name of [
      "run",
      "function",
      "operator",
      "validate",
      "crd",
      "grade",
      "model",
      "events",
      "report",
    ]) {
      const long = await run([name, "--help"]);
      const short = await run([name, "-h"]);
      const help = await run(["help", name]);
      expect(long, name).toMatchObject({ code: 0, err: "" });
      expect(long.out, name).toMatch(new RegExp(`^usage: questa ${name}`));
      expect(short, name).toEqual(long);
      expect(help, name).toEqual(long);
    }
    expect(await run(["help"])).toMatchObject({ code: 0, err: "" });
    expect((await run(["--help"])).out).toContain("commands:");
  });

  it("exits 2 on stderr for a wrong command line, naming the problem, with the usage", async () => {
    for (const args of [
      [],
      ["nope"],
      ["help", "nope"],
      ["crd", "extra"],
      ["crd", "--yaml"],
      ["validate"],
      ["run"],
      ["run", "x.yaml", "--seed"],
      ["run", "x.yaml", "--seed="],
      ["run", "x.yaml", "--seed", "0x10"],
      ["run", "x.yaml", "--seed", "1e300"],
      ["run", "x.yaml", "--seed", "-1"],
      ["run", "x.yaml", "--seed=-1"],
      ["run", "x.yaml", "--seed", "1.5"],
      ["events"],
      ["model"],
      ["model", "generate", "dir", "--prompt", "x", "--max-new-tokens", "0"],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.out, args.join(" ")).toBe("");
      expect(result.err, args.join(" ")).toMatch(/^questa/);
    }
    const seed = await run(["run", "x.yaml", "--seed="]);
    expect(seed.err).toContain('--seed: expected a decimal number, got ""');
    expect(seed.err).toContain("usage: questa run FILE");
    const big = await run(["run", "x.yaml", "--seed", "1e300"]);
    expect(big.err).toContain("--seed: Too big");
    // -h is help, never a file name
    expect((await run(["run", "-h"])).code).toBe(0);
  });

  it("says an internal error is one, in one line, and shows its stack only with --debug", async () => {
    const { io, stderr } = captureIO(root);
    // a Proxy whose every access throws: an internal failure, not the user's input
    const broken = new Proxy(io, {
      get(target, key) {
        if (key === "cwd") throw new TypeError("broken cwd");
        return target[key as keyof typeof target];
      },
    });
    expect(await main(["validate", "x.yaml"], broken)).toBe(1);
    expect(stderr()).toBe(
      "questa validate: internal error: TypeError: broken cwd\n  this is a bug in questa, not in your input; run the command again with --debug for its stack trace\n",
    );
    const debug = captureIO(root);
    const brokenDebug = new Proxy(debug.io, {
      get(target, key) {
        if (key === "cwd") throw new TypeError("broken cwd");
        return target[key as keyof typeof target];
      },
    });
    expect(await main(["validate", "--debug", "x.yaml"], brokenDebug)).toBe(1);
    expect(debug.stderr()).toMatch(/internal error: TypeError: broken cwd\nTypeError: broken cwd\n\s+at /);
  });
});

describe("questa validate under bad input", () => {
  const write = (name: string, content: string | Uint8Array) => {
    const dir = testTempDir("questa-bad-");
    writeFileSync(join(dir, name), content);
    return dir;
  };
  const validate = async (dir: string, ...files: string[]) => {
    const capture = captureIO(dir);
    const code = await main(["validate", ...files], capture.io);
    return { code, out: capture.stdout(), err: capture.stderr() };
  };
  const head =
    "apiVersion: questa.dev/v1alpha1\nkind: QuestATraining\nmetadata: { name: ok }\nspec:\n  datasets: { train: [{ name: t, synthetic: {} }] }\n";

  it("refuses a file over the size limit before parsing it", async () => {
    const dir = write("big.yaml", `${head}${"  k: 1\n".repeat(40_000)}`);
    const { code, err } = await validate(dir, "big.yaml");
    expect(code).toBe(1);
    expect(err).toBe(
      "big.yaml: 273.6 KiB, over the limit of 256.0 KiB for a QuestATraining file (fix: give the resource itself (datasets are referenced by uri, not inlined))\n",
    );
  });

  it("prints at most 20 problems per document, then how many more", async () => {
    const keys = Array.from({ length: 5000 }, (_, i) => `  unknown${i}: 1\n`).join("");
    const { code, err } = await validate(write("keys.yaml", `${head}${keys}`), "keys.yaml");
    expect(code).toBe(1);
    const lines = err.trim().split("\n");
    expect(lines[0]).toBe("keys.yaml: 5000 errors");
    expect(lines).toHaveLength(22);
    expect(lines[21]).toBe("  ... and 4980 more");
  });

  it("reports duplicate keys with their line, in one pass", async () => {
    const { err } = await validate(write("dup.yaml", `${head}  seed: 1\n  seed: 2\n`), "dup.yaml");
    expect(err).toContain('(yaml): line 7, column 3: duplicate key "seed" (fix: keep one of them)');
  });

  it("stops an alias bomb and still checks the files after it", async () => {
    const bomb = [
      "a: &a [x,x,x,x,x,x,x,x,x]",
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]",
      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
    ].join("\n");
    const dir = write("bomb.yaml", bomb);
    writeFileSync(join(dir, "ok.yaml"), head);
    const { code, out, err } = await validate(dir, "bomb.yaml", "ok.yaml");
    expect(code).toBe(1);
    expect(err).toContain("bomb.yaml: 1 error\n  (yaml): aliases expand to too many values");
    expect(out).toBe("ok.yaml: valid QuestATraining ok\n");
    const many = Array.from({ length: 101 }, (_, i) => `k${i}: *a`).join("\n");
    const aliases = await validate(write("aliases.yaml", `a: &a 1\n${many}\n`), "aliases.yaml");
    expect(aliases.err).toContain("more than 100 aliases");
  });

  it("refuses deep nesting, UTF-16, binary files and directories with what they are", async () => {
    const deep = await validate(write("deep.yaml", `a: ${"[".repeat(70)}${"]".repeat(70)}\n`), "deep.yaml");
    expect(deep.err).toContain("nested deeper than 64 levels");
    const utf16 = await validate(write("u.yaml", Buffer.from(`\ufeff${head}`, "utf16le")), "u.yaml");
    expect(utf16.err).toBe("u.yaml: is UTF-16 text (fix: save it as UTF-8)\n");
    const binary = await validate(write("b.yaml", new Uint8Array([0x89, 0x50, 0, 1, 2])), "b.yaml");
    expect(binary.err).toBe(
      "b.yaml: is a binary file (a NUL byte at offset 2), not YAML (fix: give a QuestATraining YAML file)\n",
    );
    const latin1 = await validate(write("l.yaml", new Uint8Array([0x61, 0x3a, 0x20, 0xe9, 0x0a])), "l.yaml");
    expect(latin1.err).toBe("l.yaml: is not UTF-8 text (fix: save it as UTF-8)\n");
    const directory = await validate(root, "manifests");
    expect(directory.err).toBe("manifests: is a directory (fix: give a file in it)\n");
    const text = await validate(write("t.yaml", "just some words\n"), "t.yaml");
    expect(text.err).toContain(
      "(root): expected a mapping with apiVersion, kind, metadata and spec, got a string",
    );
  });

  it("gives hints that say how to fix the field", async () => {
    const dir = write(
      "hints.yaml",
      [
        "apiVersion: questa.dev/v1alpha1",
        "kind: QuestATraining",
        "metadata: { name: Bad_Name }",
        "spec:",
        "  datasets: { train: [{ name: t, synthetic: {} }] }",
        "  rollout: 3",
        "  augmentation: { curriculum: [{ ratio: 0.25, until: { steps: 5 } }, { ratio: 0.5 }] }",
      ].join("\n"),
    );
    const { err } = await validate(dir, "hints.yaml");
    expect(err).toContain(
      "metadata.name: does not have the required form (fix: use a DNS label: lowercase letters, digits and '-'",
    );
    expect(err).toContain("spec.rollout: expected a mapping (key: value lines), got a number");
    expect(err).not.toContain("give a object");
    expect(err).toContain(
      "spec.augmentation.curriculum[1].ratio: stage ratios must not increase from one stage to the next: 0.5 is above the previous stage's 0.25",
    );
    const both = await validate(
      write("k.yaml", "apiVersion: v1\nkind: Pod\nmetadata: { name: p }\n"),
      "k.yaml",
    );
    expect(both.err).toContain("kind: expected QuestATraining");
    expect(both.err).toContain("apiVersion: unsupported apiVersion");
    const syntax = await validate(write("s.yaml", `${head}  seed: 1: 2\n`), "s.yaml");
    expect(syntax.err).toContain(
      "(yaml): line 6, column 9: Nested mappings are not allowed in compact mappings",
    );
    expect(syntax.err).not.toMatch(/:\s*\n/);
  });

  it("numbers the documents of a long file by their lines", async () => {
    const text = Array.from({ length: 50 }, () => head).join("---\n");
    const { code, out } = await validate(write("docs.yaml", text), "docs.yaml");
    expect(code).toBe(0);
    expect(out.trim().split("\n").at(-1)).toBe("docs.yaml (document 50, line 294): valid QuestATraining ok");
  });
});

describe("questa events under bad input", () => {
  it("prints a last line without a newline, skips what is not JSON, and refuses a missing run for --follow", async () => {
    const dir = testTempDir("questa-events-");
    mkdirSync(join(dir, "events"));
    const line = JSON.stringify({ specversion: "1.0", id: "a", type: "x.y.z", time: "2026-01-01T00:00:00Z" });
    writeFileSync(join(dir, "events", "e.jsonl"), `not json\n[1]\n${line}`);
    const all = captureIO(dir);
    expect(await main(["events", "."], all.io)).toBe(0);
    expect(all.stdout()).toBe(`${line}\n`);
    expect(all.stderr()).toContain("e.jsonl: skipping a line that is not JSON (not JSON)");
    expect(all.stderr()).toContain("e.jsonl: skipping a line that is not a JSON object");
    const missing = captureIO(dir);
    expect(await main(["events", "no-such-run", "--follow"], missing.io)).toBe(1);
    expect(missing.stderr()).toContain("does not exist (fix: give a run directory");
  });

  it("says it waits when the run exists but has no events yet", async () => {
    const dir = testTempDir("questa-events-");
    const capture = captureIO(dir, Promise.resolve());
    expect(await main(["events", ".", "--follow"], capture.io)).toBe(0);
    expect(capture.stderr()).toContain("waiting for");
  });
});
