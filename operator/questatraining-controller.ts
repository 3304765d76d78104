import type { Logger } from "pino";
import {
  GROUP,
  type KafkaSpec,
  KIND,
  type OwnedNames,
  PLURAL,
  type QuestATrainingSpec,
  type QuestATrainingStatus,
  QuestATrainingStatusSchema,
  VERSION,
} from "../functions/contracts/questatraining.ts";
import { derivedTopicPrefix, isOwnObjectRoot, operatorGroup } from "../functions/contracts/run-names.ts";
import { validateSpec } from "../functions/contracts/validate.ts";
import type { Bus } from "../functions/runtime/bus.ts";
import type { Clock } from "../functions/runtime/clock.ts";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";
import type { ArtifactAccess, ArtifactLocation } from "./artifacts.ts";
import {
  type AutoscaleState,
  DEFAULT_LAG_PER_REPLICA,
  DEFAULT_SCALE_DOWN_AFTER_MS,
  decideRolloutReplicas,
} from "./autoscale.ts";
import { BackgroundCalls, type CallOutcome } from "./background-calls.ts";
import { clusterPolicyIssues } from "./cluster-policy.ts";
import { Informer, objectKey } from "./informer.ts";
import { isConflict, type KubeApi, type KubeObject, type ResourceKind } from "./kube-api.ts";
import type { OperatorMetrics } from "./metrics.ts";
import { buildConfigMap, configHash, renderTrainingConfig } from "./resources/config-map.ts";
import {
  consumerGroup,
  DELETE_ARTIFACTS_ANNOTATION,
  derivedRunNames,
  engineNameIssues,
  FIELD_MANAGER,
  FINALIZER,
  FUNCTIONS,
  learnerJobName,
  legacyRunNames,
  MANAGED_SELECTOR,
  RUN_LABEL,
  type RunNames,
  type RunRef,
  runRef,
  workloadName,
} from "./resources/names.ts";
import {
  buildLearnerPeersPolicy,
  buildNetworkPolicy,
  type NetworkPolicyOptions,
} from "./resources/network-policy.ts";
import { runTopic, runTopics } from "./resources/topics.ts";
import {
  buildLearnerJob,
  buildLearnerService,
  buildTrainJob,
  learnerJobAction,
  learnerJobFailure,
} from "./resources/torch-learner.ts";
import { buildVllmDeployment, buildVllmNetworkPolicy, buildVllmService } from "./resources/vllm-servers.ts";
import { buildWorkload, type Replicas } from "./resources/workloads.ts";
import { RunEventTracker } from "./run-events.ts";
import { emptyProgress, progressFromStatus, type RunProgress } from "./run-progress.ts";
import { type ConditionNote, deriveStatus, Reason } from "./run-status.ts";
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
export const NETWORK_POLICY: ResourceKind = {
  group: "networking.k8s.io",
  version: "v1",
  kind: "NetworkPolicy",
  plural: "networkpolicies",
  namespaced: true,
};

export const JOB: ResourceKind = {
  group: "batch",
  version: "v1",
  kind: "Job",
  plural: "jobs",
  namespaced: true,
};
export const SERVICE: ResourceKind = {
  group: "",
  version: "v1",
  kind: "Service",
  plural: "services",
  namespaced: true,
};
/** Kubeflow Trainer v2's TrainJob: served only where Trainer is installed */
export const TRAIN_JOB: ResourceKind = {
  group: "trainer.kubeflow.org",
  version: "v1alpha1",
  kind: "TrainJob",
  plural: "trainjobs",
  namespaced: true,
};
/** JobSet, what Trainer expands a TrainJob into: Trainer does not work without it */
export const JOB_SET: ResourceKind = {
  group: "jobset.x-k8s.io",
  version: "v1alpha2",
  kind: "JobSet",
  plural: "jobsets",
  namespaced: true,
};
/** how long the answer to "is Kubeflow Trainer installed?" is trusted */
const TRAINER_DISCOVERY_TTL_MS = 60_000;

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

/** The operator will not connect to a run's Kafka (it would have to weaken the spec's TLS or SASL). */
export interface KafkaRefusal {
  refused: string;
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
  /** image prefixes a spec's `image` must start with; empty or omitted: any image */
  allowedImages?: readonly string[];
  /** time budget of one call to a run's Kafka or object store; default 30 s */
  externalCallTimeoutMs?: number;
  /** how long after deletion the finalizer keeps trying to clean up before it lets the run go; default 15 min */
  cleanupTimeoutMs?: number;
  /** create a NetworkPolicy per run admitting only metrics scrapes */
  networkPolicy?: NetworkPolicyOptions | undefined;
}

