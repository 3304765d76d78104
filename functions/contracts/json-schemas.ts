import { z } from "zod";
import type { EventDefinition } from "../runtime/event-definition.ts";
import { QuestATrainingSchema } from "./questatraining.ts";
import { TorchLearnerReplySchema, TorchLearnerRequestSchema } from "./torch-learner-protocol.ts";

type JsonSchema = Record<string, unknown>;
const SCHEMA_BASE = "https://questa.dev/schemas";

/** JSON Schema (draft 2020-12) of a structured-mode CloudEvent carrying the event's data. */
export function eventJsonSchema(definition: EventDefinition): JsonSchema {
  const data = z.toJSONSchema(definition.data, { io: "output", unrepresentable: "any" }) as JsonSchema;
  delete data.$schema;
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    $id: `${SCHEMA_BASE}/${definition.type}.json`,
    title: definition.type,
    description: definition.description,
    type: "object",
    required: ["specversion", "id", "source", "type", "subject", "time", "data"],
    properties: {
      specversion: { const: "1.0", description: "CloudEvents version" },
      id: { type: "string", minLength: 1, description: "event id; deterministic, so consumers can dedupe" },
      source: { type: "string", minLength: 1, description: "producing function, /questa/<run>/<function>" },
      type: { const: definition.type, description: "versioned event type" },
      subject: { type: "string", minLength: 1, description: "run name" },
      time: { type: "string", format: "date-time", description: "when the event was produced" },
      datacontenttype: { const: "application/json", description: "data is JSON" },
      partitionkey: { type: "string", description: "partition key (CloudEvents partitioning extension)" },
      data,
    },
  };
}

/** JSON Schema of a QuestATraining file, for editors and CI validation outside questa. */
export function questaTrainingJsonSchema(): JsonSchema {
  const schema = z.toJSONSchema(QuestATrainingSchema, { io: "input" }) as JsonSchema;
  return { ...schema, $id: `${SCHEMA_BASE}/questatraining.json`, title: "QuestATraining" };
}

/**
 * JSON Schemas of the torch learner's protocol (functions/contracts/torch-learner-protocol.ts): the
 * lines its Python side reads (`request`), which it validates them against, and those it writes.
 */
export function torchLearnerProtocolJsonSchemas(): { request: JsonSchema; reply: JsonSchema } {
  const of = (schema: z.ZodType, name: string, title: string): JsonSchema => ({
    ...(z.toJSONSchema(schema, { io: "input" }) as JsonSchema),
    $id: `${SCHEMA_BASE}/torch-learner.${name}.json`,
    title,
  });
  return {
    request: of(TorchLearnerRequestSchema, "request", "torch learner request"),
    reply: of(TorchLearnerReplySchema, "reply", "torch learner reply"),
  };
}
