import type { z } from "zod";

/**
 * One kind of event: its CloudEvents `type` (versioned, e.g. `dev.questa.rollout.group.v1`), the
 * logical topic it travels on (the run's topic prefix is added when a function is bound to a bus)
 * and the zod schema of its `data`.
 */
export interface EventDefinition<Data = unknown> {
  type: string;
  /** logical topic name, e.g. `questions`; the bus topic is `<topicPrefix>.<topic>` */
  topic: string;
  data: z.ZodType<Data>;
  description: string;
}

export function defineEvent<Data>(definition: EventDefinition<Data>): EventDefinition<Data> {
  if (!/^dev\.questa\.[a-z.]+\.v\d+$/.test(definition.type)) {
    throw new Error(`event type ${definition.type} must look like dev.questa.<name>.v<N>`);
  }
  return definition;
}

/** The CloudEvents 1.0 context attributes questa sets on every event, plus the typed `data`. */
export interface CloudEvent<Data = unknown> {
  specversion: "1.0";
  id: string;
  /** the producing function, e.g. `/questa/<run>/rollout` */
  source: string;
  type: string;
  /** the run name */
  subject: string;
  /** RFC 3339 */
  time: string;
  datacontenttype: "application/json";
  /** CloudEvents extension attributes questa uses: partition key and run-scoped trace parent */
  partitionkey?: string;
  data: Data;
}

/** What a handler returns: an event to emit, before the runtime fills in id, source and time. */
export interface EmittedEvent<Data = unknown> {
  definition: EventDefinition<Data>;
  data: Data;
  /** partition key; events with the same key keep their order */
  key: string;
  /**
   * deterministic id so reprocessing the same input emits the same event (consumers dedupe on it);
   * defaults to a hash of the input event id, the type and the key
   */
  id?: string;
}

/**
 * A questa CloudEvent: the attributes every one of them shares (specversion, JSON data, the run as
 * subject, the key as partitionkey) filled in around what differs. `source` names the producer
 * within the run (a function's name), as `/questa/<run>/<source>`.
 */
export function cloudEvent<Data>(fields: {
  id: string;
  run: string;
  source: string;
  type: string;
  time: string;
  key: string;
  data: Data;
}): CloudEvent<Data> {
  return {
    specversion: "1.0",
    id: fields.id,
    source: `/questa/${fields.run}/${fields.source}`,
    type: fields.type,
    subject: fields.run,
    time: fields.time,
    datacontenttype: "application/json",
    partitionkey: fields.key,
    data: fields.data,
  };
}
