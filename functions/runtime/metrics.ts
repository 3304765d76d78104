import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The runner's Prometheus metrics, on a registry of its own (tests create many runners). */
export interface RunnerMetrics {
  registry: Registry;
  processed: Counter<"function" | "type">;
  failed: Counter<"function" | "type" | "code">;
  retried: Counter<"function" | "type">;
  deadLettered: Counter<"function" | "reason">;
  skipped: Counter<"function" | "type">;
  emitted: Counter<"function" | "type">;
  handlerSeconds: Histogram<"function" | "type">;
  busySeconds: Counter<"function">;
  lag: Gauge<"function" | "group">;
}

export function createRunnerMetrics(options: {
  registry?: Registry;
  functionName: string;
  group: string;
  /** read when Prometheus scrapes */
  lag: () => Promise<number>;
}): RunnerMetrics {
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const lagFor = options.lag;
  const labels = { function: options.functionName, group: options.group };
  return {
    registry,
    processed: new Counter({
      name: "questa_function_events_processed_total",
      help: "input events handled successfully, their outputs published and their offsets committed",
      labelNames: ["function", "type"],
      registers,
    }),
    failed: new Counter({
      name: "questa_function_handler_failures_total",
      help: "handler attempts that threw, by error code",
      labelNames: ["function", "type", "code"],
      registers,
    }),
    retried: new Counter({
      name: "questa_function_retries_total",
      help: "handler attempts retried after a retryable failure",
      labelNames: ["function", "type"],
      registers,
    }),
    deadLettered: new Counter({
      name: "questa_function_events_dead_lettered_total",
      help: "input messages parked on the dead-letter topic, by reason",
      labelNames: ["function", "reason"],
      registers,
    }),
    skipped: new Counter({
      name: "questa_function_events_skipped_total",
      help: "input events of a type the function does not consume (committed, not handled)",
      labelNames: ["function", "type"],
      registers,
    }),
    emitted: new Counter({
      name: "questa_function_events_emitted_total",
      help: "events published by the function",
      labelNames: ["function", "type"],
      registers,
    }),
    handlerSeconds: new Histogram({
      name: "questa_function_handler_duration_seconds",
      help: "time from delivery to commit-ready for successfully handled events",
      labelNames: ["function", "type"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
      registers,
    }),
    busySeconds: new Counter({
      name: "questa_function_busy_seconds_total",
      help: "wall time with at least one event in the function's handler (concurrent handlers count once)",
      labelNames: ["function"],
      registers,
    }),
    lag: new Gauge({
      name: "questa_function_consumer_lag",
      help: "messages on the consumed topics the consumer group has not committed",
      labelNames: ["function", "group"],
      registers,
      async collect() {
        this.set(labels, await lagFor());
      },
    }),
  };
}
