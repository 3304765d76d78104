/**
 * Reference points for benchmarks: the FLOPs a model's graphs do, and the MatMul throughput
 * onnxruntime reaches on this machine right now (the practical ceiling for the engine's numbers).
 */
import { type ModelConfig, modelDims } from "./config.ts";
import { GraphBuilder } from "./graph/graph-builder.ts";
import { toOnnxModel } from "./graph/onnx-export.ts";
import { type BackendOptions, GraphSession } from "./ort-backend.ts";

/** floating-point operations of one forward pass over `batch` sequences of `length` tokens (full T x T attention) */
export function forwardFlops(c: ModelConfig, batch: number, length: number): number {
  const d = modelDims(c);
  const hd = d.headDim;
  const upOut = c.activation === "swiglu" ? 2 * d.mlpWidth : d.mlpWidth;
  const perTokenMacs =
    c.layers *
      (c.width * (c.heads + 2 * d.kvHeads) * hd +
        c.heads * hd * c.width +
        c.width * upOut +
        d.mlpWidth * c.width) +
    c.layers * 2 * length * c.heads * hd +
    c.width * c.vocabSize;
  return 2 * perTokenMacs * batch * length;
}

/** forward + backward (about twice the forward) of one train step */
export function trainStepFlops(c: ModelConfig, batch: number, length: number): number {
  return 3 * forwardFlops(c, batch, length);
}

/** median FLOP/s of a square float32 MatMul of size `n` in onnxruntime with these options */
export async function matmulThroughput(
  opts: BackendOptions & { n?: number; repeats?: number } = {},
): Promise<number> {
  const n = opts.n ?? 1024;
  const b = new GraphBuilder("float32");
  const x = b.input("a", "float32", [n, n]);
  const y = b.input("b", "float32", [n, n]);
  b.output(b.matmul(x, y), "c");
  const session = await GraphSession.create(toOnnxModel(b), opts);
  try {
    const data = new Float32Array(n * n).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
    const feeds = {
      a: { dtype: "float32" as const, data, dims: [n, n] },
      b: { dtype: "float32" as const, data, dims: [n, n] },
    };
    await session.run(feeds);
    const rates: number[] = [];
    for (let i = 0; i < (opts.repeats ?? 5); i++) {
      const t0 = performance.now();
      await session.run(feeds);
      rates.push((2 * n ** 3) / ((performance.now() - t0) / 1000));
    }
    rates.sort((p, q) => p - q);
    return rates[rates.length >> 1]!;
  } finally {
    await session.release();
  }
}
