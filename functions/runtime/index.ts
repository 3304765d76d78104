// The function runtime: handler contract, buses, object stores, CloudEvents, delivery, metrics.

export { fsyncDirectory, writeFileAtomic } from "./atomic-file.ts";
export type {
  Bus,
  BusMessage,
  Consumer,
  ConsumerOptions,
  Headers,
  MessageHandler,
  OutgoingMessage,
  TopicSpec,
} from "./bus.ts";
export type { Clock, Sleep } from "./clock.ts";
export { ManualClock, realSleep, systemClock } from "./clock.ts";
export type { CloudEventEnvelope, ParseResult } from "./cloudevents.ts";
export {
  CloudEventEnvelopeSchema,
  fromBinaryMessage,
  parseBinaryMessage,
  parseStructured,
  QuestaCloudEventSchema,
  toBinaryMessage,
  toStructured,
} from "./cloudevents.ts";
export type { DeadLetterRecord } from "./dead-letter.ts";
export {
  DeadLetter,
  DeadLetterReason,
  DeadLetterRecordSchema,
  deadLetterRecord,
  decodeValue,
  encodeValue,
} from "./dead-letter.ts";
export type {
  ConsumedEvent,
  DataOf,
  FunctionDefinition,
  FunctionDeps,
  FunctionSpec,
  HandlerResult,
  NoServices,
} from "./define-function.ts";
export { defineFunction, emit, isEvent } from "./define-function.ts";
export type { InputIssue } from "./errors.ts";
export {
  actionFor,
  DeadLetterError,
  ErrorAction,
  errorMessage,
  formatInputIssue,
  InputError,
  isUnavailable,
  RetryableError,
  UnavailableError,
} from "./errors.ts";
export type { CloudEvent, EmittedEvent, EventDefinition } from "./event-definition.ts";
export { defineEvent } from "./event-definition.ts";
export { FsObjectStore, reservedKeyPrefix } from "./fs-object-store.ts";
export type { HealthServer, HealthServerOptions } from "./health-server.ts";
export { startHealthServer } from "./health-server.ts";
export type { CapturedLog, Logger } from "./logger.ts";
export { capturingLogger, createLogger, silentLogger } from "./logger.ts";
export type { LocalBusOptions, MemoryBusOptions } from "./memory-bus.ts";
export {
  eventLogPath,
  listEventLogTopics,
  MemoryBus,
  readEventLogFile,
  topicNameProblem,
} from "./memory-bus.ts";
export { MemoryObjectStore } from "./memory-object-store.ts";
export type { RunnerMetrics } from "./metrics.ts";
export { createRunnerMetrics } from "./metrics.ts";
export { assertObjectKey, keySegment, objectKeyProblem } from "./object-key.ts";
export type { ObjectInfo, ObjectStore, PutOptions, PutResult } from "./object-store.ts";
export { murmur2, partitionForKey } from "./partitioner.ts";
export type { Random } from "./random.ts";
export { seededRandom } from "./random.ts";
export type { RetryPolicy } from "./retry.ts";
export { backoffDelay, defaultRetryPolicy, RetryPolicySchema } from "./retry.ts";
export type { RunnerOptions } from "./runner.ts";
export { bindFunction, deterministicEventId, FunctionRunner, PublishFailedError } from "./runner.ts";
export type { ServeOptions } from "./serve.ts";
export { serveFunction } from "./serve.ts";
export { sha256Hex } from "./sha256.ts";
