/**
 * The report as one HTML page: the plots as inline SVG, a summary table and notes, styled by inline
 * CSS. No script and no external resource, so it opens anywhere, offline, and can be mailed.
 */
import type { RenderedChart } from "./report-charts.ts";
import type { ReportModel, RunReport } from "./report-model.ts";

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

function fmt(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? "-" : value.toFixed(3);
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.lead, p.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; padding: 8px; border: 1px solid #eee; border-radius: 4px; }
figure h3 { font-size: 14px; margin: 0 0 4px; }
figcaption { font-size: 12px; color: #555; max-width: 480px; margin-top: 4px; }
ul.notes { font-size: 13px; color: #8a5a00; }
`;

function runRow(run: RunReport, benchmarks: readonly string[]): string {
  const steps = run.totalSteps === undefined ? String(run.lastStep) : `${run.lastStep} of ${run.totalSteps}`;
  const stages = run.stages.map((s) => `${s.hintRatio} (steps ${s.from}-${s.to})`).join(", ") || "-";
  const cells = benchmarks.map((b) => {
    const evaluations = run.evaluations.filter((e) => e.benchmark === b);
    const first = evaluations[0];
    const last = evaluations[evaluations.length - 1];
    if (first === undefined || last === undefined) return `<td class="num">-</td>`;
    const lastText = `${fmt(last.passAt1)} [${fmt(last.passAt1Interval.low)}, ${fmt(last.passAt1Interval.high)}]`;
    return `<td class="num">${first === last ? "" : `${fmt(first.passAt1)} (step ${first.step}) &rarr; `}${lastText} (step ${last.step})</td>`;
  });
  const state = run.state === "failed" && run.message ? `failed: ${run.message}` : run.state;
  return `<tr><td>${escapeHtml(run.label)}</td><td>${escapeHtml(state)}</td><td class="num">${steps}</td><td>${escapeHtml(stages)}</td>${cells.join("")}</tr>`;
}

function figure(chart: RenderedChart): string {
  return `<figure id="${escapeHtml(chart.id)}"><h3>${escapeHtml(chart.title)}</h3>${chart.svg}<figcaption>${escapeHtml(chart.caption)}</figcaption></figure>`;
}

/** the whole page; `generated` is printed as given (the caller's clock) */
export function reportHtml(model: ReportModel, charts: readonly RenderedChart[], generated: string): string {
  const section = (name: RenderedChart["section"]) =>
    charts
      .filter((c) => c.section === name)
      .map(figure)
      .join("\n");
  const head = model.benchmarks.map((b) => `<th>pass@1 on ${escapeHtml(b)}: first &rarr; last [95% CI]</th>`);
  const notes =
    model.notes.length === 0
      ? ""
      : `<ul class="notes">${model.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(model.title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(model.title)}</h1>
<p class="lead">Generated ${escapeHtml(generated)} by <code>questa report</code> from the runs' event logs.
The green band behind the step plots is the hint curriculum of ${escapeHtml(model.runs.find((r) => r.arm === "questa")?.label ?? model.runs[0]?.label ?? "the run")}:
each stage shaded by its hint ratio p (the share of the reference solution prepended to a training problem), written at its start.
Evaluations never carry hints.</p>
<table>
<thead><tr><th>run</th><th>state</th><th>steps</th><th>hint ratio by stage</th>${head.join("")}</tr></thead>
<tbody>
${model.runs.map((r) => runRow(r, model.benchmarks)).join("\n")}
</tbody>
</table>
${notes}
<h2>Training</h2>
<p class="note">One point per learner step. The training prompts carry the stage's hint.</p>
<div class="charts">
${section("training")}
</div>
<h2>Evaluation (no hints)</h2>
<div class="charts">
${section("evaluation")}
</div>
</body>
</html>
`;
}
