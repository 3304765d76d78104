/**
 * A small ONNX graph builder with static/symbolic shape tracking. Every op records enough to be
 * differentiated later by `gradients()` in autodiff.ts and serialised by `toOnnxModel()`.
 */

/** a dimension: a known size or a symbolic name (dynamic at run time) */
export type Dim = number | string;
export type DType = "float32" | "float64" | "int64" | "int32" | "bool";
export type FloatDType = "float32" | "float64";

export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly Dim[];
}

export type AttrValue =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "float"; readonly value: number }
  | { readonly kind: "ints"; readonly value: readonly number[] }
  | { readonly kind: "string"; readonly value: string };

export interface GraphNode {
  readonly op: string;
  readonly inputs: readonly (Value | undefined)[];
  readonly outputs: readonly Value[];
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** operator set of `op`: absent for the standard ONNX ops, `com.microsoft` for onnxruntime's own */
  readonly domain?: typeof MICROSOFT_DOMAIN;
}

/** onnxruntime's contrib operators (fused kernels the standard opset lacks) */
export const MICROSOFT_DOMAIN = "com.microsoft";

export type CustomGradientRule = (b: GraphBuilder, gradOutput: Value) => Value[];

export interface Initializer {
  readonly value: Value;
  readonly data: Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;
}

export const int = (value: number): AttrValue => ({ kind: "int", value });
export const float = (value: number): AttrValue => ({ kind: "float", value });
export const ints = (value: readonly number[]): AttrValue => ({ kind: "ints", value });
export const str = (value: string): AttrValue => ({ kind: "string", value });

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === "float32" || dtype === "float64";
}

