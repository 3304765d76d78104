/**
 * The report's plots: Vega-Lite specs built from the report model, rendered to SVG strings in Node
 * by Vega's headless view (no DOM, no canvas, no network), so the page needs no script to show
 * them. The only module of questa that imports vega and vega-lite.
 */
import { type LoggerInterface, parse, View, Warn } from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { EvaluationPoint, ReportModel, RunReport, StageSpan } from "./report-model.ts";

export interface Chart {
  id: string;
  title: string;
  /** what the plot shows, one or two sentences */
  caption: string;
  section: "training" | "evaluation";
  spec: TopLevelSpec;
}

export interface RenderedChart extends Omit<Chart, "spec"> {
  svg: string;
}

/** the runs' colours: the report's run, then the --vs run (Tableau blue and orange) */
const RUN_COLOURS = ["#4c78a8", "#f58518"];
const WIDTH = 340;
const HEIGHT = 170;
/** the hint band's fill; its opacity grows with the hint ratio */
const BAND_COLOUR = "#59a14f";

type Row = Record<string, string | number | null>;

/** steps are whole numbers: no tick at 0.5 on a short run */
const STEP_AXIS = { tickMinStep: 1, format: "d" };

function runScale(model: ReportModel) {
  return { domain: model.runs.map((r) => r.label), range: RUN_COLOURS.slice(0, model.runs.length) };
}

/** the colour channel of the runs, with its legend below the plot (the same in every layer: Vega-Lite merges them) */
function runColour(model: ReportModel) {
  return {
    field: "run",
    type: "nominal" as const,
    scale: runScale(model),
    legend: { orient: "bottom" as const, title: null, labelLimit: 400, symbolType: "stroke" },
  };
}

/** the run whose hint curriculum the band shows: the first QuestA run, else the report's run */
function bandRun(model: ReportModel): RunReport | undefined {
  return model.runs.find((r) => r.arm === "questa") ?? model.runs[0];
}

function hintLabel(ratio: number): string {
  return `p=${Number(ratio.toFixed(3))}`;
}

/** the hint ratio of the band run's stage at `step` (an evaluation at step s sees stage after s) */
function hintRatioAt(stages: readonly StageSpan[], step: number): number | undefined {
  const stage = stages.find((s, i) => s.from <= step && (step < s.to || i === stages.length - 1));
  return stage?.hintRatio;
}

/** the hint-ratio stages as shaded spans with their ratio written at the top */
function bandLayers(model: ReportModel) {
  const run = bandRun(model);
  const values: Row[] = (run?.stages ?? []).map((s) => ({
    from: s.from,
    to: s.to,
    hintRatio: s.hintRatio,
    label: hintLabel(s.hintRatio),
  }));
  if (values.length === 0) return [];
  return [
    {
      data: { values },
      mark: { type: "rect" as const, color: BAND_COLOUR },
      encoding: {
        x: { field: "from", type: "quantitative" as const, title: "step", axis: STEP_AXIS },
        x2: { field: "to" },
        opacity: {
          field: "hintRatio",
          type: "quantitative" as const,
          scale: { domain: [0, 1], range: [0.03, 0.45] },
          legend: null,
        },
      },
    },
    {
      data: { values },
      mark: {
        type: "text" as const,
        align: "left" as const,
        baseline: "top" as const,
        dx: 3,
        dy: 2,
        fontSize: 10,
        color: "#3b6e35",
      },
      encoding: {
        x: { field: "from", type: "quantitative" as const, title: "step", axis: STEP_AXIS },
        y: { value: 0 },
        text: { field: "label" },
      },
    },
  ];
}

function lineChart(
  model: ReportModel,
  options: {
    id: string;
    title: string;
    caption: string;
    yTitle: string;
    values: Row[];
    /** a field that splits each run's line in two: the first value solid, the second dashed */
    dashed?: { field: string; values: [string, string] };
  },
): Chart {
  // a metric that is 0 at every step (clip fraction of an on-policy run) would get an empty y domain
  const allZero = options.values.every((v) => v.value === 0);
  const line = {
    data: { values: options.values },
    mark: { type: "line" as const, point: { size: 14 }, strokeWidth: 1.5, interpolate: "linear" as const },
    encoding: {
      x: { field: "step", type: "quantitative" as const, title: "step", axis: STEP_AXIS },
      y: {
        field: "value",
        type: "quantitative" as const,
        title: options.yTitle,
        ...(allZero ? { scale: { domain: [0, 1] } } : {}),
      },
      color: runColour(model),
      ...(options.dashed === undefined
        ? {}
        : {
            strokeDash: {
              field: options.dashed.field,
              type: "nominal" as const,
              scale: {
                domain: options.dashed.values,
                range: [
                  [1, 0],
                  [5, 3],
                ],
              },
              legend: {
                orient: "bottom" as const,
                title: null,
                symbolType: "stroke",
                symbolSize: 200,
                symbolStrokeWidth: 1.5,
                // the symbols would take no stroke colour, as no colour encodes this field
                encode: { symbols: { update: { stroke: { value: "#555" } } } },
              },
            },
          }),
    },
  };
  return {
    id: options.id,
    title: options.title,
    caption: options.caption,
    section: "training",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      width: WIDTH,
      height: HEIGHT,
      layer: [...bandLayers(model), line],
    },
  };
}

