import * as ort from "onnxruntime-node";
import { GraphBuilder } from "./graph/graph-builder.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";

const N = 4096,
  D = 128,
  F = 512;
async function bench(name: string, build: (b: GraphBuilder) => void, feeds: Record<string, ort.Tensor>) {
  const b = new GraphBuilder("float32");
  build(b);
  const s = await ort.InferenceSession.create(toOnnxModel(b), {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  for (let i = 0; i < 3; i++) await s.run(feeds);
  const reps = 20;
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, c) => a - c);
  console.log(
    name.padEnd(40),
    "median ms",
    times[reps >> 1]!.toFixed(2),
    "GFLOP/s",
    ((2 * N * D * F) / times[reps >> 1]! / 1e6).toFixed(1),
  );
}
const r = (n: number) => Float32Array.from({ length: n }, () => Math.random() - 0.5);
const A = new ort.Tensor("float32", r(N * D), [32, 128, D]);
const G = new ort.Tensor("float32", r(N * F), [32, 128, F]);
const W = new ort.Tensor("float32", r(D * F), [D, F]);
await bench(
  "fwd MatMul [B,T,D]x[D,F]",
  (b) => {
    const a = b.input("a", "float32", [32, 128, D]);
    const w = b.input("w", "float32", [D, F]);
    b.output(b.matmul(a, w), "y");
  },
  { a: A, w: W },
);
await bench(
  "dX MatMul g x W^T (fused)",
  (b) => {
    const g = b.input("g", "float32", [32, 128, F]);
    const w = b.input("w", "float32", [D, F]);
    b.output(b.matmul(g, b.transpose(w, [1, 0])), "y");
  },
  { g: G, w: W },
);
await bench(
  "dX Gemm 2D g x W^T transB",
  (b) => {
    const g = b.input("g", "float32", [32, 128, F]);
    const w = b.input("w", "float32", [D, F]);
    b.output(b.gemm(b.reshape(g, [-1, F]), w, undefined, { transB: true }), "y");
  },
  { g: G, w: W },
);
await bench(
  "dX MatMul g x WT (WT fed)",
  (b) => {
    const g = b.input("g", "float32", [32, 128, F]);
    const w = b.input("wt", "float32", [F, D]);
    b.output(b.matmul(g, w), "y");
  },
  { g: G, wt: new ort.Tensor("float32", r(D * F), [F, D]) },
);
await bench(
  "dW Gemm transA",
  (b) => {
    const a = b.input("a", "float32", [32, 128, D]);
    const g = b.input("g", "float32", [32, 128, F]);
    b.output(b.gemm(b.reshape(a, [-1, D]), b.reshape(g, [-1, F]), undefined, { transA: true }), "y");
  },
  { a: A, g: G },
);
await bench(
  "dW batched MatMul + ReduceSum",
  (b) => {
    const a = b.input("a", "float32", [32, 128, D]);
    const g = b.input("g", "float32", [32, 128, F]);
    b.output(b.reduceSum(b.matmul(b.transpose(a, [0, 2, 1]), g), [0]), "y");
  },
  { a: A, g: G },
);
await bench(
  "dW explicit transpose 2D + MatMul",
  (b) => {
    const a = b.input("a", "float32", [32, 128, D]);
    const g = b.input("g", "float32", [32, 128, F]);
    const at = b.transpose(b.reshape(a, [-1, D]), [1, 0]);
    b.output(b.matmul(at, b.reshape(g, [-1, F])), "y");
  },
  { a: A, g: G },
);
await bench(
  "dW^T: G^T A (Gemm transA, out [F,D])",
  (b) => {
    const a = b.input("a", "float32", [32, 128, D]);
    const g = b.input("g", "float32", [32, 128, F]);
    b.output(b.gemm(b.reshape(g, [-1, F]), b.reshape(a, [-1, D]), undefined, { transA: true }), "y");
  },
  { a: A, g: G },
);