export interface ControllerDeps {
  api: KubeApi;
  kafkaFor: (kafka: KafkaSpec) => RunKafka | KafkaRefusal;
  /** where the operator may delete a run's objects (annotation questa.dev/delete-artifacts), or why not */
  artifactsFor?: (location: ArtifactLocation) => ArtifactAccess;
  clock: Clock;
  metrics: OperatorMetrics;
  log: Logger;
}

/** Logical topics whose events fold into the status. */
const RESULT_TOPICS = ["status", "checkpoints", "evaluations"] as const;

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** What deleting a run removes, and what it keeps and why. */
interface CleanupPlan {
  kafka: RunKafka | undefined;
  topics: string[];
  artifacts: { where: string; root: string; access: Extract<ArtifactAccess, { store: unknown }> }[];
  kept: string[];
}

interface CleanupResult {
  topics: number;
  objects: number;
}

/**
 * Reconciles QuestATraining resources into topics, a config map and one Deployment per function,
 * and folds the run's events into `.status`. Reconcile is idempotent: it computes the whole desired
 * state and applies it, so running it twice changes nothing.
 *
 * Tenancy: every external name (topics, consumer groups, object keys) derives from the run's
 * namespace and name and is recorded in `status.owned` before anything is created under it; the
 * finalizer deletes only recorded names that are the run's own. Calls to the run's Kafka and object
 * store run off the workers (BackgroundCalls) with time budgets, so a run whose endpoints hang holds
 * up only itself. Objects the run does not control are never overwritten (a Conflict condition).
 */
