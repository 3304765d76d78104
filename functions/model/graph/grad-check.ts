/**
 * Float64 gradient checking: analytic gradients from autodiff versus central finite differences,
 * both computed by onnxruntime on the same generated graph.
 */
import { GraphSession, type HostTensor } from "../ort-backend.ts";
import type { Rng } from "../rng.ts";
import { gradients } from "./autodiff.ts";
import { GraphBuilder, type Value } from "./graph-builder.ts";
import { toOnnxModel } from "./onnx-export.ts";

export interface GradCheckInput {
  readonly name: string;
  readonly tensor: HostTensor;
  /** differentiate with respect to this input (float64 only) */
  readonly differentiable: boolean;
}

export interface GradCheckResult {
  /** worst relative error over the differentiable inputs */
  readonly maxRelativeError: number;
  readonly perInput: Record<string, number>;
}

export interface GradCheckOptions {
  /** finite-difference step */
  readonly h?: number;
  /** coordinates probed per input (all if the input is smaller) */
  readonly samplesPerInput?: number;
  readonly rng: Rng;
}

/**
 * `build` receives the builder and the declared inputs and returns a scalar loss. Relative error per
 * input is ||analytic - numeric|| / max(||analytic||, ||numeric||, 1e-12) over the probed coordinates.
 */
export async function gradCheck(
  inputs: readonly GradCheckInput[],
  build: (b: GraphBuilder, values: Record<string, Value>) => Value,
  opts: GradCheckOptions,
): Promise<GradCheckResult> {
  const b = new GraphBuilder("float64");
  const values: Record<string, Value> = {};
  for (const i of inputs) values[i.name] = b.input(i.name, i.tensor.dtype, i.tensor.dims);
  const loss = build(b, values);
  if (loss.shape.length !== 0) throw new Error("gradCheck: build must return a scalar loss");
  b.output(loss, "loss");
  const diffInputs = inputs.filter((i) => i.differentiable);
  const grads = gradients(
    b,
    loss,
    diffInputs.map((i) => values[i.name]!),
  );
  grads.forEach((g, k) => {
    b.output(g, `grad_${diffInputs[k]!.name}`);
  });
  const feeds: Record<string, HostTensor> = {};
  for (const i of inputs) feeds[i.name] = i.tensor;
  return checkGraphGradients(
    toOnnxModel(b),
    feeds,
    diffInputs.map((i) => ({ input: i.name, gradient: `grad_${i.name}` })),
    "loss",
    opts,
  );
}

/**
 * Checks gradient outputs of an already built float64 graph against central differences of its scalar
 * `lossOutput`, perturbing each named input.
 */
export async function checkGraphGradients(
  model: Uint8Array,
  feeds: Readonly<Record<string, HostTensor>>,
  pairs: readonly { input: string; gradient: string }[],
  lossOutput: string,
  opts: GradCheckOptions,
): Promise<GradCheckResult> {
  const h = opts.h ?? 1e-6;
  const samples = opts.samplesPerInput ?? 24;
  const session = await GraphSession.create(model, { threads: 1 });
  try {
    const base = await session.run(feeds);
    const perInput: Record<string, number> = {};
    for (const { input, gradient } of pairs) {
      const tensor = feeds[input]!;
      const analytic = base[gradient]!.data as Float64Array;
      const data = tensor.data as Float64Array;
      const coords = pickCoords(data.length, samples, opts.rng);
      let diff2 = 0;
      let a2 = 0;
      let n2 = 0;
      for (const c of coords) {
        const perturbed = Float64Array.from(data);
        perturbed[c] = data[c]! + h;
        const plus = await session.run({ ...feeds, [input]: { ...tensor, data: perturbed } });
        perturbed[c] = data[c]! - h;
        const minus = await session.run({ ...feeds, [input]: { ...tensor, data: perturbed } });
        const numeric =
          ((plus[lossOutput]!.data as Float64Array)[0]! - (minus[lossOutput]!.data as Float64Array)[0]!) /
          (2 * h);
        const a = analytic[c]!;
        diff2 += (a - numeric) ** 2;
        a2 += a * a;
        n2 += numeric * numeric;
      }
      perInput[input] = Math.sqrt(diff2) / Math.max(Math.sqrt(a2), Math.sqrt(n2), 1e-12);
    }
    return { maxRelativeError: Math.max(0, ...Object.values(perInput)), perInput };
  } finally {
    await session.release();
  }
}

function pickCoords(n: number, k: number, rng: Rng): number[] {
  if (n <= k) return Array.from({ length: n }, (_, i) => i);
  const set = new Set<number>();
  while (set.size < k) set.add(Math.floor(rng.next() * n));
  return [...set];
}

/** a float64 tensor of standard normal-ish values (sum of uniforms), scaled */
export function randomTensor(rng: Rng, dims: readonly number[], scale = 1, offset = 0): HostTensor {
  const n = dims.reduce((a, d) => a * d, 1);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) data[i] = offset + scale * (rng.next() + rng.next() + rng.next() - 1.5) * 2;
  return { dtype: "float64", data, dims };
}