export function numel(shape: readonly Dim[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

export function isStatic(shape: readonly Dim[]): shape is readonly number[] {
  return shape.every((d) => typeof d === "number");
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** numpy broadcasting of two shapes; symbolic dims are trusted to agree with their partner */
export function broadcastShapes(a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (da === db) out.push(da);
    else if (typeof da === "number" && typeof db === "number") {
      throw new Error(`cannot broadcast shapes [${a.join(",")}] and [${b.join(",")}]`);
    } else out.push(typeof da === "number" ? da : db);
  }
  return out;
}

function dimSum(dims: readonly Dim[]): Dim {
  if (dims.every((d) => typeof d === "number")) return (dims as number[]).reduce((s, d) => s + d, 0);
  return `(${dims.join("+")})`;
}

export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly inputs: Value[] = [];
  readonly initializers: Initializer[] = [];
  readonly outputs: Value[] = [];
  readonly customGradients = new Map<Value, { inputs: readonly Value[]; rule: CustomGradientRule }>();
  readonly floatType: FloatDType;
  #counter = 0;
  readonly #names = new Set<string>();
  readonly #constCache = new Map<string, Value>();
  /** names of values produced by nodes (renamable when they become outputs) */
  readonly #produced = new Set<string>();
  readonly #renamed = new Set<string>();

  constructor(floatType: FloatDType = "float32") {
    this.floatType = floatType;
  }

  #fresh(hint = "t"): string {
    let name: string;
    do name = `${hint}_${this.#counter++}`;
    while (this.#names.has(name));
    this.#names.add(name);
    return name;
  }

  #claim(name: string): string {
    if (this.#names.has(name)) throw new Error(`graph value name "${name}" is already used`);
    this.#names.add(name);
    return name;
  }

  /**
   * Overrides autodiff for `output`: its gradient flows straight to `inputs` through `rule` instead of
   * through the nodes that computed it (for composites whose hand-written backward is leaner).
   */
  customGradient(output: Value, inputs: readonly Value[], rule: CustomGradientRule): void {
    this.customGradients.set(output, { inputs, rule });
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): Value {
    const value: Value = { name: this.#claim(name), dtype, shape: [...shape] };
    this.inputs.push(value);
    return value;
  }

  /** marks `value` as a graph output under `name` (through an Identity when the name differs) */
  output(value: Value, name?: string): Value {
    let out = value;
    if (name !== undefined && name !== value.name) {
      const renamable =
        this.#produced.has(value.name) && !this.outputs.includes(value) && !this.#renamed.has(value.name);
      if (renamable) {
        // rename the node output in place (consumers hold the same object): no Identity copy at run time
        this.#names.delete(value.name);
        (value as { name: string }).name = this.#claim(name);
        this.#renamed.add(value.name);
      } else {
        out = { name: this.#claim(name), dtype: value.dtype, shape: value.shape };
        this.nodes.push({ op: "Identity", inputs: [value], outputs: [out], attrs: {} });
      }
    }
    this.outputs.push(out);
    return out;
  }

  initializer(data: Initializer["data"], dtype: DType, shape: readonly Dim[], name?: string): Value {
    const value: Value = { name: name ? this.#claim(name) : this.#fresh("c"), dtype, shape: [...shape] };
    this.initializers.push({ value, data });
    return value;
  }

  /** a float constant in the graph's float type */
  constant(values: ArrayLike<number>, shape: readonly number[]): Value {
    const data = this.floatType === "float64" ? Float64Array.from(values) : Float32Array.from(values);
    if (data.length !== (numel(shape) ?? -1)) throw new Error("constant: data length does not match shape");
    return this.initializer(data, this.floatType, shape);
  }

  /** a cached float scalar constant of shape [] */
  scalar(x: number, dtype: DType = this.floatType): Value {
    if (!isFloat(dtype)) throw new Error(`scalar: ${dtype} is not a float type`);
    const key = `${dtype}:${x}`;
    let v = this.#constCache.get(key);
    if (!v) {
      const data = dtype === "float64" ? Float64Array.of(x) : Float32Array.of(x);
      v = this.initializer(data, dtype, []);
      this.#constCache.set(key, v);
    }
    return v;
  }

  /** a cached 1-D int64 constant */
  ints(values: readonly number[]): Value {
    const key = `i64:${values.join(",")}`;
    let v = this.#constCache.get(key);
    if (!v) {
      v = this.initializer(BigInt64Array.from(values.map((x) => BigInt(x))), "int64", [values.length]);
      this.#constCache.set(key, v);
    }
    return v;
  }

  node(
    op: string,
    inputs: readonly (Value | undefined)[],
    outs: readonly { dtype: DType; shape: readonly Dim[] }[],
    attrs: Record<string, AttrValue> = {},
  ): Value[] {
    const outputs = outs.map((o) => ({
      name: this.#fresh(op.toLowerCase()),
      dtype: o.dtype,
      shape: [...o.shape],
    }));
    this.nodes.push({ op, inputs: [...inputs], outputs, attrs });
    return outputs;
  }

  #one(op: string, inputs: (Value | undefined)[], dtype: DType, shape: readonly Dim[], attrs = {}): Value {
    return this.node(op, inputs, [{ dtype, shape }], attrs)[0]!;
  }

  /**
   * onnxruntime's fused tanh-approximated GELU (one kernel instead of six element-wise passes);
   * float32 only, and no gradient rule: for inference graphs
   */
  fastGelu(x: Value): Value {
    if (x.dtype !== "float32") {
      throw new Error(`fastGelu: onnxruntime's kernel is float32 only, got ${x.dtype}`);
    }
    const y: Value = { name: this.#fresh("fastgelu"), dtype: x.dtype, shape: [...x.shape] };
    this.nodes.push({ op: "FastGelu", inputs: [x], outputs: [y], attrs: {}, domain: MICROSOFT_DOMAIN });
    return y;
  }

  // ---- elementwise ----
  #binary(op: string, a: Value, b: Value, dtype: DType = a.dtype): Value {
    return this.#one(op, [a, b], dtype, broadcastShapes(a.shape, b.shape));
  }
  add(a: Value, b: Value): Value {
    return this.#binary("Add", a, b);
  }
  sub(a: Value, b: Value): Value {
    return this.#binary("Sub", a, b);
  }
  mul(a: Value, b: Value): Value {
    return this.#binary("Mul", a, b);
  }
  div(a: Value, b: Value): Value {
    return this.#binary("Div", a, b);
  }
  pow(a: Value, b: Value): Value {
    return this.#binary("Pow", a, b);
  }
  min(a: Value, b: Value): Value {
    return this.#binary("Min", a, b);
  }
  max(a: Value, b: Value): Value {
    return this.#binary("Max", a, b);
  }
  equal(a: Value, b: Value): Value {
    return this.#binary("Equal", a, b, "bool");
  }
  less(a: Value, b: Value): Value {
    return this.#binary("Less", a, b, "bool");
  }
  greater(a: Value, b: Value): Value {
    return this.#binary("Greater", a, b, "bool");
  }
  lessOrEqual(a: Value, b: Value): Value {
    return this.#binary("LessOrEqual", a, b, "bool");
  }
  greaterOrEqual(a: Value, b: Value): Value {
    return this.#binary("GreaterOrEqual", a, b, "bool");
  }
  and(a: Value, b: Value): Value {
    return this.#binary("And", a, b, "bool");
  }
  or(a: Value, b: Value): Value {
    return this.#binary("Or", a, b, "bool");
  }
  #unary(op: string, x: Value, attrs: Record<string, AttrValue> = {}): Value {
    return this.#one(op, [x], x.dtype, x.shape, attrs);
  }
  neg(x: Value): Value {
    return this.#unary("Neg", x);
  }
  exp(x: Value): Value {
    return this.#unary("Exp", x);
  }
  log(x: Value): Value {
    return this.#unary("Log", x);
  }
  sqrt(x: Value): Value {
    return this.#unary("Sqrt", x);
  }
  tanh(x: Value): Value {
    return this.#unary("Tanh", x);
  }
  /** no gradient rule: used on positions (rotary angles), never on values that depend on parameters */
  cos(x: Value): Value {
    return this.#unary("Cos", x);
  }
  sin(x: Value): Value {
    return this.#unary("Sin", x);
  }
  sigmoid(x: Value): Value {
    return this.#unary("Sigmoid", x);
  }
  not(x: Value): Value {
    return this.#unary("Not", x);
  }
  identity(x: Value): Value {
    return this.#unary("Identity", x);
  }
  clip(x: Value, lo?: Value, hi?: Value): Value {
    return this.#one("Clip", [x, lo, hi], x.dtype, x.shape);
  }
  where(cond: Value, a: Value, b: Value): Value {
    return this.#one(
      "Where",
      [cond, a, b],
      a.dtype,
      broadcastShapes(cond.shape, broadcastShapes(a.shape, b.shape)),
    );
  }
  cast(x: Value, to: DType): Value {
    return this.#one("Cast", [x], to, x.shape, { to: int(ONNX_DTYPE[to]) });
  }

  // ---- linear algebra ----
  matmul(a: Value, b: Value): Value {
    if (a.shape.length < 2 || b.shape.length < 2) throw new Error("matmul: operands must have rank >= 2");
    const m = a.shape[a.shape.length - 2]!;
    const n = b.shape[b.shape.length - 1]!;
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.#one("MatMul", [a, b], a.dtype, [...batch, m, n]);
  }
  gemm(
    a: Value,
    b: Value,
    c?: Value,
    opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number } = {},
  ) {
    const m = opts.transA ? a.shape[1]! : a.shape[0]!;
    const n = opts.transB ? b.shape[0]! : b.shape[1]!;
    return this.#one("Gemm", [a, b, c], a.dtype, [m, n], {
      transA: int(opts.transA ? 1 : 0),
      transB: int(opts.transB ? 1 : 0),
      alpha: float(opts.alpha ?? 1),
      beta: float(opts.beta ?? 1),
    });
  }

  // ---- reductions ----
  #reduce(op: string, x: Value, axes: readonly number[], keepdims: boolean): Value {
    const rank = x.shape.length;
    const norm = axes.map((a) => normAxis(a, rank));
    const shape: Dim[] = [];
    x.shape.forEach((d, i) => {
      if (!norm.includes(i)) shape.push(d);
      else if (keepdims) shape.push(1);
    });
    return this.#one(op, [x, this.ints(norm)], x.dtype, shape, { keepdims: int(keepdims ? 1 : 0) });
  }
  reduceSum(x: Value, axes: readonly number[], keepdims = false): Value {
    return this.#reduce("ReduceSum", x, axes, keepdims);
  }
  reduceMean(x: Value, axes: readonly number[], keepdims = false): Value {
    return this.#reduce("ReduceMean", x, axes, keepdims);
  }
  reduceMax(x: Value, axes: readonly number[], keepdims = false): Value {
    return this.#reduce("ReduceMax", x, axes, keepdims);
  }
  /** sum of all elements, shape [] */
  sumAll(x: Value): Value {
    return this.reduceSum(
      x,
      x.shape.map((_, i) => i),
      false,
    );
  }
  softmax(x: Value, axis = -1): Value {
    return this.#unary("Softmax", x, { axis: int(axis) });
  }
  logSoftmax(x: Value, axis = -1): Value {
    return this.#unary("LogSoftmax", x, { axis: int(axis) });
  }

  layerNorm(
    x: Value,
    scale: Value,
    bias: Value | undefined,
    opts: { axis?: number; epsilon?: number } = {},
  ): { y: Value; mean: Value; invStd: Value } {
    const axis = normAxis(opts.axis ?? -1, x.shape.length);
    const statShape = x.shape.map((d, i) => (i < axis ? d : 1));
    const [y, mean, invStd] = this.node(
      "LayerNormalization",
      [x, scale, bias],
      [
        { dtype: x.dtype, shape: x.shape },
        // onnx constrains the saved statistics to float32 (stash_type 1)
        { dtype: "float32", shape: statShape },
        { dtype: "float32", shape: statShape },
      ],
      { axis: int(axis), epsilon: float(opts.epsilon ?? 1e-5) },
    );
    return { y: y!, mean: mean!, invStd: invStd! };
  }

  // ---- indexing ----
  gather(data: Value, indices: Value, axis = 0): Value {
    const a = normAxis(axis, data.shape.length);
    const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
    return this.#one("Gather", [data, indices], data.dtype, shape, { axis: int(a) });
  }
  gatherElements(data: Value, indices: Value, axis: number): Value {
    return this.#one("GatherElements", [data, indices], data.dtype, indices.shape, {
      axis: int(normAxis(axis, data.shape.length)),
    });
  }
  scatterElements(data: Value, indices: Value, updates: Value, axis: number, reduction = "none"): Value {
    const attrs: Record<string, AttrValue> = { axis: int(normAxis(axis, data.shape.length)) };
    if (reduction !== "none") attrs.reduction = str(reduction);
    return this.#one("ScatterElements", [data, indices, updates], data.dtype, data.shape, attrs);
  }
  scatterND(data: Value, indices: Value, updates: Value, reduction = "none"): Value {
    const attrs: Record<string, AttrValue> = {};
    if (reduction !== "none") attrs.reduction = str(reduction);
    return this.#one("ScatterND", [data, indices, updates], data.dtype, data.shape, attrs);
  }
  gatherND(data: Value, indices: Value): Value {
    const k = indices.shape[indices.shape.length - 1];
    if (typeof k !== "number") throw new Error("gatherND: last dim of indices must be static");
    const shape = [...indices.shape.slice(0, -1), ...data.shape.slice(k)];
    return this.#one("GatherND", [data, indices], data.dtype, shape);
  }

  // ---- shape ops ----
  shape(x: Value): Value {
    return this.#one("Shape", [x], "int64", [x.shape.length]);
  }
  transpose(x: Value, perm: readonly number[]): Value {
    return this.#one(
      "Transpose",
      [x],
      x.dtype,
      perm.map((p) => x.shape[p]!),
      { perm: ints(perm) },
    );
  }
  /** ONNX Reshape semantics: 0 copies the input dim, -1 is inferred */
  reshape(x: Value, target: readonly number[] | Value, outShape?: readonly Dim[]): Value {
    if (!Array.isArray(target)) {
      if (!outShape) throw new Error("reshape with a runtime shape needs outShape");
      return this.#one("Reshape", [x, target as Value], x.dtype, outShape);
    }
    const t = target as readonly number[];
    const shape: Dim[] = t.map((d, i) => (d === 0 ? x.shape[i]! : d));
    const inferred = shape.indexOf(-1);
    if (inferred >= 0) {
      const total = numel(x.shape);
      const known = shape.filter((_, i) => i !== inferred);
      const knownN = numel(known);
      if (total !== undefined && knownN !== undefined) shape[inferred] = total / knownN;
      else {
        // symbolic: cancel matching dims, name the rest
        const rest = [...x.shape];
        for (const d of known) {
          const j = rest.indexOf(d);
          if (j >= 0) rest.splice(j, 1);
        }
        const restN = numel(rest);
        shape[inferred] = restN ?? `(${rest.join("*")})`;
      }
    }
    return this.#one("Reshape", [x, this.ints(t)], x.dtype, shape);
  }
  expand(x: Value, target: readonly number[] | Value, outShape?: readonly Dim[]): Value {
    if (!Array.isArray(target)) {
      if (!outShape) throw new Error("expand with a runtime shape needs outShape");
      return this.#one("Expand", [x, target as Value], x.dtype, outShape);
    }
    const t = target as readonly number[];
    return this.#one("Expand", [x, this.ints(t)], x.dtype, broadcastShapes(x.shape, t));
  }
  unsqueeze(x: Value, axes: readonly number[]): Value {
    const rank = x.shape.length + axes.length;
    const norm = axes.map((a) => normAxis(a, rank)).sort((a, b) => a - b);
    const shape: Dim[] = [];
    let j = 0;
    for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[j++]!);
    return this.#one("Unsqueeze", [x, this.ints(norm)], x.dtype, shape);
  }
  squeeze(x: Value, axes: readonly number[]): Value {
    const norm = axes.map((a) => normAxis(a, x.shape.length));
    return this.#one(
      "Squeeze",
      [x, this.ints(norm)],
      x.dtype,
      x.shape.filter((_, i) => !norm.includes(i)),
    );
  }
  concat(xs: readonly Value[], axis: number): Value {
    const first = xs[0];
    if (!first) throw new Error("concat of nothing");
    const a = normAxis(axis, first.shape.length);
    const shape = [...first.shape];
    shape[a] = dimSum(xs.map((x) => x.shape[a]!));
    return this.#one("Concat", [...xs], first.dtype, shape, { axis: int(a) });
  }
  /** static slice with step 1; ends may exceed the dim (clamped) */
  slice(x: Value, starts: readonly number[], ends: readonly number[], axes: readonly number[]): Value {
    const shape = [...x.shape];
    axes.forEach((ax, i) => {
      const a = normAxis(ax, x.shape.length);
      const d = x.shape[a]!;
      if (typeof d === "number") {
        const clamp = (v: number) => Math.max(0, Math.min(d, v < 0 ? v + d : v));
        shape[a] = Math.max(0, clamp(ends[i]!) - clamp(starts[i]!));
      } else shape[a] = `${d}[${starts[i]}:${ends[i]}]`;
    });
    return this.#one("Slice", [x, this.ints(starts), this.ints(ends), this.ints(axes)], x.dtype, shape);
  }
  split(x: Value, sizes: readonly number[], axis: number): Value[] {
    const a = normAxis(axis, x.shape.length);
    return this.node(
      "Split",
      [x, this.ints(sizes)],
      sizes.map((s) => ({ dtype: x.dtype, shape: x.shape.map((d, i) => (i === a ? s : d)) })),
      { axis: int(a) },
    );
  }
  /** constant zero padding; pads = [begin_0..begin_n, end_0..end_n] */
  pad(x: Value, pads: readonly number[]): Value {
    const r = x.shape.length;
    const shape = x.shape.map((d, i) => (typeof d === "number" ? d + pads[i]! + pads[i + r]! : `${d}+pad`));
    return this.#one("Pad", [x, this.ints(pads)], x.dtype, shape);
  }
  /** zeros with the run-time shape of `like` */
  zerosLike(like: Value): Value {
    if (!isFloat(like.dtype)) throw new Error("zerosLike: float values only");
    return this.#one("Expand", [this.scalar(0, like.dtype), this.shape(like)], like.dtype, like.shape);
  }
}

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, int32: 6, int64: 7, bool: 9, float64: 11 };