export class QuestATrainingController {
  readonly #deps: ControllerDeps;
  readonly #options: ControllerOptions;
  readonly #queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 60_000 });
  readonly #trainings: Informer;
  readonly #deployments: Informer;
  readonly #configMaps: Informer;
  /** the torch learner's Indexed Jobs: their failure fails the run */
  readonly #jobs: Informer;
  readonly #events: RunEventTracker;
  readonly #calls: BackgroundCalls;
  readonly #autoscale = new Map<string, AutoscaleState>();
  readonly #topicsEnsured = new Set<string>();
  #trainer: { at: number; installed: boolean } | undefined;
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
    this.#jobs = new Informer({
      ...common,
      ...informerHooks(JOB),
      kind: JOB,
      labelSelector: MANAGED_SELECTOR,
      onChange: enqueueOwner,
    });
    this.#events = new RunEventTracker(
      (key) => this.#queue.add(key),
      (key, error) =>
        deps.log.warn({ err: error, run: key }, "run event consumer stopped; restarting on next reconcile"),
    );
    this.#calls = new BackgroundCalls({
      onSettled: (key) => this.#queue.add(key),
      now: () => deps.clock.now(),
    });
  }

  get queueDepth(): number {
    return this.#queue.depth;
  }

  /** calls to runs' Kafka and object stores still running (some may have outlived their budget) */
  get externalCallsRunning(): number {
    return this.#calls.running;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await Promise.all([this.#deployments.start(), this.#configMaps.start(), this.#jobs.start()]);
    await this.#trainings.start();
    const workers = this.#options.workers ?? 2;
    this.#workers = Array.from({ length: workers }, () => this.#work());
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#queue.shutDown();
    await Promise.all([
      this.#trainings.stop(),
      this.#deployments.stop(),
      this.#configMaps.stop(),
      this.#jobs.stop(),
    ]);
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

  get #callTimeoutMs(): number {
    return this.#options.externalCallTimeoutMs ?? 30_000;
  }

  /** Brings one run to its desired state; returns when to look at it again (ms), if needed. */
  async reconcile(key: string): Promise<number | undefined> {
    const cached = this.#trainings.get(key);
    if (!cached) {
      // deleted: owner references let Kubernetes' garbage collector remove what we created
      await this.#events.stop(key);
      this.#autoscale.delete(key);
      this.#calls.forgetRun(key);
      return undefined;
    }
    const run = runRef(cached);
    if (cached.metadata.deletionTimestamp) return await this.#finalize(key, cached, run);
    let training = cached;
    if (!(training.metadata.finalizers ?? []).includes(FINALIZER)) {
      training = await this.#deps.api.replace(QUESTA_TRAINING, {
        ...training,
        metadata: { ...training.metadata, finalizers: [...(training.metadata.finalizers ?? []), FINALIZER] },
      });
    }

    let previous = parsedStatus(training);
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
      // a run this version saw first is marked namespaced even before it has names: never legacy
      const owned = previous?.owned ?? (previous === undefined ? nothingOwned(run) : undefined);
      await this.#writeStatus(training, previous, result.status, result.transition, owned);
      return undefined;
    };
    const validated = validateSpec(training.spec);
    if (!validated.ok)
      return await reject(`spec is invalid: ${validated.issues.map(formatInputIssue).join("; ")}`);
    const spec = validated.value;
    const policy = clusterPolicyIssues(spec, { allowedImages: this.#options.allowedImages ?? [] });
    if (policy.length > 0) {
      return await reject(`spec is not allowed in this cluster: ${policy.map(formatInputIssue).join("; ")}`);
    }
    const nameIssues = engineNameIssues(run, spec);
    if (nameIssues.length > 0) {
      return await reject(`spec is invalid: ${nameIssues.map(formatInputIssue).join("; ")}`);
    }

    let names: RunNames;
    try {
      names = runNamesFor(run, spec, previous);
    } catch (error) {
      if (error instanceof InputError) return await reject(`spec is invalid: ${error.message}`);
      throw error;
    }
    // the names are on record before anything exists under them: deletion trusts only the record
    const owned = recordNames(previous?.owned, run, spec, names);
    if (!sameJson(previous?.owned, owned)) {
      await this.#deps.api.patchStatus(QUESTA_TRAINING, run.name, run.namespace, { owned });
      previous = { ...(previous ?? {}), owned };
    }

    let kafka: RunKafka | KafkaRefusal;
    try {
      kafka = this.#deps.kafkaFor(spec.kafka);
    } catch (error) {
      // e.g. no brokers in the spec and none configured for the operator: the user must fix the spec
      if (error instanceof InputError) return await reject(error.message);
      throw error;
    }
    const { progress, note: kafkaNote } = this.#kafkaSide(key, run, spec, names, kafka, previous, generation);
    const phaseOf = deriveStatus({
      generation,
      previous,
      suspend: spec.suspend,
      activeDeadlineSeconds: spec.activeDeadlineSeconds,
      progress,
      now,
    }).status.phase;
    const active = phaseOf === "Pending" || phaseOf === "Running";

    const replicas = this.#replicas(key, run, spec, names, kafka, active, now);
    const applied = await this.#applyObjects(run, spec, names, replicas, active);
    const conflict = applied.conflict;
    const derived = deriveStatus({
      generation,
      previous,
      suspend: spec.suspend,
      activeDeadlineSeconds: spec.activeDeadlineSeconds,
      progress,
      now,
      workloadFailure:
        applied.learnerFailure === undefined
          ? undefined
          : { reason: Reason.learnerFailed, message: applied.learnerFailure },
      blocked: conflict === undefined ? undefined : { reason: Reason.conflict, message: conflict },
      notes: [
        kafkaNote,
        {
          type: "Conflict",
          holds: conflict !== undefined,
          reason: conflict === undefined ? "NoConflict" : "ObjectNotOwned",
          message: conflict ?? "",
        },
      ],
    });
    await this.#writeStatus(training, previous, derived.status, derived.transition);

    const waits: number[] = [];
    if (derived.deadlineInMs !== undefined) waits.push(derived.deadlineInMs + 50);
    if (active) waits.push(this.#options.autoscaleIntervalMs ?? 15_000);
    // objects in the way are not watched (they are not ours): look again
    if (conflict !== undefined) waits.push(30_000);
    // a learner job being replaced: create the new one soon after the old one's pods are gone
    if (applied.waiting) waits.push(2_000);
    if (!kafkaNote.holds && !("refused" in kafka)) waits.push(10_000);
    return waits.length > 0 ? Math.min(...waits) : undefined;
  }

  /** topics and the event consumer, as background calls; the progress folded so far */
  #kafkaSide(
    key: string,
    run: RunRef,
    spec: QuestATrainingSpec,
    names: RunNames,
    kafka: RunKafka | KafkaRefusal,
    previous: QuestATrainingStatus | undefined,
    generation: number,
  ): { progress: RunProgress; note: ConditionNote } {
    const seeded = () => (previous ? progressFromStatus(previous) : emptyProgress());
    if ("refused" in kafka) {
      return {
        progress: seeded(),
        note: {
          type: "KafkaReady",
          holds: false,
          reason: "OperatorNotConnected",
          message: `${kafka.refused}; the functions create their topics themselves, but status progress and autoscaling need the operator's connection`,
        },
      };
    }
    const timeoutMs = this.#callTimeoutMs;
    const problems: string[] = [];
    let waiting = false;
    const topicsKey = `${run.uid}/${generation}/${names.topicPrefix}`;
    if (!this.#topicsEnsured.has(topicsKey)) {
      const outcome = this.#calls.take(
        key,
        `topics:${names.topicPrefix}`,
        () => kafka.topics.ensureTopics(runTopics(names.topicPrefix, spec.kafka)),
        { timeoutMs },
      );
      if (outcome.state === "done") this.#topicsEnsured.add(topicsKey);
      else if (outcome.state === "failed") problems.push(`creating topics: ${errorText(outcome.error)}`);
      else waiting = true;
    }
    if (!this.#events.tracking(key) || this.#calls.has(key, "events")) {
      const outcome: CallOutcome<RunProgress> = this.#calls.take(
        key,
        "events",
        () =>
          this.#events.ensure(key, {
            bus: kafka.bus,
            topics: RESULT_TOPICS.map((topic) => runTopic(names.topicPrefix, topic)),
            groupId: operatorGroup(names.topicPrefix),
            seed: seeded(),
          }),
        { timeoutMs },
      );
      if (outcome.state === "failed") {
        this.#deps.log.warn(
          { err: outcome.error, run: key },
          "cannot consume the run's events yet; status keeps its last progress",
        );
        problems.push(`consuming the run's events: ${errorText(outcome.error)}`);
      } else if (outcome.state === "pending") waiting = true;
    }
    const progress = this.#events.progress(key) ?? seeded();
    const note: ConditionNote =
      problems.length > 0
        ? { type: "KafkaReady", holds: false, reason: "KafkaUnavailable", message: problems.join("; ") }
        : waiting
          ? {
              type: "KafkaReady",
              holds: false,
              reason: "Connecting",
              message: "creating topics and joining the run's events",
            }
          : { type: "KafkaReady", holds: true, reason: "Connected", message: "" };
    return { progress, note };
  }

  #replicas(
    key: string,
    run: RunRef,
    spec: QuestATrainingSpec,
    names: RunNames,
    kafka: RunKafka | KafkaRefusal,
    active: boolean,
    now: number,
  ): Replicas {
    if (!active) {
      this.#autoscale.delete(key);
      this.#deps.metrics.rolloutReplicas.set({ namespace: run.namespace, run: run.name }, 0);
      return { augment: 0, rollout: 0, learn: 0, evaluate: 0 };
    }
    const deployment = this.#deployments.get(`${run.namespace}/${workloadName(run, "rollout")}`);
    const current =
      (deployment?.spec as { replicas?: number } | undefined)?.replicas ?? spec.rollout.replicas.min;
    let rollout = Math.min(spec.rollout.replicas.max, Math.max(spec.rollout.replicas.min, current));
    if (!("refused" in kafka)) {
      // sampled in the background: this pass uses the lag the previous pass asked for
      const outcome = this.#calls.take(
        key,
        "lag",
        () =>
          kafka.lag.lag(consumerGroup(names.topicPrefix, "rollout"), [
            runTopic(names.topicPrefix, "questions"),
          ]),
        { timeoutMs: this.#callTimeoutMs, notify: false },
      );
      if (outcome.state === "done") {
        const decision = decideRolloutReplicas({
          lag: outcome.value,
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
      } else if (outcome.state === "failed") {
        this.#deps.log.warn(
          { err: outcome.error, run: key },
          "cannot read rollout lag; keeping the current replica count",
        );
      }
    }
    this.#deps.metrics.rolloutReplicas.set({ namespace: run.namespace, run: run.name }, rollout);
    return { augment: 1, rollout, learn: 1, evaluate: 1 };
  }

  /** whether Kubeflow Trainer (TrainJob) and JobSet are served, asked of discovery once a minute */
  async #trainerInstalled(): Promise<boolean> {
    const now = this.#deps.clock.now();
    if (this.#trainer && now - this.#trainer.at < TRAINER_DISCOVERY_TTL_MS) return this.#trainer.installed;
    const [trainJobs, jobSets] = await Promise.all([
      this.#deps.api.served(TRAIN_JOB),
      this.#deps.api.served(JOB_SET),
    ]);
    this.#trainer = { at: now, installed: trainJobs && jobSets };
    return this.#trainer.installed;
  }

  /**
   * How the torch learner runs: as the kind it already runs as (an Indexed Job stays one when
   * Trainer is installed later), else as a TrainJob where Trainer and JobSet are served, else as
   * an Indexed Job with a headless Service.
   */
  async #torchLauncher(run: RunRef): Promise<"trainjob" | "job"> {
    const job = this.#jobs.get(`${run.namespace}/${learnerJobName(run)}`);
    if (job && controlledBy(job, run)) return "job";
    return (await this.#trainerInstalled()) ? "trainjob" : "job";
  }

  /**
   * Applies the run's objects. Returns why not when one of them exists and is not the run's; the
   * learner job's failure; and whether a learner job is being replaced (look again soon).
   */
  async #applyObjects(
    run: RunRef,
    spec: QuestATrainingSpec,
    names: RunNames,
    replicas: Replicas,
    active: boolean,
  ): Promise<{ conflict?: string; learnerFailure?: string; waiting?: boolean }> {
    const hash = configHash(renderTrainingConfig(run, spec));
    const brokers =
      spec.kafka.brokers.length > 0 ? spec.kafka.brokers : [...(this.#options.defaultKafkaBrokers ?? [])];
    const effective: QuestATrainingSpec = { ...spec, kafka: { ...spec.kafka, brokers } };
    const options = { defaultImage: this.#options.defaultImage, configHash: hash, names };
    // a learner job is suspended in place (a Job's pod template is immutable: any other change replaces it)
    const jobOptions = {
      ...options,
      configHash: configHash(renderTrainingConfig(run, { ...spec, suspend: false })),
    };
    const torch = spec.learner.engine === "torch";
    const desired: [ResourceKind, KubeObject][] = [[CONFIG_MAP, buildConfigMap(run, spec)]];
    // what an engine the run no longer uses left behind: scaled to zero (or, jobs, deleted) when there
    const retired: [ResourceKind, KubeObject][] = [];
    const learnerJobKinds: ResourceKind[] = [];
    for (const fn of FUNCTIONS) {
      const deployment: [ResourceKind, KubeObject] = [
        DEPLOYMENT,
        buildWorkload(run, effective, fn, replicas[fn], options),
      ];
      if (fn === "learn" && torch) retired.push([DEPLOYMENT, buildWorkload(run, effective, fn, 0, options)]);
      else desired.push(deployment);
    }
    if (torch) {
      if ((await this.#torchLauncher(run)) === "trainjob") {
        desired.push([TRAIN_JOB, buildTrainJob(run, effective, active, jobOptions)]);
      } else {
        desired.push(
          [JOB, buildLearnerJob(run, effective, active, jobOptions)],
          [SERVICE, buildLearnerService(run)],
        );
      }
      if (this.#options.networkPolicy) {
        desired.push([NETWORK_POLICY, buildLearnerPeersPolicy(run)]);
      }
    } else {
      learnerJobKinds.push(JOB);
      if (await this.#trainerInstalled()) learnerJobKinds.push(TRAIN_JOB);
    }
    if (spec.rollout.engine === "vllm") {
      desired.push(
        [DEPLOYMENT, buildVllmDeployment(run, effective, active ? spec.rollout.vllm.replicas : 0, options)],
        [SERVICE, buildVllmService(run)],
        [NETWORK_POLICY, buildVllmNetworkPolicy(run)],
      );
    } else {
      retired.push([DEPLOYMENT, buildVllmDeployment(run, effective, 0, options)]);
    }
    if (this.#options.networkPolicy) {
      desired.push([NETWORK_POLICY, buildNetworkPolicy(run, this.#options.networkPolicy)]);
    }
    const informers = new Map<ResourceKind, Informer>([
      [DEPLOYMENT, this.#deployments],
      [CONFIG_MAP, this.#configMaps],
      [JOB, this.#jobs],
    ]);
    const lookup = async (kind: ResourceKind, name: string) =>
      informers.get(kind)?.get(`${run.namespace}/${name}`) ??
      (await this.#deps.api.get(kind, name, run.namespace));
    // every object is checked before any is written: a foreign config map must not get our pods
    const existing = await Promise.all(desired.map(([kind, object]) => lookup(kind, object.metadata.name)));
    const foreign = desired.flatMap(([kind, object], i) => {
      const found = existing[i];
      if (!found || controlledBy(found, run)) return [];
      const controller = found.metadata.ownerReferences?.find((o) => o.controller);
      const owner = controller
        ? `controlled by ${controller.kind} ${controller.name}`
        : "controlled by nothing";
      return [`${kind.kind} ${object.metadata.name} exists and is ${owner}`];
    });
    if (foreign.length > 0) {
      return {
        conflict: `${foreign.join("; ")}: it is left untouched; delete or rename it, or rename the run`,
      };
    }
    const ours = async (kind: ResourceKind, name: string) => {
      const found = await lookup(kind, name);
      return found && controlledBy(found, run) ? found : undefined;
    };
    // a torch learner job of an earlier spec (learner.engine was torch): gone before the onnx learner starts
    let oldLearnerJob = false;
    for (const kind of learnerJobKinds) {
      const found = await ours(kind, learnerJobName(run));
      if (!found) continue;
      oldLearnerJob = true;
      if (!found.metadata.deletionTimestamp) await this.#deleteLearnerJob(kind, found);
    }
    const retiredFound = await Promise.all(retired.map(([kind, object]) => ours(kind, object.metadata.name)));
    // an onnx learner of an earlier spec still has pods: the torch learner waits (suspended) for them to go
    const oldLearnerPods = retired.some(
      ([, object], i) =>
        object.metadata.name === workloadName(run, "learn") &&
        ((retiredFound[i]?.status as { replicas?: number } | undefined)?.replicas ?? 0) > 0,
    );
    let learnerFailure: string | undefined;
    let waiting = oldLearnerJob || oldLearnerPods;
    const write = async (kind: ResourceKind, object: KubeObject, found: KubeObject | undefined) => {
      if (!found) {
        // create, never apply: an object someone creates meanwhile makes this fail (409), not ours
        await this.#deps.api.create(kind, object);
        return;
      }
      // the uid pins the object we checked: one deleted and re-created meanwhile is a conflict
      await this.#deps.api.apply(
        kind,
        {
          ...object,
          metadata: { ...object.metadata, ...(found.metadata.uid ? { uid: found.metadata.uid } : {}) },
        },
        FIELD_MANAGER,
      );
    };
    await Promise.all([
      ...desired.map(async ([kind, object], i) => {
        const found = existing[i];
        if (kind === JOB || kind === TRAIN_JOB) {
          if (found) learnerFailure = learnerJobFailure(found);
          const held = oldLearnerPods ? withSuspend(object) : object;
          const action = learnerJobAction(found, held);
          if (action === "leave") return;
          if (action === "wait" || action === "replace") {
            waiting = true;
            if (action === "replace" && found) await this.#deleteLearnerJob(kind, found);
            return;
          }
          await write(kind, held, found);
          return;
        }
        if (kind === DEPLOYMENT && object.metadata.name === workloadName(run, "learn") && oldLearnerJob) {
          await write(kind, withReplicas(object, 0), found);
          return;
        }
        await write(kind, object, found);
      }),
      ...retired.map(async ([kind, object], i) => {
        const found = retiredFound[i];
        if (found && ((found.spec as { replicas?: number } | undefined)?.replicas ?? 0) > 0) {
          await write(kind, object, found);
        }
      }),
    ]);
    return {
      ...(learnerFailure === undefined ? {} : { learnerFailure }),
      ...(waiting ? { waiting } : {}),
    };
  }

  /** deletes the run's learner job and, first, its pods (Foreground), only the one that was checked */
  async #deleteLearnerJob(kind: ResourceKind, found: KubeObject): Promise<void> {
    await this.#deps.api.delete(kind, found.metadata.name, found.metadata.namespace, {
      uid: found.metadata.uid,
      propagation: "Foreground",
    });
  }

  async #writeStatus(
    training: KubeObject,
    previous: QuestATrainingStatus | undefined,
    status: QuestATrainingStatus,
    transition: ReturnType<typeof deriveStatus>["transition"],
    owned: OwnedNames | undefined = previous?.owned,
  ): Promise<void> {
    const full = owned ? { ...status, owned } : status;
    const normalized = QuestATrainingStatusSchema.safeParse(full);
    if (!sameJson(previous, normalized.success ? normalized.data : full)) {
      await this.#deps.api.patchStatus(
        QUESTA_TRAINING,
        training.metadata.name,
        training.metadata.namespace ?? "default",
        full,
      );
    }
    if (transition) {
      this.#deps.log.info(
        { run: objectKey(training), from: transition.from, to: transition.to, reason: transition.reason },
        "phase changed",
      );
      await this.#recordEvent(
        training,
        transition.type,
        transition.reason,
        `${transition.from ?? "New"} -> ${transition.to}: ${transition.message}`,
      );
    }
  }

  async #recordEvent(
    training: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    await this.#deps.api
      .recordEvent({
        involved: training,
        type,
        reason,
        message,
        component: FIELD_MANAGER,
        instance: this.#options.instance,
      })
      .catch((error: unknown) => this.#deps.log.warn({ err: error }, "cannot record event"));
  }

  /**
   * The finalizer: deletes the run's recorded topics (and, when annotated, its recorded objects)
   * in the background, waits for that at most `cleanupTimeoutMs` after the deletion began (a
   * `CleanedUp` condition says what it waits for), then lets the run go either way.
   */
  async #finalize(key: string, training: KubeObject, run: RunRef): Promise<number | undefined> {
    if (!(training.metadata.finalizers ?? []).includes(FINALIZER)) return undefined;
    await this.#events.stop(key);
    this.#autoscale.delete(key);
    const previous = parsedStatus(training);
    const plan = this.#cleanupPlan(training, run, previous);
    const now = this.#deps.clock.now();
    const deletedAt = Date.parse(training.metadata.deletionTimestamp ?? "") || now;
    const giveUpAt = deletedAt + (this.#options.cleanupTimeoutMs ?? 15 * 60_000);
    let result: CleanupResult | undefined;
    let abandoned: string | undefined;
    if (plan.topics.length > 0 || plan.artifacts.length > 0) {
      if (now >= giveUpAt) {
        abandoned = "the clean-up did not finish within its time budget";
      } else {
        const outcome = this.#calls.take(key, "cleanup", (signal) => runCleanup(plan, signal), {
          timeoutMs: giveUpAt - now,
        });
        if (outcome.state === "done") result = outcome.value;
        else {
          const waitingFor = [
            ...(plan.topics.length > 0 ? [`${plan.topics.length} Kafka topics`] : []),
            ...plan.artifacts.map((a) => `objects under ${a.where}`),
          ].join(" and ");
          const why =
            outcome.state === "failed"
              ? `the last attempt failed: ${errorText(outcome.error)}`
              : "in progress";
          await this.#noteCleanup(
            training,
            previous,
            outcome.state === "failed" ? "CleanupFailing" : "CleanupPending",
            `deleting ${waitingFor} (${why}); the finalizer gives up at ${new Date(giveUpAt).toISOString()}`,
          );
          if (now + 1000 >= giveUpAt) return Math.max(0, giveUpAt - now) + 50;
          return outcome.state === "failed"
            ? Math.min(5_000, giveUpAt - now)
            : Math.min(30_000, giveUpAt - now);
        }
      }
    }
    this.#calls.forgetRun(key);
    for (const id of this.#topicsEnsured) if (id.startsWith(`${run.uid}/`)) this.#topicsEnsured.delete(id);
    await this.#deps.api.replace(QUESTA_TRAINING, {
      ...training,
      metadata: {
        ...training.metadata,
        finalizers: (training.metadata.finalizers ?? []).filter((f) => f !== FINALIZER),
      },
    });
    const kept = plan.kept.length > 0 ? `; kept: ${plan.kept.join("; ")}` : "";
    if (abandoned !== undefined) {
      const left = [...plan.topics, ...plan.artifacts.map((a) => `objects under ${a.where}`)].join(", ");
      await this.#recordEvent(
        training,
        "Warning",
        "CleanupAbandoned",
        `${abandoned}; removed the finalizer; left behind: ${left}${kept}`,
      );
    } else {
      await this.#recordEvent(
        training,
        plan.kept.length > 0 ? "Warning" : "Normal",
        plan.kept.length > 0 ? "CleanedUpPartly" : "CleanedUp",
        `deleted ${result?.topics ?? 0} Kafka topics and ${result?.objects ?? 0} objects; removed the finalizer${kept}`,
      );
    }
    return undefined;
  }

  /** the status condition that says what the finalizer waits for */
  async #noteCleanup(
    training: KubeObject,
    previous: QuestATrainingStatus | undefined,
    reason: string,
    message: string,
  ): Promise<void> {
    const others = (previous?.conditions ?? []).filter((c) => c.type !== "CleanedUp");
    const before = previous?.conditions?.find((c) => c.type === "CleanedUp");
    if (before?.reason === reason && before.message === message) return;
    const condition = {
      type: "CleanedUp",
      status: "False" as const,
      reason,
      message,
      observedGeneration: training.metadata.generation ?? 0,
      lastTransitionTime:
        before?.status === "False"
          ? before.lastTransitionTime
          : new Date(this.#deps.clock.now()).toISOString(),
    };
    await this.#deps.api.patchStatus(
      QUESTA_TRAINING,
      training.metadata.name,
      training.metadata.namespace ?? "default",
      { conditions: [...others, condition] },
    );
  }

  /** what the finalizer deletes: recorded names that are the run's own, where the operator may */
  #cleanupPlan(training: KubeObject, run: RunRef, previous: QuestATrainingStatus | undefined): CleanupPlan {
    const plan: CleanupPlan = { kafka: undefined, topics: [], artifacts: [], kept: [] };
    const validated = validateSpec(training.spec);
    const spec = validated.ok ? validated.value : undefined;
    let owned = previous?.owned;
    if (!owned && previous?.phase !== undefined && spec) {
      // reconciled before names were recorded: what that version created, recorded now
      owned = recordNames(undefined, run, spec, legacyRunNames(run, spec));
    }
    if (!owned) return plan; // never reconciled: nothing was created
    const ownPrefix = `${derivedTopicPrefix(run)}.`;
    const ownTopics = owned.topics.filter((t) => t.startsWith(ownPrefix));
    const foreignTopics = owned.topics.filter((t) => !t.startsWith(ownPrefix));
    if (foreignTopics.length > 0) {
      plan.kept.push(
        `topics outside ${derivedTopicPrefix(run)} (${foreignTopics.join(", ")}): a legacy topic prefix; delete them by hand if they are this run's`,
      );
    }
    if (ownTopics.length > 0) {
      let kafka: RunKafka | KafkaRefusal | undefined;
      try {
        kafka = spec ? this.#deps.kafkaFor(spec.kafka) : undefined;
      } catch (error) {
        if (!(error instanceof InputError)) throw error;
        kafka = { refused: error.message };
      }
      if (kafka === undefined || "refused" in kafka) {
        plan.kept.push(
          `topics ${ownTopics.join(", ")}: ${kafka ? kafka.refused : "the spec is invalid, so its Kafka is unknown"}`,
        );
      } else {
        plan.kafka = kafka;
        plan.topics = ownTopics;
      }
    }
    if (training.metadata.annotations?.[DELETE_ARTIFACTS_ANNOTATION] === "true") {
      for (const location of owned.objectStores) {
        const where = `s3://${location.bucket}/${location.root}${location.endpoint ? ` at ${location.endpoint}` : ""}`;
        if (owned.layout !== "namespaced" || !isOwnObjectRoot(location.root, run)) {
          plan.kept.push(
            `objects under ${where}: a legacy layout without the namespace, which the operator does not delete`,
          );
          continue;
        }
        const access = this.#deps.artifactsFor?.({
          endpoint: location.endpoint,
          bucket: location.bucket,
          region: spec?.storage.region ?? "us-east-1",
          forcePathStyle: spec?.storage.forcePathStyle ?? location.endpoint !== undefined,
        }) ?? { refused: "the operator has no object-store access" };
        if ("refused" in access) plan.kept.push(`objects under ${where}: ${access.refused}`);
        else plan.artifacts.push({ where, root: location.root, access });
      }
    }
    return plan;
  }
}

