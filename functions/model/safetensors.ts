/**
 * The safetensors format (8-byte LE header length, JSON header, raw little-endian data) for the
 * float dtypes models ship in: F32, F16 and BF16 (and F64). Tensors are read into float32, the
 * engine's precision; writing converts float32 to the file's dtype with round-to-nearest-even,
 * exactly as PyTorch's `.to(dtype)` does.
 */
import { z } from "zod";

export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export const SafetensorsDType = { f32: "F32", f16: "F16", bf16: "BF16", f64: "F64" } as const;
export type SafetensorsDType = (typeof SafetensorsDType)[keyof typeof SafetensorsDType];

const BYTES: Record<SafetensorsDType, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** one tensor's header entry, with data offsets relative to the start of the file */
export interface TensorEntry {
  readonly name: string;
  /** the dtype as the header spells it (a dtype we cannot read is refused when read, not here) */
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
}

const HeaderEntrySchema = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

export class SafetensorsError extends Error {
  override readonly name = "SafetensorsError";
}

export function isSupportedDType(dtype: string): dtype is SafetensorsDType {
  return dtype in BYTES;
}

const numel = (shape: readonly number[]) => shape.reduce((a, d) => a * d, 1);

/** the header of a safetensors file, every entry checked to lie inside the file with a matching size */
export function readSafetensorsHeader(bytes: Uint8Array): SafetensorsHeader {
  if (bytes.length < 8) throw new SafetensorsError("file shorter than its 8-byte header length");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) throw new SafetensorsError("header length exceeds the file");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch {
    throw new SafetensorsError("header is not JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new SafetensorsError("header is not an object");
  }
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (name === "__metadata__") {
      const parsed = z.record(z.string(), z.string()).safeParse(entry);
      if (!parsed.success) throw new SafetensorsError("__metadata__ must map strings to strings");
      metadata = parsed.data;
      continue;
    }
    const parsed = HeaderEntrySchema.safeParse(entry);
    if (!parsed.success) throw new SafetensorsError(`tensor ${name}: malformed header entry`);
    const e = parsed.data;
    const [begin, end] = e.data_offsets;
    if (dataStart + end > bytes.length || end < begin) {
      throw new SafetensorsError(`tensor ${name} lies outside the file`);
    }
    const width = isSupportedDType(e.dtype) ? BYTES[e.dtype] : undefined;
    if (width !== undefined && end - begin !== numel(e.shape) * width) {
      throw new SafetensorsError(
        `tensor ${name}: ${end - begin} bytes do not hold shape [${e.shape}] of ${e.dtype}`,
      );
    }
    tensors.set(name, {
      name,
      dtype: e.dtype,
      shape: e.shape,
      begin: dataStart + begin,
      end: dataStart + end,
    });
  }
  return { tensors, metadata };
}

/** converts one tensor's bytes to float32 into `out` (whose length is the tensor's element count) */
export function readTensorInto(bytes: Uint8Array, entry: TensorEntry, out: Float32Array): void {
  const n = numel(entry.shape);
  if (out.length !== n)
    throw new SafetensorsError(`tensor ${entry.name}: ${n} values, buffer of ${out.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + entry.begin, entry.end - entry.begin);
  switch (entry.dtype) {
    case "F32":
      // byte copy: the source may be unaligned for a Float32Array view
      new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes.subarray(entry.begin, entry.end));
      return;
    case "BF16": {
      const bits = new Uint32Array(out.buffer, out.byteOffset, n);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return;
    }
    case "F16":
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return;
    default:
      throw new SafetensorsError(
        `tensor ${entry.name} has dtype ${entry.dtype}; supported: F32, F16, BF16, F64 (quantised weights need dequantising first)`,
      );
  }
}

export function readTensor(bytes: Uint8Array, entry: TensorEntry): Float32Array {
  const out = new Float32Array(numel(entry.shape));
  readTensorInto(bytes, entry, out);
  return out;
}

/** every tensor of a file as float32 */
export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
} {
  const header = readSafetensorsHeader(bytes);
  const tensors: Record<string, NamedTensor> = {};
  for (const entry of header.tensors.values()) {
    tensors[entry.name] = { shape: entry.shape, data: readTensor(bytes, entry) };
  }
  return { tensors, metadata: { ...header.metadata } };
}

/** a tensor to write: float32 values, or a function filling a float32 buffer (so large tensors are made one at a time) */
export interface TensorSource {
  readonly shape: readonly number[];
  readonly data: Float32Array | ((out: Float32Array) => void);
}

/** the size in bytes of a safetensors file holding these tensors in `dtype` (header excluded) */
export function tensorBytes(shape: readonly number[], dtype: SafetensorsDType): number {
  return numel(shape) * BYTES[dtype];
}

/** writes tensors (in the given order) converted from float32 to `dtype` */
export function encodeSafetensors(
  tensors: Readonly<Record<string, NamedTensor | TensorSource>>,
  metadata: Readonly<Record<string, string>> = {},
  dtype: SafetensorsDType = "F32",
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    if (t.data instanceof Float32Array && t.data.length !== numel(t.shape)) {
      throw new Error(`tensor ${name}: shape ${t.shape} does not match ${t.data.length} values`);
    }
    const size = tensorBytes(t.shape, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  // data starts 8-byte aligned
  while ((8 + json.length) % 8 !== 0) json += " ";
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const t = tensors[name]!;
    const n = numel(t.shape);
    let values: Float32Array;
    if (t.data instanceof Float32Array) values = t.data;
    else {
      values = new Float32Array(n);
      t.data(values);
    }
    writeConverted(values, out, at, dtype);
    at += n * BYTES[dtype];
  }
  return out;
}

function writeConverted(values: Float32Array, out: Uint8Array, at: number, dtype: SafetensorsDType): void {
  const n = values.length;
  if (dtype === "F32") {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), at);
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset + at, n * BYTES[dtype]);
  if (dtype === "F64") {
    for (let i = 0; i < n; i++) view.setFloat64(8 * i, values[i]!, true);
    return;
  }
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  if (dtype === "BF16")
    for (let i = 0; i < n; i++) view.setUint16(2 * i, floatBitsToBfloat16(bits[i]!), true);
  else for (let i = 0; i < n; i++) view.setUint16(2 * i, floatBitsToHalf(bits[i]!), true);
}

/** float32 bits -> bfloat16 bits, round to nearest even (NaN stays a quiet NaN), as PyTorch does */
export function floatBitsToBfloat16(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff;
  const roundingBias = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + roundingBias) >>> 16) & 0xffff;
}

/** float32 bits -> IEEE half bits, round to nearest even, overflow to infinity, subnormals kept */
export function floatBitsToHalf(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  // unbiased exponent e = exp - 127; half normal range is e in [-14, 15]
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00;
  if (e >= -14) {
    // normal: 10 mantissa bits, round the 13 dropped bits to nearest even (a carry may bump the exponent)
    let half = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half += 1;
    return sign | half;
  }
  if (e < -25) return sign; // below half the smallest subnormal: rounds to zero
  // subnormal: value = m * 2^-24 with m = round(full mantissa * 2^(e + 24 - 23))
  const full = mant | 0x800000;
  const shift = -e - 1; // 14 - (e + 15) + 13 + 1 ... bits dropped from the 24-bit significand
  const kept = full >>> shift;
  const dropped = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  let m = kept;
  if (dropped > halfway || (dropped === halfway && (kept & 1) === 1)) m += 1;
  return sign | m;
}

/** IEEE half bits -> float32 value */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
