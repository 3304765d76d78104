import { readdirSync, readFileSync, unlinkSync } from "node:fs";
import * as ort from "onnxruntime-node";
import { ModelConfigSchema } from "./config.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import { decayMask, initParams } from "./params.ts";
import { createRng } from "./rng.ts";
import { buildGenerateGraph, buildTrainGraph } from "./transformer.ts";

const which = process.argv[2] ?? "train";
const cfg = ModelConfigSchema.parse({ vocabSize: 99, layers: 2, width: 128, heads: 4, maxSeqLen: 256 });
const B = 32,
  T = 128;
const rng = createRng(1);
const params = initParams(cfg, rng);
const n = params.length;
let model: Uint8Array;
let feeds: Record<string, ort.Tensor>;
const f = (x: number) => new ort.Tensor("float32", Float32Array.of(x), []);
if (which === "train") {
  model = toOnnxModel(
    buildTrainGraph(cfg, {
      batch: B,
      length: T,
      loss: "ppo",
      klToReference: false,
      entropyBonus: false,
      mode: "fused",
    }),
  );
  const ids = () =>
    new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B * T }, () => BigInt(3 + Math.floor(rng.next() * 90))),
      [B, T],
    );
  const ff = (v: number) => new ort.Tensor("float32", new Float32Array(B * T).fill(v), [B, T]);
  feeds = {
    params: new ort.Tensor("float32", params, [n]),
    input_ids: ids(),
    target_ids: ids(),
    loss_mask: ff(1),
    loss_scale: f(1 / (B * T)),
    advantages: ff(0.5),
    behaviour_logp: ff(-4.6),
    proximal_logp: ff(-4.6),
    clip_low: f(0.2),
    clip_high: f(0.2),
    iw_cap: f(5),
    adam_m: new ort.Tensor("float32", new Float32Array(n), [n]),
    adam_v: new ort.Tensor("float32", new Float32Array(n), [n]),
    decay_mask: new ort.Tensor("float32", decayMask({ specs: [], total: n } as never), [n]),
    lr: f(1e-3),
    beta1: f(0.9),
    beta2: f(0.95),
    adam_eps: f(1e-5),
    weight_decay: f(0),
    bias_corr1: f(0.1),
    bias_corr2: f(0.05),
    max_grad_norm: f(1),
  };
} else {
  model = toOnnxModel(buildGenerateGraph(cfg, true));
  const P = 60,
    kv = 4,
    hd = 32;
  feeds = {
    tokens: new ort.Tensor("int64", new BigInt64Array(B), [B, 1]),
    positions: new ort.Tensor(
      "int64",
      BigInt64Array.from({ length: B }, () => 60n),
      [B, 1],
    ),
    mask: new ort.Tensor("float32", new Float32Array(B * (P + 1)), [B, 1, P + 1]),
  };
  for (let l = 0; l < 2; l++) {
    feeds[`past_k.${l}`] = new ort.Tensor("float32", new Float32Array(B * kv * hd * P), [B, kv, hd, P]);
    feeds[`past_v.${l}`] = new ort.Tensor("float32", new Float32Array(B * kv * hd * P), [B, kv, P, hd]);
  }
  const { paramLayout } = await import("./params.ts");
  for (const s of paramLayout(cfg).specs)
    feeds[s.name] = new ort.Tensor(
      "float32",
      params.subarray(s.offset, s.offset + s.size),
      s.shape as number[],
    );
}
const threads = Number(process.argv[3] ?? 2);
const prof = process.argv[4] === "prof";
const s = await ort.InferenceSession.create(model, {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
  enableProfiling: prof,
  profileFilePrefix: "/tmp/ortprof",
  extra: { session: { intra_op: { allow_spinning: process.argv[5] ?? "0" } } },
});
for (let i = 0; i < 3; i++) await s.run(feeds);
const reps = which === "train" ? 10 : 200;
const t0 = performance.now();
for (let i = 0; i < reps; i++) await s.run(feeds);
const dt = (performance.now() - t0) / reps;
console.log(
  which,
  "ms/run",
  dt.toFixed(2),
  which === "train" ? `tok/s ${(((B * T) / dt) * 1000).toFixed(0)}` : `tok/s ${((B / dt) * 1000).toFixed(0)}`,
);
if (prof) {
  const file = s.endProfiling();
  await new Promise((r) => setTimeout(r, 500));
  const f2 = readdirSync("/tmp")
    .filter((x) => x.startsWith("ortprof"))
    .map((x) => `/tmp/${x}`)[0]!;
  const ev = JSON.parse(readFileSync(f2, "utf8")) as {
    cat: string;
    name: string;
    dur: number;
    args: { op_name?: string };
  }[];
  const byNode = new Map<string, number>();
  for (const e of ev)
    if (e.cat === "Node" && e.name.endsWith("_kernel_time"))
      byNode.set(
        `${e.args.op_name} ${e.name} ${JSON.stringify((e.args as Record<string, unknown>).output_type_shape ?? "")}`,
        (byNode.get(
          `${e.args.op_name} ${e.name} ${JSON.stringify((e.args as Record<string, unknown>).output_type_shape ?? "")}`,
        ) ?? 0) + e.dur,
      );
  console.log(
    [...byNode.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 45)
      .map(([k, v]) => `${(v / (reps + 3) / 1000).toFixed(2)}ms ${k}`)
      .join("\n"),
  );
  const by = new Map<string, number>();
  let total = 0;
  for (const e of ev)
    if (e.cat === "Node" && e.name.endsWith("_kernel_time")) {
      const k = e.args.op_name ?? "?";
      by.set(k, (by.get(k) ?? 0) + e.dur);
      total += e.dur;
    }
  console.log(
    [...by.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 25)
      .map(([k, v]) => `${k} ${(v / (reps + 3) / 1000).toFixed(2)}ms ${((100 * v) / total).toFixed(1)}%`)
      .join("\n"),
  );
  unlinkSync(f2);
  void file;
}
