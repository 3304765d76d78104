import type { Logger } from "pino";
import {
  API_VERSION,
  GROUP,
  type KafkaSpec,
  KIND,
  PLURAL,
  type QuestATrainingSpec,
  type QuestATrainingStatus,
  QuestATrainingStatusSchema,
  type StorageSpec,
  VERSION,
} from "../functions/contracts/questatraining.ts";
import { validateQuestATraining } from "../functions/contracts/validate.ts";
import type { Bus } from "../functions/runtime/bus.ts";
import type { Clock } from "../functions/runtime/clock.ts";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import type { ObjectStore } from "../functions/runtime/object-store.ts";
import {
  type AutoscaleState,
  DEFAULT_LAG_PER_REPLICA,
  DEFAULT_SCALE_DOWN_AFTER_MS,
  decideRolloutReplicas,
} from "./autoscale.ts";
import { Informer, objectKey } from "./informer.ts";
import { isConflict, type KubeApi, type KubeObject, type ResourceKind } from "./kube-api.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { buildConfigMap, configHash, renderTrainingConfig } from "./resources/config-map.ts";
import {
  consumerGroup,
  DELETE_ARTIFACTS_ANNOTATION,
  FIELD_MANAGER,
  FINALIZER,
  FUNCTIONS,
  MANAGED_SELECTOR,
  RUN_LABEL,
  type RunRef,
  runRef,
  workloadName,
} from "./resources/names.ts";
import { runTopic, runTopics, topicPrefixOf } from "./resources/topics.ts";
import { buildWorkload, type Replicas } from "./resources/workloads.ts";
import { RunEventTracker } from "./run-events.ts";
import { emptyProgress, progressFromStatus, type RunProgress } from "./run-progress.ts";
import { deriveStatus } from "./run-status.ts";
import type { TopicAdmin } from "./topic-admin.ts";
import { WorkQueue } from "./work-queue.ts";

export const QUESTA_TRAINING: ResourceKind = {
  group: GROUP,
  version: VERSION,
  kind: KIND,
  plural: PLURAL,
  namespaced: true,
};
export const DEPLOYMENT: ResourceKind = {
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
};
export const CONFIG_MAP: ResourceKind = {
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
};

/** Reads how many messages a consumer group has not processed yet on some topics. */
export interface ConsumerLagReader {
  lag(groupId: string, topics: readonly string[]): Promise<number>;
}

/** The Kafka side of a run, chosen by its `spec.kafka` (brokers, TLS, SASL). */
export interface RunKafka {
  topics: TopicAdmin;
  bus: Bus;
  lag: ConsumerLagReader;
}

export interface ControllerOptions {
  /** function image when a spec names none */
  defaultImage: string;
  /** brokers the functions use when a spec lists none (the operator's own Kafka) */
  defaultKafkaBrokers?: readonly string[];
  /** watch one namespace only; all namespaces when omitted */
  namespace?: string | undefined;
  /** reporting instance for Kubernetes Events (pod name) */
  instance: string;
  workers?: number;
  /** how often an active run's rollout lag is sampled */
  autoscaleIntervalMs?: number;
  lagPerReplica?: number;
  scaleDownAfterMs?: number;
  watchMaxBackoffMs?: number;
}

export interface ControllerDeps {
  api: KubeApi;
  kafkaFor: (kafka: KafkaSpec) => RunKafka;
  /** object store of a run's artifacts; only used when a run asks for them to be deleted with it */
  artifactsFor?: (storage: StorageSpec) => ObjectStore | undefined;
  clock: Clock;
  metrics: OperatorMetrics;
  log: Logger;
}

/** Logical topics whose events fold into the status. */
const RESULT_TOPICS = ["status", "checkpoints", "evaluations"] as const;

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Reconciles QuestATraining resources into topics, a config map and one Deployment per function,
 * and folds the run's events into `.status`. Reconcile is idempotent: it computes the whole desired
 * state and server-side-applies it, so running it twice changes nothing.
 */
export class QuestATrainingController {
  readonly #deps: ControllerDeps;
  readonly #options: ControllerOptions;
  readonly #queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 60_000 });
  readonly #trainings: Informer;
  readonly #deployments: Informer;
  readonly #configMaps: Informer;
  readonly #events: RunEventTracker;
  readonly #autoscale = new Map<string, AutoscaleState>();
  readonly #topicsEnsured = new Set<string>();
  #workers: Promise<void>[] = [];
  #running = false;

