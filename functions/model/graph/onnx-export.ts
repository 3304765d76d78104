/** Serialises a GraphBuilder graph to ONNX protobuf bytes (IR 8, opset 18) through onnx-proto. */
import onnxProto from "onnx-proto";
import {
  type Dim,
  type GraphBuilder,
  type GraphNode,
  MICROSOFT_DOMAIN,
  ONNX_DTYPE,
  type Value,
} from "./graph-builder.ts";

const { onnx } = onnxProto;

export const OPSET_VERSION = 18;
const IR_VERSION = 8;

function valueInfo(v: Value): onnxProto.onnx.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[v.dtype],
        shape: { dim: v.shape.map((d: Dim) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, a: GraphNode["attrs"][string]): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case "int":
      return { name, type: T.INT, i: a.value };
    case "float":
      return { name, type: T.FLOAT, f: a.value };
    case "ints":
      return { name, type: T.INTS, ints: [...a.value] };
    case "string":
      return { name, type: T.STRING, s: new TextEncoder().encode(a.value) };
    default: {
      const never: never = a;
      throw new Error(`unknown attribute ${JSON.stringify(never)}`);
    }
  }
}

/** nodes needed to compute `outputs`, in their original (topological) order */
export function liveNodes(b: GraphBuilder): GraphNode[] {
  const live = new Set<string>(b.outputs.map((o) => o.name));
  const keep: GraphNode[] = [];
  for (let i = b.nodes.length - 1; i >= 0; i--) {
    const n = b.nodes[i]!;
    if (!n.outputs.some((o) => live.has(o.name))) continue;
    keep.push(n);
    for (const x of n.inputs) if (x) live.add(x.name);
  }
  return keep.reverse();
}

export function toOnnxModel(b: GraphBuilder, graphName = "questa"): Uint8Array {
  const nodes = liveNodes(b);
  const used = new Set<string>(b.outputs.map((o) => o.name));
  for (const n of nodes) for (const x of n.inputs) if (x) used.add(x.name);
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "questa",
    opsetImport: [
      { domain: "", version: OPSET_VERSION },
      ...(nodes.some((n) => n.domain === MICROSOFT_DOMAIN) ? [{ domain: MICROSOFT_DOMAIN, version: 1 }] : []),
    ],
    graph: {
      name: graphName,
      node: nodes.map((n) => ({
        opType: n.op,
        ...(n.domain === undefined ? {} : { domain: n.domain }),
        input: n.inputs.map((x) => x?.name ?? ""),
        output: n.outputs.map((o) => o.name),
        attribute: Object.entries(n.attrs).map(([k, a]) => attribute(k, a)),
      })),
      // every declared input stays (callers feed them all), even when unused
      input: b.inputs.map(valueInfo),
      output: b.outputs.map(valueInfo),
      initializer: b.initializers
        .filter((i) => used.has(i.value.name))
        .map((i) => ({
          name: i.value.name,
          dataType: ONNX_DTYPE[i.value.dtype],
          dims: i.value.shape.map((d) => Number(d)),
          rawData: new Uint8Array(i.data.buffer, i.data.byteOffset, i.data.byteLength),
        })),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
