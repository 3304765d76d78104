import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
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
    const dir = mkdtempSync(join(tmpdir(), "questa-validate-"));
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
    const dir = mkdtempSync(join(tmpdir(), "questa-validate-"));
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
    const dir = mkdtempSync(join(tmpdir(), "questa-events-"));
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
    const dir = mkdtempSync(join(tmpdir(), "questa-follow-"));
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
  });
});
