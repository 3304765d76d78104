/**
 * The only module that imports onnxruntime-node: sessions over our generated graphs, host tensors in
 * and out. Everything else in functions/model speaks `HostTensor`.
 */
import { availableParallelism } from "node:os";
import * as ort from "onnxruntime-node";
import { InputError } from "../runtime/errors.ts";

export type HostDType = "float32" | "float64" | "int64" | "bool" | "int32";
export type HostData = Float32Array | Float64Array | BigInt64Array | Uint8Array | Int32Array;

export interface HostTensor {
  readonly dtype: HostDType;
  readonly data: HostData;
  readonly dims: readonly number[];
}

export const ExecutionProvider = { cpu: "cpu", cuda: "cuda" } as const;
export type ExecutionProvider = (typeof ExecutionProvider)[keyof typeof ExecutionProvider];

export interface BackendOptions {
  executionProvider?: ExecutionProvider;
  /** intra-op threads; defaults to the number of cores */
  threads?: number;
  /** let idle intra-op threads spin (lower latency per run, burns CPU between runs) */
  spinning?: boolean;
  /** onnxruntime log severity (0 verbose .. 4 fatal); default 2 (warning) */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
}

export function defaultThreads(): number {
  return availableParallelism();
}

/** execution providers this onnxruntime-node build can use here */
export function availableExecutionProviders(): ExecutionProvider[] {
  const found: ExecutionProvider[] = [];
  for (const b of ort.listSupportedBackends()) {
    if (b.name === "cpu") found.push("cpu");
    if (b.name === "cuda" && b.bundled) found.push("cuda");
  }
  return found;
}

function sessionOptions(opts: BackendOptions): ort.InferenceSession.SessionOptions {
  const ep = opts.executionProvider ?? "cpu";
  const threads = opts.threads ?? defaultThreads();
  const spin = opts.spinning ?? false;
  return {
    executionProviders: [ep],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
    // onnxruntime's CPU arena keeps every peak buffer for the session's life: with a real vocabulary
    // the train graph's [batch, length, vocab] intermediates doubled the peak RSS (SmolLM2-135M, 8x256:
    // 18.2 GiB with the arena, 8.5 without) at no speed cost measurable here (bench/smollm2.bench.ts)
    enableCpuMemArena: false,
    enableMemPattern: false,
    logSeverityLevel: opts.logSeverity ?? 2,
    extra: { session: { intra_op: { allow_spinning: spin ? "1" : "0" } } },
  };
}

/** a one-node float32 Identity model, serialised by hand (this module stays free of the graph builder) */
const PROBE_MODEL = Uint8Array.from(
  Buffer.from(
    "CAgSBnF1ZXN0YTo7ChAKAXgSAXkiCElkZW50aXR5EgVwcm9iZVoPCgF4EgoKCAgBEgQKAggBYg8KAXkSCgoICAESBAoCCAFCBAoAEBI=",
    "base64",
  ),
);

/**
 * Fails with a clear InputError when `ep` cannot run here (CUDA asked for on a machine or an
 * onnxruntime-node build without it); starts a throwaway session to find out.
 */
export async function assertExecutionProvider(ep: ExecutionProvider): Promise<void> {
  if (ep === "cpu") return;
  // the probe's own failure is reported as our InputError; keep onnxruntime's log quiet about it
  const session = await GraphSession.create(PROBE_MODEL, {
    executionProvider: ep,
    threads: 1,
    logSeverity: 4,
  });
  await session.release();
}

const wrappers = new WeakMap<HostTensor, ort.Tensor>();

export class GraphSession {
  readonly #session: ort.InferenceSession;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];

  private constructor(session: ort.InferenceSession) {
    this.#session = session;
    this.inputNames = session.inputNames;
    this.outputNames = session.outputNames;
  }

  static async create(model: Uint8Array, opts: BackendOptions = {}): Promise<GraphSession> {
    const ep = opts.executionProvider ?? "cpu";
    if (ep === "cuda") {
      const cuda = ort.listSupportedBackends().find((b) => b.name === "cuda");
      if (!cuda) {
        throw new InputError("engine.cuda_unavailable", [
          {
            path: "executionProvider",
            message: "the CUDA execution provider is not available in this onnxruntime-node build",
            hint: 'use executionProvider "cpu", or install onnxruntime-node with CUDA binaries (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node --ignore-scripts=false) on a machine with an NVIDIA GPU',
          },
        ]);
      }
    }
    try {
      return new GraphSession(await ort.InferenceSession.create(model, sessionOptions(opts)));
    } catch (error) {
      if (ep === "cuda") {
        throw new InputError(
          "engine.cuda_unavailable",
          [
            {
              path: "executionProvider",
              message: `the CUDA execution provider failed to start: ${error instanceof Error ? error.message : String(error)}`,
              hint: 'check the NVIDIA driver and CUDA 12 / cuDNN 9 libraries, or use executionProvider "cpu"',
            },
          ],
          { cause: error },
        );
      }
      throw error;
    }
  }

  async run(feeds: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      // host tensors reused across runs (parameter views) keep their wrapper
      let wrapped = wrappers.get(t);
      if (!wrapped) {
        wrapped = new ort.Tensor(t.dtype, t.data, t.dims);
        wrappers.set(t, wrapped);
      }
      ortFeeds[name] = wrapped;
    }
    const results = await this.#session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const [name, t] of Object.entries(results)) {
      out[name] = { dtype: t.type as HostDType, data: t.data as HostData, dims: t.dims };
    }
    return out;
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}
