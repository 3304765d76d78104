import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { validateYaml } from "../functions/contracts/validate.ts";
import { effectiveSpec } from "../functions/host/embedded-run.ts";
import { testTempDir } from "../test/temp-dir.ts";
import { main } from "./main.ts";
import { fixtureRunEvents, writeFixtureRun } from "./report-fixture.ts";
import { captureIO } from "./test-io.ts";

const root = join(import.meta.dirname, "..");

function tinyRunSpec() {
  const result = validateYaml(readFileSync(join(root, "test", "fixtures", "tiny-run.yaml"), "utf8"))[0]
    ?.result;
  if (!result?.ok) throw new Error("test/fixtures/tiny-run.yaml is not valid");
  return result.value.spec;
}

/**
 * A QuestA run and its baseline under `<dir>/runs/`, with run.json as bench:questa writes it: with an
 * absolute storage.localDir, which a resource file may not have but a run's spec may.
 */
async function fixtureRuns(dir: string) {
  const questa = join(dir, "runs", "fixture");
  const baseline = join(dir, "runs", "fixture-baseline");
  await writeFixtureRun(questa, fixtureRunEvents());
  await writeFixtureRun(baseline, fixtureRunEvents({ baseline: true }));
  const resourceSpec = tinyRunSpec();
  const spec = { ...resourceSpec, storage: { ...resourceSpec.storage, localDir: dir } };
  writeFileSync(join(questa, "run.json"), `${JSON.stringify({ spec: effectiveSpec(spec, {}) }, null, 2)}\n`);
  writeFileSync(
    join(baseline, "run.json"),
    `${JSON.stringify({ spec: effectiveSpec(spec, { baseline: true }) }, null, 2)}\n`,
  );
  return { questa, baseline, spec };
}

async function report(args: string[], cwd: string) {
  const capture = captureIO(cwd);
  const code = await main(["report", ...args], capture.io);
  return { code, out: capture.stdout(), err: capture.stderr() };
}

