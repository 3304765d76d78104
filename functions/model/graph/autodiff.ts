/**
 * Reverse-mode automatic differentiation over the ONNX ops of graph-builder.ts: walks the recorded
 * nodes backwards from a scalar loss and emits the backward pass as more nodes of the same graph.
 */
import {
  type Dim,
  type GraphBuilder,
  type GraphNode,
  isFloat,
  isStatic,
  numel,
  type Value,
} from "./graph-builder.ts";

type GradRule = (
  b: GraphBuilder,
  node: GraphNode,
  gOut: readonly (Value | undefined)[],
) => (Value | undefined)[];

function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** reshape `g` (same element count as `like`) to `like`'s shape, statically when possible */
function reshapeLike(b: GraphBuilder, g: Value, like: Value): Value {
  if (sameShape(g.shape, like.shape)) return g;
  if (isStatic(like.shape)) return b.reshape(g, like.shape);
  return b.reshape(g, b.shape(like), like.shape);
}

/** sum a broadcast gradient back down to `target` (the operand's shape) */
export function sumTo(b: GraphBuilder, g: Value, target: readonly Dim[]): Value {
  if (sameShape(g.shape, target)) return g;
  const lead = g.shape.length - target.length;
  if (lead < 0) throw new Error(`sumTo: gradient rank ${g.shape.length} below target rank ${target.length}`);
  const axes: number[] = [];
  for (let i = 0; i < lead; i++) axes.push(i);
  target.forEach((td, i) => {
    const gd = g.shape[lead + i]!;
    if (td === gd) return;
    if (td === 1) axes.push(lead + i);
    else if (typeof td === "number" && typeof gd === "number") {
      throw new Error(`sumTo: dim ${gd} cannot reduce to ${td}`);
    } else if (typeof td === "string" && typeof gd === "string") {
      throw new Error(`sumTo: ambiguous broadcast between symbolic dims ${gd} and ${td}; use static shapes`);
    }
  });
  let r = axes.length > 0 ? b.reduceSum(g, axes, true) : g;
  if (lead > 0) {
    const leadAxes = axes.slice(0, lead);
    r = b.squeeze(r, leadAxes);
  }
  return r;
}

function constInts(b: GraphBuilder, v: Value | undefined): number[] {
  if (!v) throw new Error("expected a constant int input");
  const init = b.initializers.find((i) => i.value.name === v.name);
  if (!init || !(init.data instanceof BigInt64Array)) {
    throw new Error(`input ${v.name} must be an int64 constant for autodiff`);
  }
  return Array.from(init.data, (x) => Number(x));
}

function attrInt(node: GraphNode, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.kind === "int" ? a.value : fallback;
}
function attrFloat(node: GraphNode, name: string, fallback: number): number {
  const a = node.attrs[name];
  return a && a.kind === "float" ? a.value : fallback;
}

function inp(node: GraphNode, i: number): Value {
  const v = node.inputs[i];
  if (!v) throw new Error(`${node.op}: missing input ${i}`);
  return v;
}
function out(node: GraphNode, i = 0): Value {
  return node.outputs[i]!;
}

function swapLast(b: GraphBuilder, x: Value): Value {
  const r = x.shape.length;
  const perm = x.shape.map((_, i) => i);
  perm[r - 1] = r - 2;
  perm[r - 2] = r - 1;
  return b.transpose(x, perm);
}

function reduceBackward(b: GraphBuilder, node: GraphNode, g: Value): Value {
  const x = inp(node, 0);
  const axes = constInts(b, node.inputs[1]);
  const keep = attrInt(node, "keepdims", 1) === 1;
  const gk = keep ? g : b.unsqueeze(g, axes);
  return isStatic(x.shape) ? b.expand(gk, x.shape) : b.expand(gk, b.shape(x), x.shape);
}

