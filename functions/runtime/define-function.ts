import type { Clock } from "./clock.ts";
import type { CloudEvent, EmittedEvent, EventDefinition } from "./event-definition.ts";
import type { Logger } from "./logger.ts";
import type { ObjectStore } from "./object-store.ts";
import type { Random } from "./random.ts";

/** Services with nothing in them: the default for functions that need only the standard deps. */
export type NoServices = Record<never, never>;

/**
 * Everything a handler may touch besides its input. Side effects enter only here, so a handler is
 * testable with in-memory adapters and a fixed clock and seed.
 */
export interface FunctionDeps<Services = NoServices> {
  /** where large payloads go (claim check); writes must use deterministic keys */
  store: ObjectStore;
  clock: Clock;
  /** seeded from the run seed and the input event id: the same input draws the same numbers */
  rng: Random;
  /** pino child carrying the run, function, event id and type */
  logger: Logger;
  /** the run name */
  run: string;
  /** aborted when the runner starts draining; long handlers may stop early and throw */
  signal: AbortSignal;
  /** what the caller passed when binding the function (model engine, config, ...) */
  services: Services;
}

/** any event definition; each one's data type is recovered by `DataOf` */
type AnyDefinition = EventDefinition<unknown>;

export type DataOf<Definition> = Definition extends EventDefinition<infer Data> ? Data : never;

/** The CloudEvent a handler receives: one of the consumed types, data already validated. */
export type ConsumedEvent<Consumes extends readonly AnyDefinition[]> = {
  [Index in keyof Consumes]: CloudEvent<DataOf<Consumes[Index]>>;
}[number];

export type HandlerResult = readonly EmittedEvent<unknown>[];

export interface FunctionSpec<Consumes extends readonly AnyDefinition[], Services> {
  /** lowercase kebab-case; names the consumer group, the event source and the metrics label */
  name: string;
  consumes: Consumes;
  emits: readonly AnyDefinition[];
  /**
   * Pure apart from `deps`: returns the events to emit (possibly none). Throw `RetryableError` for
   * transient trouble, `DeadLetterError`/`InputError` for input that can never succeed; anything
   * else is retried up to the attempt limit. Must be idempotent: a message may be delivered again.
   */
  handle(
    event: ConsumedEvent<Consumes>,
    deps: FunctionDeps<Services>,
  ): Promise<HandlerResult> | HandlerResult;
}

export interface FunctionDefinition<
  Consumes extends readonly AnyDefinition[] = readonly AnyDefinition[],
  Services = NoServices,
> extends FunctionSpec<Consumes, Services> {
  /** consumed definitions by CloudEvents type */
  readonly consumesByType: ReadonlyMap<string, AnyDefinition>;
  /** emitted definitions by CloudEvents type */
  readonly emitsByType: ReadonlyMap<string, AnyDefinition>;
}

const functionNamePattern = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * Declares a function. Extra typed deps come from annotating the handler's `deps` parameter:
 * `handle: async (event, deps: FunctionDeps<{ engine: Engine }>) => ...`; the runner then requires
 * `services: { engine }` when the function is bound.
 */
export function defineFunction<const Consumes extends readonly AnyDefinition[], Services = NoServices>(
  spec: FunctionSpec<Consumes, Services>,
): FunctionDefinition<Consumes, Services> {
  if (!functionNamePattern.test(spec.name)) {
    throw new Error(`function name ${JSON.stringify(spec.name)} must be lowercase kebab-case (a-z, 0-9, -)`);
  }
  if (spec.consumes.length === 0)
    throw new Error(`function ${spec.name}: consumes must list at least one event`);
  return {
    ...spec,
    consumesByType: byType(spec.name, "consumes", spec.consumes),
    emitsByType: byType(spec.name, "emits", spec.emits),
  };
}

function byType(
  name: string,
  field: string,
  definitions: readonly AnyDefinition[],
): Map<string, AnyDefinition> {
  const map = new Map<string, AnyDefinition>();
  for (const definition of definitions) {
    if (map.has(definition.type))
      throw new Error(`function ${name}: ${field} lists ${definition.type} twice`);
    map.set(definition.type, definition);
  }
  return map;
}

/** Narrows a consumed event to one definition's type. */
export function isEvent<Data>(
  event: CloudEvent<unknown>,
  definition: EventDefinition<Data>,
): event is CloudEvent<Data> {
  return event.type === definition.type;
}

/** Builds an event to emit, typed by its definition. */
export function emit<Data>(
  definition: EventDefinition<Data>,
  data: NoInfer<Data>,
  key: string,
  id?: string,
): EmittedEvent<Data> {
  return id === undefined ? { definition, data, key } : { definition, data, key, id };
}