const STEP_METRICS = [
  {
    id: "reward",
    title: "Reward",
    yTitle: "mean reward",
    metric: "rewardMean",
    caption: "Mean reward of the step's responses (graded correct × the reward scale), on hinted prompts.",
  },
  {
    id: "pass-rate",
    title: "Training pass rate",
    yTitle: "pass rate",
    metric: "passRate",
    caption:
      "Fraction of the step's responses graded correct. These prompts carry the stage's hint, so QuestA's rate sits above its unhinted evaluation.",
  },
  {
    id: "entropy",
    title: "Entropy",
    yTitle: "mean token entropy",
    metric: "entropy",
    caption:
      "Mean token entropy of the policy on its responses; a collapse means the policy stopped exploring.",
  },
  {
    id: "clip-fraction",
    title: "Clip fraction",
    yTitle: "clipped tokens",
    metric: "clipFraction",
    caption: "Fraction of tokens whose importance ratio the PPO objective clipped.",
  },
  {
    id: "kl-to-reference",
    title: "KL to the initial policy",
    yTitle: "mean KL per token",
    metric: "klToReference",
    caption:
      "Mean KL (k3 estimator) between the policy and the warm-started policy over trained tokens; only runs with a KL penalty (learner.klCoef > 0) report it.",
  },
  {
    id: "log-prob-gap",
    title: "Sampler/learner log-prob gap",
    yTitle: "mean |Δ log-prob|",
    metric: "logProbGap",
    caption:
      "Mean absolute difference, over trained tokens, between the sampler's log-probs and the learner's for the same weights and tokens; it grows when the two engines disagree (e.g. vLLM against the learner) or rollouts are stale.",
  },
  {
    id: "staleness",
    title: "Staleness",
    yTitle: "policy versions behind",
    metric: "staleness",
    caption: "Mean policy-version lag of the step's rollouts (0: sampled by the current policy).",
  },
  {
    id: "tokens-per-second",
    title: "Training speed",
    yTitle: "tokens/s",
    metric: "tokensPerSecond",
    caption: "Tokens the learner trained on per second in the step.",
  },
] as const;

function trainingCharts(model: ReportModel): Chart[] {
  const series = STEP_METRICS.map((m) => ({
    metric: m,
    // runs from before a metric existed (logProbGap) or without a KL penalty (klToReference) have no point for it
    values: model.runs.flatMap((run) =>
      run.steps.flatMap((s) => {
        const value = s.metrics[m.metric];
        return value === undefined ? [] : [{ run: run.label, step: s.step, value }];
      }),
    ),
  }));
  const charts = series
    .filter((s) => s.values.length > 0)
    .map(({ metric: m, values }) =>
      lineChart(model, {
        id: m.id,
        title: m.title,
        caption: m.caption,
        yTitle: m.yTitle,
        values,
      }),
    );
  const groups = lineChart(model, {
    id: "groups",
    title: "Kept and dropped groups",
    caption:
      "Rollout groups the step trained on (kept), and groups the success-rate filter dropped since the previous step (all right or all wrong: no learning signal).",
    yTitle: "groups",
    dashed: { field: "groups", values: ["kept", "dropped"] },
    values: model.runs.flatMap((run) =>
      run.steps.flatMap((s) => [
        { run: run.label, step: s.step, value: s.metrics.groupsKept, groups: "kept" },
        { run: run.label, step: s.step, value: s.metrics.groupsRejected, groups: "dropped" },
      ]),
    ),
  });
  // reward and pass rate first, the groups next to the staleness they explain
  return [...charts.slice(0, 4), groups, ...charts.slice(4)];
}

function evaluationsOf(model: ReportModel, benchmark: string): { run: RunReport; e: EvaluationPoint }[] {
  return model.runs.flatMap((run) =>
    run.evaluations.filter((e) => e.benchmark === benchmark).map((e) => ({ run, e })),
  );
}

function passAt1Chart(model: ReportModel, benchmark: string, index: number): Chart {
  const values: Row[] = evaluationsOf(model, benchmark).map(({ run, e }) => ({
    run: run.label,
    step: e.step,
    value: e.passAt1,
    low: e.passAt1Interval.low,
    high: e.passAt1Interval.high,
  }));
  const color = runColour(model);
  return {
    id: `pass-at-1-${index}`,
    title: `pass@1 on ${benchmark}`,
    caption:
      "pass@1 (mean correctness over all samples, no hints) at each evaluated checkpoint, with its 95% bootstrap interval over problems as a shaded band.",
    section: "evaluation",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      width: WIDTH,
      height: HEIGHT,
      layer: [
        ...bandLayers(model),
        {
          data: { values },
          mark: { type: "area", fillOpacity: 0.2 },
          encoding: {
            x: { field: "step", type: "quantitative", title: "step", axis: STEP_AXIS },
            y: { field: "low", type: "quantitative", title: "pass@1" },
            y2: { field: "high" },
            // fill, not color: the area's opacity stays out of the legend, which shows the lines
            fill: color,
          },
        },
        {
          data: { values },
          mark: { type: "line", point: { size: 20 }, strokeWidth: 1.5 },
          encoding: {
            x: { field: "step", type: "quantitative", title: "step", axis: STEP_AXIS },
            y: { field: "value", type: "quantitative", title: "pass@1" },
            color,
          },
        },
      ],
    },
  };
}