  constructor(deps: ControllerDeps, options: ControllerOptions) {
    this.#deps = deps;
    this.#options = options;
    const common = {
      api: deps.api,
      namespace: options.namespace,
      maxBackoffMs: options.watchMaxBackoffMs ?? 30_000,
    };
    const informerHooks = (kind: ResourceKind) => ({
      onRelist: (reason: string) => deps.metrics.relists.inc({ kind: kind.plural, reason }),
      onError: (error: unknown, retryInMs: number) => {
        deps.metrics.watchErrors.inc({ kind: kind.plural });
        deps.log.warn({ err: error, kind: kind.plural, retryInMs }, "watch failed; reconnecting");
      },
    });
    this.#trainings = new Informer({
      ...common,
      ...informerHooks(QUESTA_TRAINING),
      kind: QUESTA_TRAINING,
      onChange: (_type, object) => this.#queue.add(objectKey(object)),
    });
    // owned objects: a change (or deletion) by someone else brings the run back to its desired state
    const enqueueOwner = (_type: string, object: KubeObject) => {
      const run = object.metadata.labels?.[RUN_LABEL];
      if (run && object.metadata.namespace) this.#queue.add(`${object.metadata.namespace}/${run}`);
    };
    this.#deployments = new Informer({
      ...common,
      ...informerHooks(DEPLOYMENT),
      kind: DEPLOYMENT,
      labelSelector: MANAGED_SELECTOR,
      onChange: enqueueOwner,
    });
    this.#configMaps = new Informer({
      ...common,
      ...informerHooks(CONFIG_MAP),
      kind: CONFIG_MAP,
      labelSelector: MANAGED_SELECTOR,
      onChange: enqueueOwner,
    });
    this.#events = new RunEventTracker(
      (key) => this.#queue.add(key),
      (key, error) =>
        deps.log.warn({ err: error, run: key }, "run event consumer stopped; restarting on next reconcile"),
    );
  }

  get queueDepth(): number {
    return this.#queue.depth;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await Promise.all([this.#deployments.start(), this.#configMaps.start()]);
    await this.#trainings.start();
    const workers = this.#options.workers ?? 2;
    this.#workers = Array.from({ length: workers }, () => this.#work());
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#queue.shutDown();
    await Promise.all([this.#trainings.stop(), this.#deployments.stop(), this.#configMaps.stop()]);
    await Promise.all(this.#workers);
    await this.#events.stopAll();
  }

  async #work(): Promise<void> {
    for (;;) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      this.#deps.metrics.queueDepth.set(this.#queue.depth);
      const end = this.#deps.metrics.reconcileDuration.startTimer();
      try {
        const requeueAfterMs = await this.reconcile(key);
        this.#queue.forget(key);
        if (requeueAfterMs !== undefined) this.#queue.addAfter(key, requeueAfterMs);
        this.#deps.metrics.reconciles.inc({ result: "success" });
      } catch (error) {
        if (isConflict(error)) {
          // someone wrote the object since we read it: retry against the fresh version
          this.#deps.metrics.reconciles.inc({ result: "requeue" });
        } else {
          this.#deps.metrics.reconciles.inc({ result: "error" });
          this.#deps.metrics.reconcileErrors.inc();
          this.#deps.log.error({ err: error, run: key }, "reconcile failed; retrying with backoff");
        }
        if (this.#running) this.#queue.addRateLimited(key);
      } finally {
        end();
        this.#queue.done(key);
        this.#deps.metrics.queueDepth.set(this.#queue.depth);
      }
    }
  }

  /** Brings one run to its desired state; returns when to look at it again (ms), if needed. */
  async reconcile(key: string): Promise<number | undefined> {
    const cached = this.#trainings.get(key);
    if (!cached) {
      // deleted: owner references let Kubernetes' garbage collector remove what we created
      await this.#events.stop(key);
      this.#autoscale.delete(key);
      return undefined;
    }
    const run = runRef(cached);
    if (cached.metadata.deletionTimestamp) {
      await this.#finalize(key, cached, run);
      return undefined;
    }
    let training = cached;
    if (!(training.metadata.finalizers ?? []).includes(FINALIZER)) {
      training = await this.#deps.api.replace(QUESTA_TRAINING, {
        ...training,
        metadata: { ...training.metadata, finalizers: [...(training.metadata.finalizers ?? []), FINALIZER] },
      });
    }

    const validated = validateQuestATraining({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: training.metadata.name, namespace: training.metadata.namespace },
      spec: training.spec,
    });
    const previousStatus = QuestATrainingStatusSchema.safeParse(training.status ?? {});
    const previous: QuestATrainingStatus | undefined =
      training.status && previousStatus.success ? previousStatus.data : undefined;
    const now = this.#deps.clock.now();
    const generation = training.metadata.generation ?? 0;

    const reject = async (message: string) => {
      const result = deriveStatus({
        generation,
        previous,
        suspend: false,
        invalidSpec: message,
        progress: progressFromStatus(previous),
        now,
      });
      await this.#writeStatus(training, previous, result.status, result.transition);
      return undefined;
    };
    if (!validated.ok)
      return await reject(`spec is invalid: ${validated.issues.map(formatInputIssue).join("; ")}`);

    const spec = validated.value.spec;
    let kafka: RunKafka;
    try {
      kafka = this.#deps.kafkaFor(spec.kafka);
    } catch (error) {
      // e.g. no brokers in the spec and none configured for the operator: the user must fix the spec
      if (error instanceof InputError) return await reject(error.message);
      throw error;
    }
    const topicsKey = `${run.uid}/${generation}`;
    if (!this.#topicsEnsured.has(topicsKey)) {
      await kafka.topics.ensureTopics(runTopics(run, spec.kafka));
      this.#topicsEnsured.add(topicsKey);
    }
    const progress = await this.#progress(key, run, spec, kafka, previous);
    const derived = deriveStatus({
      generation,
      previous,
      suspend: spec.suspend,
      activeDeadlineSeconds: spec.activeDeadlineSeconds,
      progress,
      now,
    });
    const phase = derived.status.phase;
    const active = phase === "Pending" || phase === "Running";

    const replicas = await this.#replicas(key, run, spec, kafka, active, now);
    await this.#applyObjects(run, spec, replicas);
    await this.#writeStatus(training, previous, derived.status, derived.transition);

    const waits: number[] = [];
    if (derived.deadlineInMs !== undefined) waits.push(derived.deadlineInMs + 50);
    if (active) waits.push(this.#options.autoscaleIntervalMs ?? 15_000);
    return waits.length > 0 ? Math.min(...waits) : undefined;
  }

  async #progress(
    key: string,
    run: RunRef,
    spec: QuestATrainingSpec,
    kafka: RunKafka,
    previous: QuestATrainingStatus | undefined,
  ): Promise<RunProgress> {
    const topics = RESULT_TOPICS.map((topic) => runTopic(run, spec.kafka, topic));
    try {
      return await this.#events.ensure(key, {
        bus: kafka.bus,
        topics,
        groupId: `questa-operator.${topicPrefixOf(run, spec.kafka)}`,
        seed: progressFromStatus(previous),
      });
    } catch (error) {
      this.#deps.log.warn(
        { err: error, run: key },
        "cannot consume the run's events yet; status keeps its last progress",
      );
      return previous ? progressFromStatus(previous) : emptyProgress();
    }
  }

  async #replicas(
    key: string,
    run: RunRef,
    spec: QuestATrainingSpec,
    kafka: RunKafka,
    active: boolean,
    now: number,
  ): Promise<Replicas> {
    if (!active) {
      this.#autoscale.delete(key);
      this.#deps.metrics.rolloutReplicas.set({ namespace: run.namespace, run: run.name }, 0);
      return { augment: 0, rollout: 0, learn: 0, evaluate: 0 };
    }
    const deployment = this.#deployments.get(`${run.namespace}/${workloadName(run, "rollout")}`);
    const current =
      (deployment?.spec as { replicas?: number } | undefined)?.replicas ?? spec.rollout.replicas.min;
    const prefix = topicPrefixOf(run, spec.kafka);
    let rollout = Math.min(spec.rollout.replicas.max, Math.max(spec.rollout.replicas.min, current));
    try {
      const lag = await kafka.lag.lag(consumerGroup(prefix, "rollout"), [
        runTopic(run, spec.kafka, "questions"),
      ]);
      const decision = decideRolloutReplicas({
        lag,
        current,
        policy: {
          min: spec.rollout.replicas.min,
          max: spec.rollout.replicas.max,
          lagPerReplica: this.#options.lagPerReplica ?? DEFAULT_LAG_PER_REPLICA,
          scaleDownAfterMs: this.#options.scaleDownAfterMs ?? DEFAULT_SCALE_DOWN_AFTER_MS,
        },
        state: this.#autoscale.get(key) ?? {},
        now,
      });
      this.#autoscale.set(key, decision.state);
      rollout = decision.replicas;
    } catch (error) {
      this.#deps.log.warn(
        { err: error, run: key },
        "cannot read rollout lag; keeping the current replica count",
      );
    }
    this.#deps.metrics.rolloutReplicas.set({ namespace: run.namespace, run: run.name }, rollout);
    return { augment: 1, rollout, learn: 1, evaluate: 1 };
  }

  async #applyObjects(run: RunRef, spec: QuestATrainingSpec, replicas: Replicas): Promise<void> {
    const config = buildConfigMap(run, spec);
    await this.#deps.api.apply(CONFIG_MAP, config, FIELD_MANAGER);
    const hash = configHash(renderTrainingConfig(run, spec));
    const brokers =
      spec.kafka.brokers.length > 0 ? spec.kafka.brokers : [...(this.#options.defaultKafkaBrokers ?? [])];
    const effective: QuestATrainingSpec = { ...spec, kafka: { ...spec.kafka, brokers } };
    await Promise.all(
      FUNCTIONS.map((fn) =>
        this.#deps.api.apply(
          DEPLOYMENT,
          buildWorkload(run, effective, fn, replicas[fn], {
            defaultImage: this.#options.defaultImage,
            configHash: hash,
          }),
          FIELD_MANAGER,
        ),
      ),
    );
  }

  async #writeStatus(
    training: KubeObject,
    previous: QuestATrainingStatus | undefined,
    status: QuestATrainingStatus,
    transition: ReturnType<typeof deriveStatus>["transition"],
  ): Promise<void> {
    if (!sameJson(previous, status)) {
      await this.#deps.api.patchStatus(
        QUESTA_TRAINING,
        training.metadata.name,
        training.metadata.namespace ?? "default",
        status,
      );
    }
    if (transition) {
      this.#deps.log.info(
        { run: objectKey(training), from: transition.from, to: transition.to, reason: transition.reason },
        "phase changed",
      );
      await this.#deps.api
        .recordEvent({
          involved: training,
          type: transition.type,
          reason: transition.reason,
          message: `${transition.from ?? "New"} -> ${transition.to}: ${transition.message}`,
          component: FIELD_MANAGER,
          instance: this.#options.instance,
        })
        .catch((error: unknown) => this.#deps.log.warn({ err: error }, "cannot record event"));
    }
  }

  async #finalize(key: string, training: KubeObject, run: RunRef): Promise<void> {
    if (!(training.metadata.finalizers ?? []).includes(FINALIZER)) return;
    await this.#events.stop(key);
    this.#autoscale.delete(key);
    const validated = validateQuestATraining({
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: training.metadata.name, namespace: training.metadata.namespace },
      spec: training.spec,
    });
    if (validated.ok) {
      const spec = validated.value.spec;
      let kafka: RunKafka | undefined;
      try {
        kafka = this.#deps.kafkaFor(spec.kafka);
      } catch (error) {
        // no Kafka was ever reachable for this run, so it has no topics to delete
        if (!(error instanceof InputError)) throw error;
        this.#deps.log.warn(
          { err: error, run: key },
          "no Kafka connection for the run; skipping topic deletion",
        );
      }
      await kafka?.topics.deleteTopics(runTopics(run, spec.kafka).map((t) => t.name));
      if (training.metadata.annotations?.[DELETE_ARTIFACTS_ANNOTATION] === "true") {
        await this.#deleteArtifacts(run, spec.storage);
      }
    }
    for (const id of this.#topicsEnsured) if (id.startsWith(`${run.uid}/`)) this.#topicsEnsured.delete(id);
    await this.#deps.api.replace(QUESTA_TRAINING, {
      ...training,
      metadata: {
        ...training.metadata,
        finalizers: (training.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
      },
    });
    await this.#deps.api
      .recordEvent({
        involved: training,
        type: "Normal",
        reason: "CleanedUp",
        message: "deleted the run's Kafka topics; removed the finalizer",
        component: FIELD_MANAGER,
        instance: this.#options.instance,
      })
      .catch(() => undefined);
  }

  async #deleteArtifacts(run: RunRef, storage: StorageSpec): Promise<void> {
    const store = this.#deps.artifactsFor?.(storage);
    if (!store) {
      this.#deps.log.warn(
        { run: run.name },
        "artifact deletion asked for but the operator has no object store access",
      );
      return;
    }
    const prefix = `${storage.prefix}/${run.name}/`;
    for (const object of await store.list(prefix)) await store.delete(object.key);
  }
}