async function runCleanup(plan: CleanupPlan, signal: AbortSignal): Promise<CleanupResult> {
  if (plan.kafka && plan.topics.length > 0) await plan.kafka.topics.deleteTopics(plan.topics);
  let objects = 0;
  for (const artifact of plan.artifacts) {
    signal.throwIfAborted();
    objects += await artifact.access.store.deleteUnder(artifact.root, signal);
  }
  return { topics: plan.topics.length, objects };
}

const nothingOwned = (run: RunRef): OwnedNames => ({
  layout: "namespaced",
  topicPrefix: derivedTopicPrefix(run),
  topics: [],
  objectStores: [],
});

function parsedStatus(training: KubeObject): QuestATrainingStatus | undefined {
  if (!training.status) return undefined;
  const parsed = QuestATrainingStatusSchema.safeParse(training.status);
  return parsed.success ? parsed.data : undefined;
}

/**
 * The run's names: as recorded for a legacy run (one the operator reconciled before names were
 * recorded: it has a status but no `owned`), else derived from its namespace and name. A spec
 * naming a topic prefix that is not the run's own is an InputError.
 */
function runNamesFor(
  run: RunRef,
  spec: QuestATrainingSpec,
  previous: QuestATrainingStatus | undefined,
): RunNames {
  const recorded = previous?.owned;
  const legacy = recorded ? recorded.layout === "legacy" : previous?.phase !== undefined;
  if (!legacy) return derivedRunNames(run, spec);
  const names = legacyRunNames(run, spec);
  // a legacy run keeps its recorded prefix; a new one must be the run's own like any other
  if (recorded && names.topicPrefix !== recorded.topicPrefix) {
    return { ...names, topicPrefix: derivedRunNames(run, spec).topicPrefix };
  }
  return names;
}

