import * as ort from "onnxruntime-node";
import { readFileSync, readdirSync, unlinkSync } from "node:fs";
import { ModelConfigSchema } from "./config.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import { buildTrainGraph } from "./transformer.ts";
import { initParams } from "./params.ts";
import { createRng } from "./rng.ts";
const cfg = ModelConfigSchema.parse({ vocabSize: 99, layers: 2, width: 128, heads: 4, maxSeqLen: 256 });
const B = 32, T = 128;
const rng = createRng(1);
const params = initParams(cfg, rng);
const n = params.length;
const f = (x: number) => new ort.Tensor("float32", Float32Array.of(x), []);
const model = toOnnxModel(buildTrainGraph(cfg, { batch: B, length: T, loss: "ppo", klToReference: false, entropyBonus: false, mode: "fused" }));
const ids = () => new ort.Tensor("int64", BigInt64Array.from({ length: B * T }, () => BigInt(3 + Math.floor(rng.next() * 90))), [B, T]);
const ff = (v: number) => new ort.Tensor("float32", new Float32Array(B * T).fill(v), [B, T]);
const feeds = { params: new ort.Tensor("float32", params, [n]), input_ids: ids(), target_ids: ids(), loss_mask: ff(1), loss_scale: f(1 / (B * T)),
  advantages: ff(0.5), behaviour_logp: ff(-4.6), proximal_logp: ff(-4.6), clip_low: f(0.2), clip_high: f(0.2), iw_cap: f(5), iw_over_cap: f(0),
  adam_m: new ort.Tensor("float32", new Float32Array(n), [n]), adam_v: new ort.Tensor("float32", new Float32Array(n), [n]), decay_mask: new ort.Tensor("float32", new Float32Array(n), [n]),
  lr: f(1e-3), beta1: f(0.9), beta2: f(0.95), adam_eps: f(1e-5), weight_decay: f(0), bias_corr1: f(0.1), bias_corr2: f(0.05), max_grad_norm: f(1) };
const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, graphOptimizationLevel: "all", enableProfiling: true, profileFilePrefix: "/tmp/ortprof2" });
const reps = 6;
for (let i = 0; i < reps; i++) await s.run(feeds);
s.endProfiling();
await new Promise((r) => setTimeout(r, 300));
const f2 = readdirSync("/tmp").filter((x) => x.startsWith("ortprof2")).map((x) => `/tmp/${x}`)[0]!;
const ev = JSON.parse(readFileSync(f2, "utf8")) as { cat: string; name: string; dur: number; args: { op_name?: string } }[];
const by = new Map<string, [number, number]>(); let total = 0;
for (const e of ev) if (e.cat === "Node" && e.name.endsWith("_kernel_time")) { const k = e.args.op_name ?? "?"; const c = by.get(k) ?? [0, 0]; by.set(k, [c[0] + e.dur, c[1] + 1]); total += e.dur; }
console.log("kernel ms/run", (total / reps / 1000).toFixed(1));
console.log([...by.entries()].sort((a, b) => b[1][0] - a[1][0]).slice(0, 16).map(([k, v]) => `${k} ${(100 * v[0] / total).toFixed(1)}% nodes/run=${v[1] / reps}`).join("\n"));
const byNode = new Map<string, number>();
for (const e of ev) if (e.cat === "Node" && e.name.endsWith("_kernel_time") && ["Mul","Add","Sub","Transpose"].includes(e.args.op_name ?? "")) { const k = `${e.args.op_name} ${e.name} ${JSON.stringify((e.args as Record<string, unknown>).output_type_shape)} ${JSON.stringify((e.args as Record<string, unknown>).input_type_shape)}`; byNode.set(k, (byNode.get(k) ?? 0) + e.dur); }
console.log([...byNode.entries()].sort((a, b) => b[1] - a[1]).slice(0, 30).map(([k, v]) => `${(v / reps / 1000).toFixed(2)}ms ${k}`).join("\n"));
unlinkSync(f2);
