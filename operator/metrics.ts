import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The operator's Prometheus metrics, on a Registry of its own (no global default registry). */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly reconciles = new Counter({
    name: "questa_operator_reconcile_total",
    help: "reconciles of QuestATraining resources, by result (success, requeue, error)",
    labelNames: ["result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "questa_operator_reconcile_errors_total",
    help: "reconciles that failed with an error (retried with backoff)",
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: "questa_operator_reconcile_duration_seconds",
    help: "time spent in one reconcile",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: "questa_operator_queue_depth",
    help: "keys waiting in the work queue",
    registers: [this.registry],
  });
  readonly relists = new Counter({
    name: "questa_operator_watch_relists_total",
    help: "full lists by the informers: initial, after 410 Gone (expired) or after an error",
    labelNames: ["kind", "reason"] as const,
    registers: [this.registry],
  });
  readonly watchErrors = new Counter({
    name: "questa_operator_watch_errors_total",
    help: "watch or list failures, retried with backoff",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly leader = new Gauge({
    name: "questa_operator_leader",
    help: "1 while this replica holds the leader lease",
    registers: [this.registry],
  });
  readonly rolloutReplicas = new Gauge({
    name: "questa_operator_rollout_replicas",
    help: "rollout workers the autoscaler chose, per run",
    labelNames: ["namespace", "run"] as const,
    registers: [this.registry],
  });

  async text(): Promise<string> {
    return await this.registry.metrics();
  }

  /** current value of a counter or gauge with the given labels (sum over label sets when omitted) */
  async value(name: string, labels: Record<string, string> = {}): Promise<number> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) return 0;
    const data = await metric.get();
    return data.values
      .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
      .filter((v) => !("metricName" in v) || v.metricName === undefined || v.metricName === name)
      .reduce((sum, v) => sum + v.value, 0);
  }
}
