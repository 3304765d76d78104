import { describe, expect, it } from "vitest";
import { renderChart, reportCharts } from "./report-charts.ts";
import { fixtureRunEvents } from "./report-fixture.ts";
import { buildReport } from "./report-model.ts";

/** the inline data of every layer (and of a faceted chart) of a spec */
function layerData(spec: unknown): Record<string, unknown>[][] {
  const s = spec as { data?: { values?: Record<string, unknown>[] }; layer?: unknown[]; spec?: unknown };
  return [
    ...(s.data?.values ? [s.data.values] : []),
    ...(s.layer ?? []).flatMap(layerData),
    ...(s.spec ? layerData(s.spec) : []),
  ];
}

describe("the report's charts", () => {
  const model = buildReport(fixtureRunEvents(), fixtureRunEvents({ baseline: true }));
  const charts = reportCharts(model);

  it("has a plot per learner metric and two per benchmark, in order", () => {
    expect(charts.map((c) => c.id)).toEqual([
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
    expect(charts.filter((c) => c.section === "evaluation").map((c) => c.title)).toEqual([
      "pass@1 on easy-eval",
      "pass@k on easy-eval",
      "pass@1 on hard-eval",
      "pass@k on hard-eval",
    ]);
  });

  it("leaves out a metric no run reports (runs from before the log-prob gap existed, runs without a KL penalty)", () => {
    const events = fixtureRunEvents();
    const older = {
      ...events,
      status: events.status.map((s) => {
        if (s.metrics === undefined) return s;
        const { logProbGap: _gap, klToReference: _kl, ...metrics } = s.metrics;
        return { ...s, metrics };
      }),
    };
    const ids = reportCharts(buildReport(older)).map((c) => c.id);
    expect(ids).not.toContain("log-prob-gap");
    expect(ids).not.toContain("kl-to-reference");
    expect(ids).toContain("staleness");
  });

  it("overlays both runs on every step plot, under the QuestA run's hint stages", () => {
    for (const chart of charts.filter((c) => c.section === "training" || c.id.startsWith("pass-at-1"))) {
      const [band, , ...lines] = layerData(chart.spec);
      expect(band, chart.id).toEqual([
        { from: 0, to: 4, hintRatio: 0.5, label: "p=0.5" },
        { from: 4, to: 8, hintRatio: 0.25, label: "p=0.25" },
      ]);
      const runs = new Set(lines.flat().map((row) => row.run));
      expect(runs, chart.id).toEqual(new Set(["fixture (QuestA)", "fixture-baseline (no hints)"]));
    }
    const groups = layerData(charts.find((c) => c.id === "groups")?.spec).at(-1) ?? [];
    expect(groups.filter((r) => r.run === "fixture (QuestA)" && r.step === 1)).toEqual([
      { run: "fixture (QuestA)", step: 1, value: 7, groups: "kept" },
      { run: "fixture (QuestA)", step: 1, value: 1, groups: "dropped" },
    ]);
  });

  it("draws pass@k per evaluation step with the intervals, each panel naming its step's hint ratio", () => {
    const passAtK = charts.find((c) => c.id === "pass-at-k-1");
    const rows = layerData(passAtK?.spec).flat();
    expect(new Set(rows.map((r) => r.panel))).toEqual(
      new Set(["step 0 (p=0.5)", "step 4 (p=0.25)", "step 8 (p=0.25)"]),
    );
    expect(rows).toHaveLength(2 * 3 * 3); // runs x steps x ks
    for (const row of rows) {
      expect(row.low as number).toBeLessThanOrEqual(row.value as number);
      expect(row.high as number).toBeGreaterThanOrEqual(row.value as number);
    }
  });

  it("renders each plot to SVG with drawn marks and without a warning from Vega", async () => {
    const warnings: string[] = [];
    for (const chart of charts) {
      const rendered = await renderChart(chart, warnings);
      expect(rendered.svg, chart.id).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      // line marks carry their data in aria labels: both runs are drawn
      expect(rendered.svg, chart.id).toContain("fixture (QuestA)");
      expect(rendered.svg, chart.id).toContain("fixture-baseline (no hints)");
      const paths = [...rendered.svg.matchAll(/<path[^>]* d="([^"]+)"/g)].filter((m) => m[1] !== "M0,0Z");
      expect(paths.length, chart.id).toBeGreaterThan(10);
      expect(rendered.svg, chart.id).not.toMatch(/<script|<image|href="http/);
    }
    expect(warnings).toEqual([]);
  });

  it("keeps a metric that is 0 at every step on a readable axis", async () => {
    const events = fixtureRunEvents();
    const flat = {
      ...events,
      status: events.status.map((s) =>
        s.metrics ? { ...s, metrics: { ...s.metrics, clipFraction: 0 } } : s,
      ),
    };
    const chart = reportCharts(buildReport(flat)).find((c) => c.id === "clip-fraction");
    if (chart === undefined) throw new Error("no clip fraction chart");
    const warnings: string[] = [];
    const { svg } = await renderChart(chart, warnings);
    expect(svg).toContain(">1.0<");
    expect(warnings).toEqual([]);
  });
});