/** per evaluation step one small panel of pass@k against k, the runs side by side at each k */
function passAtKChart(model: ReportModel, benchmark: string, index: number): Chart {
  const stages = bandRun(model)?.stages ?? [];
  const panel = (step: number) => {
    const ratio = hintRatioAt(stages, step);
    return ratio === undefined ? `step ${step}` : `step ${step} (${hintLabel(ratio)})`;
  };
  const evaluations = evaluationsOf(model, benchmark);
  const steps = [...new Set(evaluations.map(({ e }) => e.step))].sort((a, b) => a - b);
  const ks = [...new Set(evaluations.flatMap(({ e }) => e.passAtK.map((p) => p.k)))].sort((a, b) => a - b);
  const labels = model.runs.map((r) => r.label);
  // k on an evenly spaced axis (by rank: the usual ks 1, 2, 4, 8 are a log scale), each run a
  // little to the side so that the intervals of two runs at one k do not hide each other
  const position = (k: number, label: string) =>
    ks.indexOf(k) + (labels.indexOf(label) - (labels.length - 1) / 2) * 0.12;
  const values: Row[] = evaluations.flatMap(({ run, e }) =>
    e.passAtK.map((p) => ({
      run: run.label,
      panel: panel(e.step),
      k: p.k,
      x: position(p.k, run.label),
      value: p.value,
      low: p.interval?.low ?? null,
      high: p.interval?.high ?? null,
    })),
  );
  const x = {
    field: "x",
    type: "quantitative" as const,
    title: "k",
    scale: { domain: [-0.5, ks.length - 0.5], nice: false, zero: false },
    axis: {
      values: ks.map((_, i) => i),
      labelExpr: `${JSON.stringify(ks.map(String))}[datum.value]`,
      grid: false,
    },
  };
  const color = runColour(model);
  return {
    id: `pass-at-k-${index}`,
    title: `pass@k on ${benchmark}`,
    caption:
      "Unbiased pass@k against k at each evaluated checkpoint (one panel per step, with the hint ratio of that step's stage), with 95% bootstrap intervals over problems as bars.",
    section: "evaluation",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      data: { values },
      facet: {
        field: "panel",
        type: "ordinal",
        sort: steps.map(panel),
        title: null,
        header: { labelFontSize: 11 },
      },
      columns: 5,
      spec: {
        width: 150,
        height: 140,
        layer: [
          {
            mark: { type: "rule", strokeWidth: 1.5 },
            transform: [{ filter: "datum.low !== null" }],
            encoding: {
              x,
              y: { field: "low", type: "quantitative", title: "pass@k" },
              y2: { field: "high" },
              color,
            },
          },
          {
            mark: { type: "line", point: { size: 20 }, strokeWidth: 1.5 },
            encoding: {
              x,
              y: { field: "value", type: "quantitative", title: "pass@k" },
              color,
            },
          },
        ],
      },
    },
  };
}

/** every plot of the report, in the order the page shows them */
export function reportCharts(model: ReportModel): Chart[] {
  return [
    ...trainingCharts(model),
    ...model.benchmarks.flatMap((b, i) => [passAt1Chart(model, b, i), passAtKChart(model, b, i)]),
  ];
}

/** a Vega logger that keeps warnings and errors instead of writing them to the console */
function collectingLogger(messages: string[]): LoggerInterface {
  let level = Warn;
  const logger: LoggerInterface = {
    level(value?: number) {
      if (value === undefined) return level;
      level = value;
      return logger;
    },
    error: (...args: readonly unknown[]) => {
      messages.push(args.map(String).join(" "));
      return logger;
    },
    warn: (...args: readonly unknown[]) => {
      messages.push(args.map(String).join(" "));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  } as LoggerInterface;
  return logger;
}

/** A chart as an SVG string; what Vega warned about goes to `warnings`, prefixed by the chart's id. */
export async function renderChart(chart: Chart, warnings: string[]): Promise<RenderedChart> {
  const messages: string[] = [];
  const logger = collectingLogger(messages);
  const { spec, ...rest } = chart;
  const view = new View(parse(compile(spec, { logger }).spec), { renderer: "none", logger, logLevel: Warn });
  try {
    const svg = await view.toSVG();
    warnings.push(...messages.map((m) => `${chart.id}: ${m}`));
    return { ...rest, svg };
  } finally {
    view.finalize();
  }
}