/** the record with the names in use added: topics, and the object-store location when there is one */
function recordNames(
  recorded: OwnedNames | undefined,
  run: RunRef,
  spec: QuestATrainingSpec,
  names: RunNames,
): OwnedNames {
  const topics = [...(recorded?.topics ?? [])];
  for (const topic of runTopics(names.topicPrefix, spec.kafka)) {
    if (!topics.includes(topic.name)) topics.push(topic.name);
  }
  const objectStores = [...(recorded?.objectStores ?? [])];
  if (spec.storage.bucket !== undefined) {
    const location = {
      ...(spec.storage.endpoint === undefined ? {} : { endpoint: spec.storage.endpoint }),
      bucket: spec.storage.bucket,
      root: `${names.storePrefix}${run.name}/`,
    };
    if (!objectStores.some((o) => sameJson(o, location))) objectStores.push(location);
  }
  return {
    layout: recorded?.layout ?? names.layout,
    topicPrefix: names.topicPrefix,
    // bounded like the schema: the oldest go first (they stay, unrecorded, rather than be deleted wrongly)
    topics: topics.slice(-64),
    objectStores: objectStores.slice(-16),
  };
}

/** the run controls the object (its controller owner reference carries the run's uid) */
function controlledBy(object: KubeObject, run: RunRef): boolean {
  return object.metadata.ownerReferences?.find((o) => o.controller)?.uid === run.uid;
}

const withReplicas = (object: KubeObject, replicas: number): KubeObject => ({
  ...object,
  spec: { ...(object.spec as Record<string, unknown>), replicas },
});

const withSuspend = (object: KubeObject): KubeObject => ({
  ...object,
  spec: { ...(object.spec as Record<string, unknown>), suspend: true },
});
