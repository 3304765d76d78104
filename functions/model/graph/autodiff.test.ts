import { describe, expect, it } from "vitest";
import { createRng } from "../rng.ts";
import { type GradCheckInput, gradCheck, randomTensor } from "./grad-check.ts";
import type { GraphBuilder, Value } from "./graph-builder.ts";

const TOL = 1e-5;
const rng = createRng(7);

function diff(name: string, dims: number[], scale = 1, offset = 0): GradCheckInput {
  return { name, tensor: randomTensor(rng, dims, scale, offset), differentiable: true };
}
function i64(name: string, dims: number[], values: number[]): GradCheckInput {
  return {
    name,
    tensor: { dtype: "int64", data: BigInt64Array.from(values.map(BigInt)), dims },
    differentiable: false,
  };
}

/** loss = sum(y * w) with fixed random weights, so every output element matters differently */
function weighted(b: GraphBuilder, y: Value): Value {
  const dims = y.shape as number[];
  const n = dims.reduce((a, d) => a * d, 1);
  const w = Array.from({ length: n }, (_, i) => Math.sin(i * 1.7 + 0.3));
  return b.sumAll(b.mul(y, b.constant(w, dims)));
}

type Case = [string, GradCheckInput[], (b: GraphBuilder, v: Record<string, Value>) => Value];

const cases: Case[] = [
  ["Add (broadcast)", [diff("a", [2, 3, 4]), diff("b", [3, 1])], (b, v) => b.add(v.a!, v.b!)],
  ["Sub (broadcast)", [diff("a", [2, 3]), diff("b", [3])], (b, v) => b.sub(v.a!, v.b!)],
  ["Mul (broadcast)", [diff("a", [2, 3, 4]), diff("b", [2, 1, 4])], (b, v) => b.mul(v.a!, v.b!)],
  ["Div", [diff("a", [3, 4]), diff("b", [3, 4], 0.3, 2)], (b, v) => b.div(v.a!, v.b!)],
  ["Neg", [diff("a", [5])], (b, v) => b.neg(v.a!)],
  ["Exp", [diff("a", [3, 4])], (b, v) => b.exp(v.a!)],
  ["Log", [diff("a", [3, 4], 0.3, 2)], (b, v) => b.log(v.a!)],
  ["Sqrt", [diff("a", [3, 4], 0.3, 2)], (b, v) => b.sqrt(v.a!)],
  ["Pow (both)", [diff("a", [3, 4], 0.3, 2), diff("e", [4], 0.5, 1)], (b, v) => b.pow(v.a!, v.e!)],
  ["Tanh", [diff("a", [3, 4])], (b, v) => b.tanh(v.a!)],
  ["Sigmoid", [diff("a", [3, 4])], (b, v) => b.sigmoid(v.a!)],
  ["MatMul 2-D", [diff("a", [3, 4]), diff("b", [4, 5])], (b, v) => b.matmul(v.a!, v.b!)],
  ["MatMul batched x weight", [diff("a", [2, 3, 4]), diff("b", [4, 5])], (b, v) => b.matmul(v.a!, v.b!)],
  [
    "MatMul broadcast batch",
    [diff("a", [2, 2, 3, 4]), diff("b", [2, 1, 4, 5])],
    (b, v) => b.matmul(v.a!, v.b!),
  ],
  [
    "Gemm transA transB with C",
    [diff("a", [4, 3]), diff("b", [5, 4]), diff("c", [5])],
    (b, v) => b.gemm(v.a!, v.b!, v.c!, { transA: true, transB: true, alpha: 0.7, beta: 1.3 }),
  ],
  ["Gemm plain", [diff("a", [3, 4]), diff("b", [4, 5])], (b, v) => b.gemm(v.a!, v.b!)],
  [
    "Gemm transA",
    [diff("a", [4, 3]), diff("b", [4, 5])],
    (b, v) => b.gemm(v.a!, v.b!, undefined, { transA: true, alpha: 1.5 }),
  ],
  [
    "Gemm transB (tied output head)",
    [diff("a", [3, 4]), diff("b", [5, 4])],
    (b, v) => b.gemm(v.a!, v.b!, undefined, { transB: true }),
  ],
  ["ReduceSum keepdims", [diff("a", [2, 3, 4])], (b, v) => b.reduceSum(v.a!, [1], true)],
  ["ReduceSum", [diff("a", [2, 3, 4])], (b, v) => b.reduceSum(v.a!, [0, 2], false)],
  ["ReduceMean", [diff("a", [2, 3, 4])], (b, v) => b.reduceMean(v.a!, [-1], false)],
  ["ReduceMax", [diff("a", [2, 3, 4])], (b, v) => b.reduceMax(v.a!, [1], true)],
  ["Softmax", [diff("a", [2, 3, 5])], (b, v) => b.softmax(v.a!, -1)],
  ["Softmax axis 1", [diff("a", [2, 3, 5])], (b, v) => b.softmax(v.a!, 1)],
  ["LogSoftmax", [diff("a", [2, 3, 5])], (b, v) => b.logSoftmax(v.a!, -1)],
  [
    "Gather (embedding, repeated ids)",
    [diff("w", [6, 3]), i64("i", [2, 3], [0, 5, 2, 2, 0, 1])],
    (b, v) => b.gather(v.w!, v.i!, 0),
  ],
  [
    "GatherElements",
    [diff("a", [2, 3, 4]), i64("i", [2, 3, 1], [0, 3, 2, 1, 1, 0])],
    (b, v) => b.gatherElements(v.a!, v.i!, 2),
  ],
  [
    "ScatterND",
    [diff("d", [4, 3]), i64("i", [2, 1], [2, 0]), diff("u", [2, 3])],
    (b, v) => b.scatterND(v.d!, v.i!, v.u!),
  ],
  ["Transpose", [diff("a", [2, 3, 4])], (b, v) => b.transpose(v.a!, [2, 0, 1])],
  ["Reshape", [diff("a", [2, 3, 4])], (b, v) => b.reshape(v.a!, [0, -1])],
  ["Concat", [diff("a", [2, 3]), diff("b", [2, 2])], (b, v) => b.concat([v.a!, v.b!], 1)],
  ["Split", [diff("a", [2, 5])], (b, v) => b.split(v.a!, [2, 3], 1)[1]!],
  ["Slice", [diff("a", [4, 5])], (b, v) => b.slice(v.a!, [1, 0], [3, 4], [0, 1])],
  [
    "Where",
    [diff("a", [3, 4]), diff("b", [4]), diff("c", [3, 4])],
    (b, v) => b.where(b.greater(v.c!, b.scalar(0)), v.a!, v.b!),
  ],
  ["Expand", [diff("a", [3, 1])], (b, v) => b.expand(v.a!, [2, 3, 4])],
  ["Unsqueeze", [diff("a", [3, 4])], (b, v) => b.unsqueeze(v.a!, [0, 2])],
  ["Squeeze", [diff("a", [3, 1, 4])], (b, v) => b.squeeze(v.a!, [1])],
  [
    "Cast (float and int paths)",
    [diff("a", [4]), i64("k", [4], [1, 0, 3, 2])],
    (b, v) => b.mul(b.cast(v.a!, "float64"), b.cast(v.k!, "float64")),
  ],
  [
    "Equal gates a Where",
    [diff("a", [4]), i64("k", [4], [1, 0, 1, 1])],
    (b, v) => b.where(b.equal(v.k!, b.ints([1])), v.a!, b.neg(v.a!)),
  ],
  ["Min", [diff("a", [3, 4]), diff("b", [3, 4])], (b, v) => b.min(v.a!, v.b!)],
  ["Max", [diff("a", [3, 4]), diff("b", [4])], (b, v) => b.max(v.a!, v.b!)],
  ["Clip", [diff("a", [3, 4])], (b, v) => b.clip(v.a!, b.scalar(-0.5), b.scalar(0.6))],
  [
    "LayerNormalization",
    [diff("x", [2, 3, 6]), diff("s", [6], 0.5, 1), diff("c", [6])],
    (b, v) => b.layerNorm(v.x!, v.s!, v.c!, { axis: -1, epsilon: 1e-5 }).y,
  ],
];