const RULES: Record<string, GradRule> = {
  Identity: (_b, _n, [g]) => [g],
  Add: (b, n, [g]) => [sumTo(b, g!, inp(n, 0).shape), sumTo(b, g!, inp(n, 1).shape)],
  Sub: (b, n, [g]) => [sumTo(b, g!, inp(n, 0).shape), sumTo(b, b.neg(g!), inp(n, 1).shape)],
  Mul: (b, n, [g]) => [
    sumTo(b, b.mul(g!, inp(n, 1)), inp(n, 0).shape),
    sumTo(b, b.mul(g!, inp(n, 0)), inp(n, 1).shape),
  ],
  Div: (b, n, [g]) => {
    const divisor = inp(n, 1);
    const ga = b.div(g!, divisor);
    return [sumTo(b, ga, inp(n, 0).shape), sumTo(b, b.neg(b.mul(ga, out(n))), divisor.shape)];
  },
  Neg: (b, _n, [g]) => [b.neg(g!)],
  Exp: (b, n, [g]) => [b.mul(g!, out(n))],
  Log: (b, n, [g]) => [b.div(g!, inp(n, 0))],
  Sqrt: (b, n, [g]) => [b.div(b.mul(g!, b.scalar(0.5, out(n).dtype)), out(n))],
  Pow: (b, n, [g]) => {
    const base = inp(n, 0);
    const e = inp(n, 1);
    const one = b.scalar(1, base.dtype);
    const gBase = b.mul(b.mul(g!, e), b.pow(base, b.sub(e, one)));
    const gExp = b.mul(b.mul(g!, out(n)), b.log(base));
    return [sumTo(b, gBase, base.shape), sumTo(b, gExp, e.shape)];
  },
  Tanh: (b, n, [g]) => {
    const y = out(n);
    return [b.mul(g!, b.sub(b.scalar(1, y.dtype), b.mul(y, y)))];
  },
  Sigmoid: (b, n, [g]) => {
    const y = out(n);
    return [b.mul(b.mul(g!, y), b.sub(b.scalar(1, y.dtype), y))];
  },
  ReduceSum: (b, n, [g]) => [reduceBackward(b, n, g!)],
  ReduceMean: (b, n, [g]) => {
    const x = inp(n, 0);
    const y = out(n);
    const nx = numel(x.shape);
    const ny = numel(y.shape);
    const count =
      nx !== undefined && ny !== undefined
        ? b.scalar(nx / ny, x.dtype)
        : b.div(
            b.cast(b.node("Size", [x], [{ dtype: "int64", shape: [] }])[0]!, x.dtype),
            b.cast(b.node("Size", [y], [{ dtype: "int64", shape: [] }])[0]!, x.dtype),
          );
    return [b.div(reduceBackward(b, n, g!), count)];
  },
  ReduceMax: (b, n, [g]) => {
    const x = inp(n, 0);
    const axes = constInts(b, n.inputs[1]);
    const keep = attrInt(n, "keepdims", 1) === 1;
    const yk = keep ? out(n) : b.unsqueeze(out(n), axes);
    const mask = b.cast(b.equal(x, yk), x.dtype);
    return [b.mul(mask, reduceBackward(b, n, g!))];
  },
  Softmax: (b, n, [g]) => {
    const y = out(n);
    const axis = attrInt(n, "axis", -1);
    const dot = b.reduceSum(b.mul(g!, y), [axis], true);
    return [b.mul(y, b.sub(g!, dot))];
  },
  LogSoftmax: (b, n, [g]) => {
    const y = out(n);
    const axis = attrInt(n, "axis", -1);
    return [b.sub(g!, b.mul(b.exp(y), b.reduceSum(g!, [axis], true)))];
  },
  MatMul: (b, n, [g]) => {
    const a = inp(n, 0);
    const w = inp(n, 1);
    let ga: Value;
    let gw: Value;
    if (w.shape.length === 2 && a.shape.length > 2) {
      // [.., K] x [K, N]: fold the batch dims into one Gemm for the weight gradient
      const k = w.shape[0] as number;
      const nOut = w.shape[1] as number;
      if (typeof k !== "number" || typeof nOut !== "number")
        throw new Error("MatMul grad: weight dims must be static");
      ga = b.matmul(g!, b.transpose(w, [1, 0]));
      gw = b.gemm(b.reshape(a, [-1, k]), b.reshape(g!, [-1, nOut]), undefined, { transA: true });
    } else {
      ga = sumTo(b, b.matmul(g!, swapLast(b, w)), a.shape);
      gw = sumTo(b, b.matmul(swapLast(b, a), g!), w.shape);
    }
    return [ga, gw];
  },
  Gemm: (b, n, [g]) => {
    const a = inp(n, 0);
    const w = inp(n, 1);
    const c = n.inputs[2];
    const transA = attrInt(n, "transA", 0) === 1;
    const transB = attrInt(n, "transB", 0) === 1;
    const alpha = attrFloat(n, "alpha", 1);
    const beta = attrFloat(n, "beta", 1);
    // with A' = op(A), B' = op(B): dA' = alpha g B'^T and dB' = alpha A'^T g; a transposed operand's
    // gradient is the transpose of those, written as one Gemm (no Transpose of a weight-sized tensor)
    const dA = transA
      ? b.gemm(w, g!, undefined, { transA: transB, transB: true, alpha })
      : b.gemm(g!, w, undefined, { transB: !transB, alpha });
    const dB = transB
      ? b.gemm(g!, a, undefined, { transA: true, transB: transA, alpha })
      : b.gemm(a, g!, undefined, { transA: !transA, alpha });
    const res: (Value | undefined)[] = [dA, dB];
    if (c) {
      const gc = sumTo(b, g!, c.shape);
      res.push(beta === 1 ? gc : b.mul(gc, b.scalar(beta, c.dtype)));
    }
    return res;
  },
  Gather: (b, n, [g]) => {
    if (attrInt(n, "axis", 0) !== 0) throw new Error("Gather grad: only axis 0 is supported");
    const data = inp(n, 0);
    const idx = b.unsqueeze(inp(n, 1), [-1]);
    return [b.scatterND(b.zerosLike(data), idx, g!, "add"), undefined];
  },
  GatherElements: (b, n, [g]) => {
    const data = inp(n, 0);
    return [b.scatterElements(b.zerosLike(data), inp(n, 1), g!, attrInt(n, "axis", 0), "add"), undefined];
  },
  ScatterND: (b, n, [g]) => {
    const idx = inp(n, 1);
    const upd = inp(n, 2);
    const reduction = n.attrs.reduction;
    const additive = reduction?.kind === "string" && reduction.value === "add";
    if (reduction && !additive) throw new Error("ScatterND grad: only reduction none or add");
    const gData = additive ? g! : b.scatterND(g!, idx, b.zerosLike(upd));
    return [gData, undefined, b.gatherND(g!, idx)];
  },
  Transpose: (b, n, [g]) => {
    const perm = n.attrs.perm;
    if (perm?.kind !== "ints") throw new Error("Transpose grad: perm attribute required");
    const inv: number[] = [];
    perm.value.forEach((p, i) => {
      inv[p] = i;
    });
    return [b.transpose(g!, inv)];
  },
  Reshape: (b, n, [g]) => [reshapeLike(b, g!, inp(n, 0)), undefined],
  Unsqueeze: (b, n, [g]) => [reshapeLike(b, g!, inp(n, 0)), undefined],
  Squeeze: (b, n, [g]) => [reshapeLike(b, g!, inp(n, 0)), undefined],
  Expand: (b, n, [g]) => [sumTo(b, g!, inp(n, 0).shape), undefined],
  Concat: (b, n, [g]) => {
    const axis = attrInt(n, "axis", 0);
    const sizes = n.inputs.map((x) => x!.shape[axis]);
    if (!sizes.every((s) => typeof s === "number"))
      throw new Error("Concat grad: concat axis must be static");
    return b.split(g!, sizes as number[], axis);
  },
  Split: (b, n, gs) => {
    const parts = n.outputs.map((o, i) => gs[i] ?? b.zerosLike(o));
    return [b.concat(parts, attrInt(n, "axis", 0)), undefined];
  },
  Slice: (b, n, [g]) => {
    const x = inp(n, 0);
    const starts = constInts(b, n.inputs[1]);
    const ends = constInts(b, n.inputs[2]);
    const axes = constInts(b, n.inputs[3]);
    const r = x.shape.length;
    const pads = new Array<number>(2 * r).fill(0);
    axes.forEach((ax, i) => {
      const a = ax < 0 ? ax + r : ax;
      const d = x.shape[a];
      if (typeof d !== "number") throw new Error("Slice grad: sliced axes must be static");
      const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
      pads[a] = clamp(starts[i]!);
      pads[a + r] = d - clamp(ends[i]!);
    });
    return [b.pad(g!, pads)];
  },
  Where: (b, n, [g]) => {
    const cond = inp(n, 0);
    const zero = b.scalar(0, g!.dtype);
    return [
      undefined,
      sumTo(b, b.where(cond, g!, zero), inp(n, 1).shape),
      sumTo(b, b.where(cond, zero, g!), inp(n, 2).shape),
    ];
  },
  Cast: (b, n, [g]) => {
    const x = inp(n, 0);
    return [isFloat(x.dtype) ? b.cast(g!, x.dtype) : undefined];
  },
  Min: (b, n, [g]) => minMax(b, n, g!, "min"),
  Max: (b, n, [g]) => minMax(b, n, g!, "max"),
  Clip: (b, n, [g]) => {
    const x = inp(n, 0);
    const lo = n.inputs[1];
    const hi = n.inputs[2];
    let mask: Value | undefined;
    if (lo) mask = b.greaterOrEqual(x, lo);
    if (hi) mask = mask ? b.and(mask, b.lessOrEqual(x, hi)) : b.lessOrEqual(x, hi);
    if (!mask) return [g];
    return [b.where(mask, g!, b.scalar(0, x.dtype)), undefined, undefined];
  },
  LayerNormalization: (b, n, gs) => {
    if (gs[1] || gs[2])
      throw new Error("LayerNormalization grad: mean/invStd outputs are not differentiable");
    const g = gs[0]!;
    const x = inp(n, 0);
    const scale = inp(n, 1);
    const bias = n.inputs[2];
    const axis = attrInt(n, "axis", -1);
    const r = x.shape.length;
    const a = axis < 0 ? axis + r : axis;
    const lead = Array.from({ length: a }, (_, i) => i);
    const norm = Array.from({ length: r - a }, (_, i) => a + i);
    let mean = out(n, 1);
    let invStd = out(n, 2);
    if (x.dtype !== "float32") {
      // the saved statistics are float32; recompute them at full precision for float64 graphs
      const eps = attrFloat(n, "epsilon", 1e-5);
      mean = b.reduceMean(x, norm, true);
      const centered = b.sub(x, mean);
      const variance = b.reduceMean(b.mul(centered, centered), norm, true);
      invStd = b.div(b.scalar(1, x.dtype), b.sqrt(b.add(variance, b.scalar(eps, x.dtype))));
    }
    const xhat = b.mul(b.sub(x, mean), invStd);
    const gScale = b.reduceSum(b.mul(g, xhat), lead, false);
    const gBias = bias ? b.reduceSum(g, lead, false) : undefined;
    const gxhat = b.mul(g, scale);
    const m1 = b.reduceMean(gxhat, norm, true);
    const m2 = b.reduceMean(b.mul(gxhat, xhat), norm, true);
    const gx = b.mul(invStd, b.sub(b.sub(gxhat, m1), b.mul(xhat, m2)));
    return [gx, reshapeLike(b, gScale, scale), bias && gBias ? reshapeLike(b, gBias, bias) : undefined];
  },
};

