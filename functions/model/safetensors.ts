/** The safetensors format (8-byte LE header length, JSON header, raw little-endian data). */
import { z } from "zod";

export interface NamedTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

const HeaderEntrySchema = z.object({
  dtype: z.literal("F32"),
  shape: z.array(z.number().int().nonnegative()),
  data_offsets: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]),
});

export function encodeSafetensors(
  tensors: Readonly<Record<string, NamedTensor>>,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name]!;
    const expected = t.shape.reduce((a, d) => a * d, 1);
    if (expected !== t.data.length)
      throw new Error(`tensor ${name}: shape ${t.shape} does not match ${t.data.length} values`);
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
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
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

export function decodeSafetensors(bytes: Uint8Array): {
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
} {
  if (bytes.length < 8) throw new Error("safetensors: file shorter than its 8-byte header length");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) throw new Error("safetensors: header length exceeds the file");
  const raw: unknown = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  if (typeof raw !== "object" || raw === null) throw new Error("safetensors: header is not an object");
  const dataStart = 8 + headerLength;
  const tensors: Record<string, NamedTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(raw)) {
    if (name === "__metadata__") {
      metadata = z.record(z.string(), z.string()).parse(entry);
      continue;
    }
    const e = HeaderEntrySchema.parse(entry);
    const [begin, end] = e.data_offsets;
    if (dataStart + end > bytes.length || end < begin || (end - begin) % 4 !== 0) {
      throw new Error(`safetensors: tensor ${name} lies outside the file`);
    }
    // copy: the source may be unaligned for Float32Array
    const data = new Float32Array((end - begin) / 4);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    if (data.length !== e.shape.reduce((a, d) => a * d, 1))
      throw new Error(`safetensors: tensor ${name} size mismatch`);
    tensors[name] = { shape: e.shape, data };
  }
  return { tensors, metadata };
}