describe("questa report", () => {
  it("writes RUN_DIR/report.html, one page with every plot as inline SVG and nothing to fetch", async () => {
    const dir = testTempDir("questa-report-");
    await fixtureRuns(dir);
    const result = await report(["runs/fixture", "--vs", "runs/fixture-baseline"], dir);
    const path = join(dir, "runs", "fixture", "report.html");
    expect(result).toEqual({ code: 0, out: `report: ${path}\n`, err: "" });
    const html = readFileSync(path, "utf8");
    expect(html).toMatch(/^<!DOCTYPE html>/);
    expect(html).toContain("<title>questa report: fixture vs fixture-baseline</title>");
    expect(html.match(/<svg /g)).toHaveLength(13);
    expect(html).toContain("fixture-baseline (no hints)");
    // self-contained: no script, no stylesheet or image from elsewhere
    expect(html).not.toMatch(/<script|<link|<img|<iframe|src=|url\(/i);
    const urls = [...html.matchAll(/https?:\/\/[^"'\s<)]+/g)].map((m) => m[0]);
    expect(new Set(urls)).toEqual(new Set(["http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"]));
  });

  it("writes where --out says, a run alone without --vs", async () => {
    const dir = testTempDir("questa-report-");
    await fixtureRuns(dir);
    const result = await report(["runs/fixture", "--out", "plots.html"], dir);
    expect(result).toEqual({ code: 0, out: `report: ${join(dir, "plots.html")}\n`, err: "" });
    const html = readFileSync(join(dir, "plots.html"), "utf8");
    expect(html).toContain("<title>questa report: fixture</title>");
    expect(html).not.toContain("fixture-baseline");
    const blocked = await report(["runs/fixture", "--out", "plots.html/report.html"], dir);
    expect(blocked.code).toBe(1);
    expect(blocked.err).toMatch(
      /^questa report: --out: cannot write .*plots\.html\/report\.html: .* \(fix: give a writable place with --out FILE\)\n$/,
    );
  });

  it("refuses a missing run directory, and one without events, naming the argument and the fix", async () => {
    const dir = testTempDir("questa-report-");
    const missing = await report(["runs/nope"], dir);
    expect(missing.code).toBe(1);
    expect(missing.err).toBe(
      `questa report: runs/nope: ${join(dir, "runs", "nope")} is not a directory (fix: give a run directory, e.g. .questa/runs/<name> (questa run prints it))\n`,
    );
    mkdirSync(join(dir, "runs", "empty", "events"), { recursive: true });
    const empty = await report(["runs/empty"], dir);
    expect(empty.code).toBe(1);
    expect(empty.err).toMatch(
      /^questa report: runs\/empty: .*events holds no run status or evaluation events \(fix: give a run directory/,
    );
    mkdirSync(join(dir, "runs", "bare"));
    const bare = await report(["runs/bare"], dir);
    expect(bare.err).toMatch(
      /runs\/bare: .*events does not exist: the run has written no events \(yet\) \(fix: .*--kafka keeps its events in Kafka/,
    );
    const { questa } = await fixtureRuns(dir);
    const vsMissing = await report([questa, "--vs", "runs/nope"], dir);
    expect(vsMissing.code).toBe(1);
    expect(vsMissing.err).toContain("questa report: runs/nope: ");
  });

  it("refuses a --vs run of another task, or the same run, saying what differs", async () => {
    const dir = testTempDir("questa-report-");
    const { questa, baseline, spec } = await fixtureRuns(dir);
    const other = {
      ...spec,
      evaluation: {
        ...spec.evaluation,
        benchmarks: spec.evaluation.benchmarks.map((b) => ({ ...b, name: "other-eval" })),
      },
    };
    writeFileSync(join(baseline, "run.json"), `${JSON.stringify({ spec: other })}\n`);
    const result = await report(["runs/fixture", "--vs", "runs/fixture-baseline"], dir);
    expect(result.code).toBe(1);
    expect(result.err).toBe(
      "questa report: --vs: runs/fixture-baseline is a run of a different task than runs/fixture (spec.evaluation.benchmarks differ), so their plots would not compare (fix: give a run of the same resource, e.g. RUN_DIR's --baseline run (.questa/runs/<name>-baseline))\n",
    );
    const same = await report(["runs/fixture", "--vs", questa], dir);
    expect(same.code).toBe(1);
    expect(same.err).toMatch(/^questa report: --vs: .* is the run RUN_DIR names \(runs\/fixture\)/);
  });

  it("names the file and event of a damaged log or an event that does not match its schema", async () => {
    const dir = testTempDir("questa-report-");
    const { questa } = await fixtureRuns(dir);
    const log = join(questa, "events", "fixture.status.jsonl");
    const lines = readFileSync(log, "utf8").split("\n");
    const bad = JSON.parse(lines[1] ?? "") as { data: { step: number } };
    bad.data.step = -1;
    writeFileSync(log, [lines[0], JSON.stringify(bad), ...lines.slice(2)].join("\n"));
    const invalid = await report(["runs/fixture"], dir);
    expect(invalid.code).toBe(1);
    expect(invalid.err).toMatch(
      /^questa report: runs\/fixture\/events\/fixture\.status\.jsonl event status-1: does not match dev\.questa\.run\.status\.v1: step: /,
    );
    appendFileSync(log, "not json\n");
    const damaged = await report(["runs/fixture"], dir);
    expect(damaged.code).toBe(1);
    expect(damaged.err).toMatch(
      /^questa report: runs\/fixture\/events\/fixture\.status\.jsonl: .*fixture\.status\.jsonl:\d+: /,
    );
  });

  it("names a run.json that is not a run's spec", async () => {
    const dir = testTempDir("questa-report-");
    const { questa } = await fixtureRuns(dir);
    writeFileSync(join(questa, "run.json"), "{");
    expect(await report(["runs/fixture"], dir)).toEqual({
      code: 1,
      out: "",
      err: "questa report: runs/fixture/run.json: is not the spec of a run (questa run writes it when the run starts) (fix: restore the file, or remove it: the report then skips the checks that need the spec)\n",
    });
  });

  it("a run whose evaluation results are gone still gets its report, with a note", async () => {
    const dir = testTempDir("questa-report-");
    const { questa } = await fixtureRuns(dir);
    const key = join(questa, "objects", "evaluations", "step-0", "hard-eval.jsonl");
    writeFileSync(key, "changed\n");
    expect((await report(["runs/fixture"], dir)).code).toBe(0);
    expect(readFileSync(join(questa, "report.html"), "utf8")).toContain(
      "fixture: the per-problem results of hard-eval at step 0 could not be read, so its pass@k (k &gt; 1) has no interval",
    );
  });

  it("exits 2 for a wrong command line, with the usage", async () => {
    const dir = testTempDir("questa-report-");
    for (const args of [[], ["a", "b"], ["a", "--vs"], ["a", "--nope"]]) {
      const result = await report(args, dir);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.err, args.join(" ")).toContain(
        "usage: questa report RUN_DIR [--vs OTHER_RUN_DIR] [--out FILE]",
      );
    }
  });
});