function minMax(b: GraphBuilder, n: GraphNode, g: Value, kind: "min" | "max"): (Value | undefined)[] {
  const x = inp(n, 0);
  const y = inp(n, 1);
  const pickX = kind === "min" ? b.lessOrEqual(x, y) : b.greaterOrEqual(x, y);
  const zero = b.scalar(0, g.dtype);
  return [sumTo(b, b.where(pickX, g, zero), x.shape), sumTo(b, b.where(pickX, zero, g), y.shape)];
}

/** ops that autodiff knows how to differentiate */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(RULES);

/**
 * Emits the gradient of scalar `loss` with respect to each of `wrt` into the builder. Values that do
 * not influence the loss get an explicit zero gradient. `seed` replaces the implicit 1 (d loss / d loss).
 */
export function gradients(b: GraphBuilder, loss: Value, wrt: readonly Value[], seed?: Value): Value[] {
  if (!isFloat(loss.dtype)) throw new Error("gradients: loss must be a float value");
  const needed = new Set<string>(wrt.map((w) => w.name));
  const forward = [...b.nodes];
  for (const node of forward) {
    if (node.inputs.some((i) => i && needed.has(i.name))) {
      for (const o of node.outputs) if (isFloat(o.dtype)) needed.add(o.name);
    }
  }
  const grads = new Map<string, Value>();
  const lossSeed = seed ?? (loss.shape.length === 0 ? b.scalar(1, loss.dtype) : undefined);
  if (!lossSeed) throw new Error("gradients: a non-scalar loss needs an explicit seed");
  grads.set(loss.name, lossSeed);

  for (let k = forward.length - 1; k >= 0; k--) {
    const node = forward[k]!;
    const gOut = node.outputs.map((o) => grads.get(o.name));
    if (gOut.every((g) => g === undefined)) continue;
    if (!node.inputs.some((i) => i && needed.has(i.name))) continue;
    const custom = node.outputs.length === 1 ? b.customGradients.get(node.outputs[0]!) : undefined;
    if (custom) {
      const gIn = custom.rule(b, gOut[0]!);
      custom.inputs.forEach((input, i) => {
        const g = gIn[i];
        if (!g || !needed.has(input.name)) return;
        const prev = grads.get(input.name);
        grads.set(input.name, prev ? b.add(prev, g) : g);
      });
      continue;
    }
    const rule = RULES[node.op];
    if (!rule) throw new Error(`autodiff: no gradient rule for op ${node.op}`);
    const gIn = rule(b, node, gOut);
    node.inputs.forEach((input, i) => {
      const g = gIn[i];
      if (!input || !g || !needed.has(input.name)) return;
      const prev = grads.get(input.name);
      grads.set(input.name, prev ? b.add(prev, g) : g);
    });
  }
  return wrt.map((w) => grads.get(w.name) ?? b.zerosLike(w));
}
