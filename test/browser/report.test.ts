/**
 * The HTML report as a person sees it: `questa report` on a QuestA run and its baseline, opened in
 * headless Chromium with JavaScript off. Every plot must be drawn (an SVG of real size whose line
 * marks have non-empty paths for both runs), with no console error and no request beyond the file.
 * Set QUESTA_REPORT_SCREENSHOT=FILE.png to keep a full-page screenshot to look at.
 */
import { copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../cli/main.ts";
import { fixtureRunEvents, writeFixtureRun } from "../../cli/report-fixture.ts";
import { captureIO } from "../../cli/test-io.ts";
import { testTempDir } from "../temp-dir.ts";
import { visitFile } from "./chromium.ts";

interface DrawnFigure {
  id: string;
  width: number;
  height: number;
  /** paths of line marks with a non-empty d attribute, by the run their aria label names */
  linePaths: { questa: number; baseline: number };
  /** every path with a non-empty d attribute */
  paths: number;
}

describe("the HTML report in Chromium", () => {
  it("draws every plot, both runs in each, without console errors or requests", async () => {
    const dir = testTempDir("questa-report-chromium-");
    await writeFixtureRun(join(dir, "fixture"), fixtureRunEvents());
    await writeFixtureRun(join(dir, "fixture-baseline"), fixtureRunEvents({ baseline: true }));
    const capture = captureIO(dir);
    expect(await main(["report", "fixture", "--vs", "fixture-baseline"], capture.io)).toBe(0);
    const html = join(dir, "fixture", "report.html");
    const screenshot = join(dir, "report.png");

    const visit = await visitFile(html, async (page) => {
      await page.screenshot({ path: screenshot, fullPage: true });
      return await page.$$eval("figure", (figures) =>
        figures.map((figure): DrawnFigure => {
          const svg = figure.querySelector("svg");
          const box = svg?.getBoundingClientRect();
          const drawn = [...figure.querySelectorAll("svg path")].filter(
            (p) => (p.getAttribute("d") ?? "").replace(/M0,0Z?/g, "").length > 0,
          );
          const lines = drawn.filter((p) => p.getAttribute("aria-roledescription") === "line mark");
          const label = (p: (typeof lines)[number]) => p.getAttribute("aria-label") ?? "";
          return {
            id: figure.id,
            width: box?.width ?? 0,
            height: box?.height ?? 0,
            linePaths: {
              questa: lines.filter((p) => label(p).includes("fixture (QuestA)")).length,
              baseline: lines.filter((p) => label(p).includes("fixture-baseline (no hints)")).length,
            },
            paths: drawn.length,
          };
        }),
      );
    });

    expect(visit.errors).toEqual([]);
    expect(visit.requests).toEqual([]);
    expect(visit.result.map((f) => f.id)).toEqual([
      "reward",
      "pass-rate",
      "entropy",
      "clip-fraction",
      "groups",
      "kl-to-reference",
      "log-prob-gap",
      "staleness",
      "tokens-per-second",
      "pass-at-1-0",
      "pass-at-k-0",
      "pass-at-1-1",
      "pass-at-k-1",
    ]);
    for (const figure of visit.result) {
      expect(figure.width, figure.id).toBeGreaterThan(300);
      expect(figure.height, figure.id).toBeGreaterThan(150);
      expect(figure.paths, figure.id).toBeGreaterThan(20);
      expect(figure.linePaths.questa, figure.id).toBeGreaterThan(0);
      expect(figure.linePaths.baseline, figure.id).toBeGreaterThan(0);
    }
    // a PNG of the whole page
    expect(readFileSync(screenshot).subarray(1, 4).toString()).toBe("PNG");
    const keep = process.env.QUESTA_REPORT_SCREENSHOT;
    if (keep) copyFileSync(screenshot, keep);
  });
});
