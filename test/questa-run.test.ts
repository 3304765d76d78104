import { cpSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { eventDefinition } from "../functions/contracts/registry.ts";
import { eventLogPath, listEventLogTopics, readEventLogFile } from "../functions/runtime/memory-bus.ts";
import { announcedSteps, startQuesta } from "./questa-cli.ts";
import { testTempDir } from "./temp-dir.ts";

const root = join(import.meta.dirname, "..");

async function runEvents(runDir: string) {
  const events = [];
  for (const topic of await listEventLogTopics(runDir)) {
    events.push(...(await readEventLogFile(eventLogPath(runDir, topic))));
  }
  return events;
}

describe("questa run (embedded)", () => {
  it("survives kill -9 of the whole pipeline: the rerun resumes with no step lost or repeated", async () => {
    const dir = testTempDir("questa-run-");
    cpSync(join(root, "test", "fixtures", "tiny-run.yaml"), join(dir, "run.yaml"));
    const env = { QUESTA_CACHE_DIR: join(dir, "cache") };

    const first = startQuesta(["run", "run.yaml"], dir, env);
    // kill as soon as a few steps are done, mid-run
    await expect.poll(() => first.output(), { timeout: 240_000, interval: 200 }).toMatch(/step 3 stage/);
    first.child.kill("SIGKILL");
    await first.exited;
    expect(first.output()).not.toContain("finished 8 steps");

    const second = startQuesta(["run", "run.yaml"], dir, env);
    const code = await second.exited;
    expect(second.output()).toContain("finished 8 steps");
    expect(code).toBe(0);

    const runDir = join(dir, ".questa", "runs", "tiny-run");
    // the run's plots, written at its end (test/browser/report.test.ts opens such a page in Chromium)
    expect(second.output()).toContain(`report: ${join(runDir, "report.html")}\n`);
    expect(readFileSync(join(runDir, "report.html"), "utf8").match(/<svg /g)).toHaveLength(10);
    const events = await runEvents(runDir);
    // `questa events` prints the same events, each a valid CloudEvent line
    const printed = startQuesta(["events", runDir], dir, env);
    expect(await printed.exited).toBe(0);
    const printedLines = printed
      .output()
      .split("\n")
      .filter((line) => line.startsWith("{"));
    expect(printedLines).toHaveLength(events.length);
    expect(new Set(printedLines.map((line) => (JSON.parse(line) as { type: string }).type))).toEqual(
      new Set(events.map((e) => e.type)),
    );
    // every event is valid against its schema
    for (const event of events) {
      const definition = eventDefinition(event.type);
      expect(definition, event.type).toBeDefined();
      expect(definition?.data.safeParse(event.data).success, `${event.type} ${event.id}`).toBe(true);
    }
    const types = new Set(events.map((e) => e.type));
    for (const type of [
      "dev.questa.question.augmented.v1",
      "dev.questa.rollout.group.v1",
      "dev.questa.checkpoint.published.v1",
      "dev.questa.evaluation.result.v1",
      "dev.questa.run.status.v1",
      "dev.questa.curriculum.stage.v1",
    ]) {
      expect(types.has(type), type).toBe(true);
    }
    // one step event per step 1..8: an event published twice carries the same id and the same data
    expect(announcedSteps(events)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }, 600_000);
});