describe("autodiff rules match float64 central finite differences", () => {
  for (const [name, inputs, build] of cases) {
    it(name, async () => {
      const result = await gradCheck(inputs, (b, v) => weighted(b, build(b, v)), { rng: createRng(11) });
      expect(result.maxRelativeError, JSON.stringify(result.perInput)).toBeLessThan(TOL);
    });
  }

  it("routes a custom gradient rule and the checker catches a wrong one", async () => {
    const square = (rule: number) => (b: GraphBuilder, v: Record<string, Value>) => {
      const x = v.a!;
      const y = b.mul(x, x);
      b.customGradient(y, [x], (bb, g) => [bb.mul(g, bb.mul(x, bb.scalar(rule)))]);
      return weighted(b, y);
    };
    const right = await gradCheck([diff("a", [3, 4])], square(2), { rng: createRng(5) });
    expect(right.maxRelativeError).toBeLessThan(TOL);
    const wrong = await gradCheck([diff("a", [3, 4])], square(3), { rng: createRng(5) });
    expect(wrong.maxRelativeError).toBeGreaterThan(0.1);
  });

  it("accumulates gradients of a value used twice", async () => {
    const result = await gradCheck(
      [diff("a", [3, 4])],
      (b, v) => weighted(b, b.mul(b.exp(v.a!), b.tanh(v.a!))),
      { rng: createRng(3) },
    );
    expect(result.maxRelativeError).toBeLessThan(TOL);
  });
});
