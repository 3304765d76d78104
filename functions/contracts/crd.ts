import { z } from "zod";
import {
  GROUP,
  KIND,
  PLURAL,
  QuestATrainingSpecSchema,
  QuestATrainingStatusSchema,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from "./questatraining.ts";

type JsonSchema = { [key: string]: unknown };

const SAFE_INT = 9007199254740991;
// a run name is a DNS label (it becomes topic names, object keys and child object names)
const NAME_RULE = {
  rule: "self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
  message: "metadata.name must be a DNS label of at most 63 characters (lowercase letters, digits, -)",
};

/**
 * Turns zod's OpenAPI 3.0 output into a Kubernetes structural schema: no `additionalProperties:
 * false` next to `properties` (the API server prunes unknown fields instead), no regex on
 * date-times (`format` says it), no ±2^53 bounds zod adds to every integer.
 */
export function toStructural(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(toStructural);
  if (schema === null || typeof schema !== "object") return schema;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema as JsonSchema)) {
    if (key === "additionalProperties" && value === false) continue;
    if (key === "$schema") continue;
    if (key === "pattern" && (schema as JsonSchema).format === "date-time") continue;
    if ((key === "maximum" && value === SAFE_INT) || (key === "minimum" && value === -SAFE_INT)) continue;
    if (key === "default" || key === "enum" || key === "x-kubernetes-validations") {
      out[key] = value; // literal values, not schemas
      continue;
    }
    out[key] = toStructural(value);
  }
  return out;
}

/**
 * The API server checks each default against the CEL rules as written, without filling in the
 * nested defaults first, so an object's `default: {}` must be spelled out in full: the value the
 * zod schema produces for it.
 */
export function expandObjectDefaults(schema: JsonSchema, parsed: unknown): JsonSchema {
  const out: JsonSchema = { ...schema };
  const isObject = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === "object" && !Array.isArray(v);
  if (isObject(out.default) && isObject(parsed)) out.default = parsed;
  const properties = out.properties as Record<string, JsonSchema> | undefined;
  if (properties && isObject(parsed)) {
    out.properties = Object.fromEntries(
      Object.entries(properties).map(([key, child]) => [key, expandObjectDefaults(child, parsed[key])]),
    );
  }
  return out;
}

function openApi(schema: z.ZodType): JsonSchema {
  return toStructural(z.toJSONSchema(schema, { io: "input", target: "openapi-3.0" })) as JsonSchema;
}

/** The QuestATraining CustomResourceDefinition, generated from the zod schema. */
export function questaTrainingCrd(): JsonSchema {
  const defaults = QuestATrainingSpecSchema.parse({
    datasets: { train: [{ name: "defaults", synthetic: {} }] },
  });
  const spec = expandObjectDefaults(openApi(QuestATrainingSpecSchema), defaults);
  const status = openApi(QuestATrainingStatusSchema);
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: {
      name: `${PLURAL}.${GROUP}`,
      labels: { "app.kubernetes.io/name": "questa", "app.kubernetes.io/component": "crd" },
    },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: ["questa"],
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: "Phase", type: "string", jsonPath: ".status.phase", description: "lifecycle phase" },
            { name: "Stage", type: "integer", jsonPath: ".status.stage", description: "curriculum stage" },
            {
              name: "Step",
              type: "integer",
              jsonPath: ".status.step",
              description: "learner steps completed",
            },
            {
              name: "Pass@1",
              type: "number",
              format: "float",
              jsonPath: ".status.passAt1",
              description: "mean pass@1 of the latest evaluation",
            },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "a QuestA reinforcement-learning run: hint-augmented RL of an LLM on math",
              required: ["spec"],
              properties: {
                apiVersion: {
                  type: "string",
                  description: "APIVersion of this representation of the object",
                },
                kind: { type: "string", description: "Kind of this object" },
                metadata: { type: "object" },
                spec,
                status,
              },
              "x-kubernetes-validations": [NAME_RULE],
            },
          },
        },
      ],
    },
  };
}
