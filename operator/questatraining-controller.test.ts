import { afterEach, describe, expect, it } from "vitest";
import { systemClock } from "../functions/runtime/clock.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";
import { type ArtifactAccess, type ArtifactLocation, objectStoreArtifacts } from "./artifacts.ts";
import type { KubeObject } from "./kube-api.ts";
import { MemoryKubeApi } from "./memory-kube-api.ts";
import { OperatorMetrics } from "./metrics.ts";
import {
  CONFIG_MAP,
  type ControllerOptions,
  DEPLOYMENT,
  JOB,
  type KafkaRefusal,
  NETWORK_POLICY,
  QUESTA_TRAINING,
  QuestATrainingController,
  type RunKafka,
  SERVICE,
  TRAIN_JOB,
} from "./questatraining-controller.ts";
import { MemoryTopicAdmin } from "./topic-admin.ts";

/** the run's topics, in the order runTopics lists them */
const LOGICAL = ["checkpoints", "evaluations", "questions", "rollouts", "status", "dead-letter"];

type Condition = { type: string; status: string; reason: string; message: string };
type Status = {
  phase?: string;
  conditions?: Condition[];
  owned?: { layout: string; topicPrefix: string; topics: string[]; objectStores: { root: string }[] };
};

/** An object store that never answers: every call waits until its signal aborts. */
class HangingArtifacts {
  pending = 0;
  aborted = 0;
  access(): ArtifactAccess {
    return {
      store: {
        deleteUnder: (_root, signal) => {
          this.pending++;
          return new Promise<number>((_resolve, reject) => {
            signal.addEventListener("abort", () => {
              this.pending--;
              this.aborted++;
              reject(signal.reason);
            });
          });
        },
      },
    };
  }
}

class Harness {
  readonly api: MemoryKubeApi;
  readonly topics = new MemoryTopicAdmin();
  readonly bus = new MemoryBus();
  readonly artifacts = new MemoryObjectStore();
  readonly controller: QuestATrainingController;
  kafka: (spec: { brokers: string[] }) => RunKafka | KafkaRefusal = () => ({
    bus: this.bus,
    topics: this.topics,
    lag: { lag: async () => 0 },
  });
  artifactsFor: (location: ArtifactLocation) => ArtifactAccess = () => ({
    store: objectStoreArtifacts(this.artifacts),
  });

  constructor(options: Partial<ControllerOptions> = {}, missingGroups: readonly string[] = []) {
    this.api = new MemoryKubeApi({ statusSubresource: [QUESTA_TRAINING], missingGroups });
    this.controller = new QuestATrainingController(
      {
        api: this.api,
        kafkaFor: (kafka) => this.kafka(kafka),
        artifactsFor: (location) => this.artifactsFor(location),
        clock: systemClock,
        metrics: new OperatorMetrics(),
        log: silentLogger(),
      },
      {
        defaultImage: "questa:test",
        defaultKafkaBrokers: ["kafka:9092"],
        instance: "unit",
        autoscaleIntervalMs: 200,
        watchMaxBackoffMs: 100,
        ...options,
      },
    );
  }

  async create(
    namespace: string,
    name: string,
    spec: Record<string, unknown>,
    annotations?: Record<string, string>,
  ): Promise<KubeObject> {
    return await this.api.create(QUESTA_TRAINING, {
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
      spec: { datasets: { train: [{ name: "hard", synthetic: { count: 8 } }] }, ...spec },
    });
  }

  async status(namespace: string, name: string): Promise<Status> {
    return ((await this.api.get(QUESTA_TRAINING, name, namespace))?.status ?? {}) as Status;
  }

  async env(namespace: string, name: string, fn: string): Promise<Map<string, string | undefined>> {
    const deployment = (await this.api.get(DEPLOYMENT, `${name}-${fn}`, namespace)) as unknown as {
      spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
    };
    return new Map(deployment.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]));
  }
}

const running: Harness[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((h) => h.controller.stop()));
});

async function started(
  options: Partial<ControllerOptions> = {},
  missingGroups: readonly string[] = [],
): Promise<Harness> {
  const harness = new Harness(options, missingGroups);
  running.push(harness);
  await harness.controller.start();
  return harness;
}

/** polls until `probe` returns a value; the timeout only turns a hang into a failure */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const condition = (status: Status, type: string) => status.conditions?.find((c) => c.type === type);
const shared = { bucket: "shared-runs", endpoint: "http://s3.example:9000", prefix: "questa" };

describe("tenancy: names a tenant cannot forge", () => {
  it("a hostile run copying another run's topic prefix is refused, and deleting it touches nothing of the victim's", async () => {
    const h = await started();
    await h.create("ml", "demo", { storage: shared });
    await until("victim reconciled", () => h.api.get(DEPLOYMENT, "demo-learn", "ml"));
    const victimTopics = LOGICAL.map((t) => `questa.ml.demo.${t}`);
    await until("victim topics", async () =>
      victimTopics.every((t) => h.topics.topics.has(t)) ? true : undefined,
    );
    const victimObjects = [
      "questa/namespaces/ml/demo/checkpoints/step-000010/manifest.json",
      "questa/namespaces/ml/demo/checkpoints/step-000020/manifest.json",
    ];
    for (const key of victimObjects) await h.artifacts.put(key, "weights");

    // the reproduction of the issue: same topic prefix, bucket, prefix and endpoint, then delete
    await h.create(
      "evil",
      "copycat",
      { storage: shared, kafka: { topicPrefix: "questa.ml.demo" } },
      { "questa.dev/delete-artifacts": "true" },
    );
    const refused = await until("hostile refused", async () => {
      const status = await h.status("evil", "copycat");
      return status.phase === "Failed" ? status : undefined;
    });
    expect(condition(refused, "Failed")).toMatchObject({ reason: "InvalidSpec" });
    expect(condition(refused, "Failed")?.message).toContain(
      '"questa.ml.demo" is not this run\'s: topic prefixes must be questa.evil.copycat',
    );
    expect(await h.api.get(DEPLOYMENT, "copycat-rollout", "evil")).toBeUndefined();
    await h.api.delete(QUESTA_TRAINING, "copycat", "evil");
    await until("hostile gone", async () =>
      (await h.api.get(QUESTA_TRAINING, "copycat", "evil")) ? undefined : true,
    );

    expect(h.topics.deleted).toEqual([]);
    expect(victimTopics.every((t) => h.topics.topics.has(t))).toBe(true);
    expect((await h.artifacts.list("questa/")).map((o) => o.key)).toEqual(victimObjects);
  });

  it("a same-named run in another namespace sharing the bucket gets its own topics, groups and keys, and deletes only those", async () => {
    const h = await started();
    await h.create("ml", "demo", { storage: shared });
    await h.create("evil", "demo", { storage: shared }, { "questa.dev/delete-artifacts": "true" });
    const victim = await until("victim env", () => h.api.get(DEPLOYMENT, "demo-rollout", "ml"));
    const twin = await until("twin env", () => h.api.get(DEPLOYMENT, "demo-rollout", "evil"));
    expect(victim && twin).toBeTruthy();
    const [a, b] = [await h.env("ml", "demo", "rollout"), await h.env("evil", "demo", "rollout")];
    expect([a.get("QUESTA_TOPIC_PREFIX"), b.get("QUESTA_TOPIC_PREFIX")]).toEqual([
      "questa.ml.demo",
      "questa.evil.demo",
    ]);
    expect([a.get("QUESTA_CONSUMER_GROUP"), b.get("QUESTA_CONSUMER_GROUP")]).toEqual([
      "questa.ml.demo.rollout",
      "questa.evil.demo.rollout",
    ]);
    expect([a.get("QUESTA_S3_PREFIX"), b.get("QUESTA_S3_PREFIX")]).toEqual([
      "questa/namespaces/ml/",
      "questa/namespaces/evil/",
    ]);
    const twinStatus = await until("twin names recorded", async () => (await h.status("evil", "demo")).owned);
    expect(twinStatus).toEqual({
      layout: "namespaced",
      topicPrefix: "questa.evil.demo",
      topics: LOGICAL.map((t) => `questa.evil.demo.${t}`),
      objectStores: [
        { endpoint: shared.endpoint, bucket: shared.bucket, root: "questa/namespaces/evil/demo/" },
      ],
    });
    await h.artifacts.put("questa/namespaces/ml/demo/checkpoints/step-000010/manifest.json", "victim");
    await h.artifacts.put("questa/namespaces/evil/demo/checkpoints/step-000010/manifest.json", "twin");
    await until("twin topics", async () =>
      h.topics.topics.has("questa.evil.demo.status") ? true : undefined,
    );

    await h.api.delete(QUESTA_TRAINING, "demo", "evil");
    await until("twin gone", async () =>
      (await h.api.get(QUESTA_TRAINING, "demo", "evil")) ? undefined : true,
    );
    expect(h.topics.deleted.sort()).toEqual(LOGICAL.map((t) => `questa.evil.demo.${t}`).sort());
    expect(LOGICAL.every((t) => h.topics.topics.has(`questa.ml.demo.${t}`))).toBe(true);
    expect((await h.artifacts.list("questa/")).map((o) => o.key)).toEqual([
      "questa/namespaces/ml/demo/checkpoints/step-000010/manifest.json",
    ]);
    const cleaned = h.api.events.find((e) => e.reason === "CleanedUp");
    expect(cleaned?.message).toBe("deleted 6 Kafka topics and 1 objects; removed the finalizer");
  });

  it("a run the previous version reconciled keeps its names (legacy layout); its finalizer deletes none outside its own prefix", async () => {
    const h = new Harness();
    running.push(h);
    // what the previous operator left: a finalizer and a status, no recorded names
    const created = await h.create(
      "ml",
      "old",
      { storage: shared, kafka: { topicPrefix: "team.legacy" } },
      { "questa.dev/delete-artifacts": "true" },
    );
    await h.api.replace(QUESTA_TRAINING, {
      ...created,
      metadata: { ...created.metadata, finalizers: ["questa.dev/cleanup"] },
    });
    await h.api.patchStatus(QUESTA_TRAINING, "old", "ml", {
      phase: "Running",
      observedGeneration: 1,
      step: 40,
    });
    await h.controller.start();
    const owned = await until("legacy names recorded", async () => (await h.status("ml", "old")).owned);
    expect(owned).toMatchObject({ layout: "legacy", topicPrefix: "team.legacy" });
    await until("workloads", () => h.api.get(DEPLOYMENT, "old-learn", "ml"));
    const env = await h.env("ml", "old", "learn");
    // the functions resume where they were: same topics, same keys
    expect(env.get("QUESTA_TOPIC_PREFIX")).toBe("team.legacy");
    expect(env.get("QUESTA_S3_PREFIX")).toBe("questa/");
    await until("legacy topics", async () => (h.topics.topics.has("team.legacy.status") ? true : undefined));

    await h.api.delete(QUESTA_TRAINING, "old", "ml");
    await until("gone", async () => ((await h.api.get(QUESTA_TRAINING, "old", "ml")) ? undefined : true));
    expect(h.topics.deleted).toEqual([]);
    const event = h.api.events.find((e) => e.reason === "CleanedUpPartly");
    expect(event?.type).toBe("Warning");
    expect(event?.message).toContain("topics outside questa.ml.old");
    expect(event?.message).toContain("a legacy layout without the namespace");
  });
});

describe("no adoption", () => {
  it("an existing config map the run does not control is a Conflict and stays untouched", async () => {
    const h = await started();
    const foreign = await h.api.create(CONFIG_MAP, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "gamma-config", namespace: "ml" },
      data: { "app.properties": "owned by someone else" },
    });
    await h.create("ml", "gamma", {});
    const status = await until("conflict", async () => {
      const s = await h.status("ml", "gamma");
      return condition(s, "Conflict")?.status === "True" ? s : undefined;
    });
    expect(condition(status, "Conflict")?.message).toBe(
      "ConfigMap gamma-config exists and is controlled by nothing: it is left untouched; delete or rename it, or rename the run",
    );
    expect(condition(status, "Ready")).toMatchObject({ status: "False", reason: "Conflict" });
    expect(status.phase).toBe("Pending");
    expect(await h.api.get(CONFIG_MAP, "gamma-config", "ml")).toEqual(foreign);
    // nothing else was created either: the deployments would have mounted the foreign config map
    expect(await h.api.get(DEPLOYMENT, "gamma-learn", "ml")).toBeUndefined();
  });

  it("a deployment controlled by another run is a Conflict too", async () => {
    const h = await started();
    const other = await h.create("ml", "other", {});
    await h.api.create(DEPLOYMENT, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {
        name: "delta-rollout",
        namespace: "ml",
        ownerReferences: [
          {
            apiVersion: "questa.dev/v1alpha1",
            kind: "QuestATraining",
            name: "other",
            uid: other.metadata.uid ?? "",
            controller: true,
          },
        ],
      },
      spec: { replicas: 7 },
    });
    await h.create("ml", "delta", {});
    const status = await until("conflict", async () => {
      const s = await h.status("ml", "delta");
      return condition(s, "Conflict")?.status === "True" ? s : undefined;
    });
    expect(condition(status, "Conflict")?.message).toContain(
      "Deployment delta-rollout exists and is controlled by QuestATraining other",
    );
    expect(
      ((await h.api.get(DEPLOYMENT, "delta-rollout", "ml"))?.spec as { replicas: number } | undefined)
        ?.replicas,
    ).toBe(7);
  });
});

describe("bounded operator I/O", () => {
  it("a run whose object store never answers holds up only itself: another run reconciles meanwhile", async () => {
    // one worker: if the hung call sat on it, nothing else could be reconciled
    const h = await started({ workers: 1, cleanupTimeoutMs: 10 * 60_000 });
    const hanging = new HangingArtifacts();
    h.artifactsFor = (location) =>
      location.bucket === "slow-store" ? hanging.access() : { store: objectStoreArtifacts(h.artifacts) };
    await h.create(
      "ml",
      "slow",
      { storage: { ...shared, bucket: "slow-store" } },
      {
        "questa.dev/delete-artifacts": "true",
      },
    );
    await until("slow reconciled", () => h.api.get(DEPLOYMENT, "slow-learn", "ml"));
    await h.api.delete(QUESTA_TRAINING, "slow", "ml");
    const waiting = await until("cleanup condition", async () => {
      const c = condition(await h.status("ml", "slow"), "CleanedUp");
      return c?.reason === "CleanupPending" ? c : undefined;
    });
    expect(waiting.message).toMatch(
      /^deleting 6 Kafka topics and objects under s3:\/\/slow-store\/questa\/namespaces\/ml\/slow\/ at http:\/\/s3.example:9000 \(in progress\); the finalizer gives up at \d{4}-/,
    );
    expect(hanging.pending).toBe(1);

    await h.create("ml", "fast", {});
    await until("fast reconciled", () => h.api.get(DEPLOYMENT, "fast-learn", "ml"));
    await until("fast status", async () =>
      (await h.status("ml", "fast")).phase === "Pending" ? true : undefined,
    );
    // the bound: the other run's reconcile finished while the slow store's call still hangs
    expect(hanging.pending).toBe(1);
    expect(hanging.aborted).toBe(0);
    expect(await h.api.get(QUESTA_TRAINING, "slow", "ml")).toBeDefined();
  });

  it("the finalizer gives up after its time budget, aborts the call and says what it left", async () => {
    const h = await started({ cleanupTimeoutMs: 300 });
    const hanging = new HangingArtifacts();
    h.artifactsFor = () => hanging.access();
    await h.create("ml", "stuck", { storage: shared }, { "questa.dev/delete-artifacts": "true" });
    await until("reconciled", () => h.api.get(DEPLOYMENT, "stuck-learn", "ml"));
    await h.api.delete(QUESTA_TRAINING, "stuck", "ml");
    await until("gone", async () => ((await h.api.get(QUESTA_TRAINING, "stuck", "ml")) ? undefined : true));
    expect(hanging.aborted).toBe(1);
    const event = h.api.events.find((e) => e.reason === "CleanupAbandoned");
    expect(event?.type).toBe("Warning");
    expect(event?.message).toContain("left behind:");
    expect(event?.message).toContain("objects under s3://shared-runs/questa/namespaces/ml/stuck/");
  });

  it("the operator does not dial a run's Kafka when that would drop the spec's SASL; the run still gets its workloads", async () => {
    const h = await started();
    h.kafka = () => ({
      refused: "the operator does not connect to other:9093: they need SASL scram-sha-512",
    });
    await h.create("ml", "remote", {});
    const status = await until("kafka condition", async () => {
      const s = await h.status("ml", "remote");
      return condition(s, "KafkaReady") ? s : undefined;
    });
    expect(condition(status, "KafkaReady")).toMatchObject({
      status: "False",
      reason: "OperatorNotConnected",
    });
    expect(await until("workloads", () => h.api.get(DEPLOYMENT, "remote-learn", "ml"))).toBeDefined();
  });
});

describe("network policy", () => {
  it("gives each run a NetworkPolicy it owns when the operator is asked to", async () => {
    const monitoring = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
    };
    const h = await started({ networkPolicy: { metricsFrom: [monitoring] } });
    const run = await h.create("ml", "fenced", {});
    const policy = await until("network policy", () => h.api.get(NETWORK_POLICY, "fenced-functions", "ml"));
    expect(policy.metadata.ownerReferences?.[0]).toMatchObject({ name: "fenced", uid: run.metadata.uid });
    expect(policy.spec).toMatchObject({ ingress: [{ from: [monitoring] }] });
  });
});

describe("cluster policy", () => {
  it("refuses an image outside the allow-list and local dataset paths, naming each field", async () => {
    const h = await started({ allowedImages: ["registry.example/questa@sha256:"] });
    await h.create("ml", "sneaky", {
      image: "docker.io/evil/miner:latest",
      datasets: { train: [{ name: "secrets", uri: "/etc/questa/s3-credentials/AWS_SECRET_ACCESS_KEY" }] },
    });
    const status = await until("refused", async () => {
      const s = await h.status("ml", "sneaky");
      return s.phase === "Failed" ? s : undefined;
    });
    const message = condition(status, "Failed")?.message ?? "";
    expect(message).toContain('spec.image: "docker.io/evil/miner:latest" is not an allowed image');
    expect(message).toContain("spec.datasets.train[0].uri:");
    expect(message).toContain("object store only");
    expect(await h.api.get(DEPLOYMENT, "sneaky-learn", "ml")).toBeUndefined();
  });
});

describe("scale engines", () => {
  /** Kubeflow Trainer and JobSet absent: their API groups are not served */
  const NO_TRAINER = ["trainer.kubeflow.org", "jobset.x-k8s.io"];
  const hf = { source: "huggingface", uri: "s3://models/qwen/" };
  const torch = (torchSettings: Record<string, unknown> = {}) => ({
    model: hf,
    learner: { engine: "torch", torch: { nodes: 2, ...torchSettings }, resources: { gpus: 2 } },
  });
  const annotation = (o: KubeObject | undefined) => o?.metadata.annotations?.["questa.dev/template-hash"];
  const podEnv = (job: KubeObject) =>
    new Map(
      (
        job.spec as { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } }
      ).template.spec.containers[0]!.env.map((e) => [e.name, e.value]),
    );

  it("without Trainer the torch learner is an Indexed Job with a headless Service, and no learner Deployment", async () => {
    const h = await started({}, NO_TRAINER);
    await h.create("ml", "tl", torch());
    const job = await until("learner job", () => h.api.get(JOB, "tl-learn", "ml"));
    expect(job.spec).toMatchObject({ completionMode: "Indexed", completions: 2, suspend: false });
    expect(podEnv(job).get("PET_MASTER_ADDR")).toBe("tl-learn-0.tl-learn");
    expect(await h.api.get(SERVICE, "tl-learn", "ml")).toMatchObject({ spec: { clusterIP: "None" } });
    await until("the other workloads", () => h.api.get(DEPLOYMENT, "tl-evaluate", "ml"));
    expect(await h.api.get(DEPLOYMENT, "tl-learn", "ml")).toBeUndefined();
    expect(await h.api.get(TRAIN_JOB, "tl-learn", "ml")).toBeUndefined();
  });

  it("with Trainer and JobSet served the torch learner is a TrainJob, and no Job", async () => {
    const h = await started();
    await h.create("ml", "tt", torch());
    const train = await until("train job", () => h.api.get(TRAIN_JOB, "tt-learn", "ml"));
    expect(train.spec).toMatchObject({ runtimeRef: { name: "torch-distributed" }, trainer: { numNodes: 2 } });
    expect(await h.api.get(JOB, "tt-learn", "ml")).toBeUndefined();
    expect(await h.api.get(SERVICE, "tt-learn", "ml")).toBeUndefined();
  });

  it("a learner Job stays a Job when Trainer is installed later", async () => {
    const h = await started({ autoscaleIntervalMs: 50 }, NO_TRAINER);
    const created = await h.create("ml", "keep", torch());
    await until("learner job", () => h.api.get(JOB, "keep-learn", "ml"));
    for (const group of NO_TRAINER) h.api.installGroup(group);
    // a spec change brings a reconcile that looks at the cluster again
    await h.api.replace(QUESTA_TRAINING, {
      ...created,
      metadata: { ...(await h.api.get(QUESTA_TRAINING, "keep", "ml"))!.metadata },
      spec: { ...(created.spec as object), seed: 7 },
    });
    await until("observed generation 2", async () =>
      (await h.status("ml", "keep")).conditions?.every(
        (c) => (c as { observedGeneration?: number }).observedGeneration === 2,
      )
        ? true
        : undefined,
    );
    expect(await h.api.get(TRAIN_JOB, "keep-learn", "ml")).toBeUndefined();
  });

  it("suspends the learner job in place, and replaces it when the spec changes", async () => {
    const h = await started({ autoscaleIntervalMs: 50 }, NO_TRAINER);
    await h.create("ml", "rep", torch());
    const first = await until("learner job", () => h.api.get(JOB, "rep-learn", "ml"));
    const patch = async (spec: Record<string, unknown>) => {
      const current = (await h.api.get(QUESTA_TRAINING, "rep", "ml"))!;
      await h.api.replace(QUESTA_TRAINING, { ...current, spec: { ...(current.spec as object), ...spec } });
    };
    await patch({ suspend: true });
    const suspended = await until("suspended job", async () => {
      const job = await h.api.get(JOB, "rep-learn", "ml");
      return (job?.spec as { suspend?: boolean } | undefined)?.suspend ? job : undefined;
    });
    expect(suspended.metadata.uid).toBe(first.metadata.uid);
    await patch({ suspend: false, learner: { ...torch().learner, learningRate: 1e-6 } });
    const replaced = await until("a new learner job", async () => {
      const job = await h.api.get(JOB, "rep-learn", "ml");
      return job && job.metadata.uid !== first.metadata.uid ? job : undefined;
    });
    expect(annotation(replaced)).not.toBe(annotation(first));
    expect((replaced.spec as { suspend: boolean }).suspend).toBe(false);
  });

  it("a failed learner job fails the run, saying which job and why", async () => {
    const h = await started({}, NO_TRAINER);
    await h.create("ml", "boom", torch());
    await until("learner job", () => h.api.get(JOB, "boom-learn", "ml"));
    await h.api.patchStatus(JOB, "boom-learn", "ml", {
      conditions: [
        {
          type: "Failed",
          status: "True",
          reason: "BackoffLimitExceeded",
          message: "Job has reached the specified backoff limit",
        },
      ],
    });
    const status = await until("failed run", async () => {
      const s = await h.status("ml", "boom");
      return s.phase === "Failed" ? s : undefined;
    });
    expect(condition(status, "Failed")).toMatchObject({
      reason: "LearnerFailed",
      message:
        "the learner's Job boom-learn failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
    });
    // the other workloads stop; the failed job stays as it ended
    await until("workloads at zero", async () => {
      const d = await h.api.get(DEPLOYMENT, "boom-rollout", "ml");
      return (d?.spec as { replicas?: number } | undefined)?.replicas === 0 ? true : undefined;
    });
    expect((await h.api.get(JOB, "boom-learn", "ml"))?.spec).toMatchObject({ suspend: false });
  });

  it("moving a run from the onnx learner to torch retires the learner Deployment first", async () => {
    const h = await started({ autoscaleIntervalMs: 50 }, NO_TRAINER);
    await h.create("ml", "move", { model: hf });
    await until("learn deployment", () => h.api.get(DEPLOYMENT, "move-learn", "ml"));
    // the Deployment still has a pod
    await h.api.patchStatus(DEPLOYMENT, "move-learn", "ml", { replicas: 1 });
    const current = (await h.api.get(QUESTA_TRAINING, "move", "ml"))!;
    await h.api.replace(QUESTA_TRAINING, { ...current, spec: { ...(current.spec as object), ...torch() } });
    const held = await until("a suspended learner job", () => h.api.get(JOB, "move-learn", "ml"));
    expect((held.spec as { suspend: boolean }).suspend).toBe(true);
    expect((await h.api.get(DEPLOYMENT, "move-learn", "ml"))?.spec).toMatchObject({ replicas: 0 });
    await h.api.patchStatus(DEPLOYMENT, "move-learn", "ml", { replicas: 0 });
    await until("the learner job resumed", async () => {
      const job = await h.api.get(JOB, "move-learn", "ml");
      return (job?.spec as { suspend?: boolean } | undefined)?.suspend === false ? true : undefined;
    });
  });

  it("renders the vLLM servers, their Service and NetworkPolicy, and points the rollout workers at them", async () => {
    const h = await started({}, NO_TRAINER);
    await h.create("ml", "vl", { model: hf, rollout: { engine: "vllm", vllm: { replicas: 2 } } });
    const servers = await until("vllm deployment", () => h.api.get(DEPLOYMENT, "vl-vllm", "ml"));
    expect(servers.spec).toMatchObject({ replicas: 2 });
    expect(await h.api.get(SERVICE, "vl-vllm", "ml")).toMatchObject({ spec: { clusterIP: "None" } });
    // rendered whatever the operator's NetworkPolicy setting: the dev-mode routes are on that port
    expect(await h.api.get(NETWORK_POLICY, "vl-vllm", "ml")).toMatchObject({
      spec: { ingress: [{ ports: [{ port: 8000 }] }] },
    });
    await until("rollout deployment", () => h.api.get(DEPLOYMENT, "vl-rollout", "ml"));
    expect((await h.env("ml", "vl", "rollout")).get("QUESTA_VLLM_ENDPOINTS")).toBe(
      "http://vl-vllm.ml.svc:8000",
    );
    const current = (await h.api.get(QUESTA_TRAINING, "vl", "ml"))!;
    await h.api.replace(QUESTA_TRAINING, {
      ...current,
      spec: { ...(current.spec as object), suspend: true },
    });
    await until("servers at zero", async () => {
      const d = await h.api.get(DEPLOYMENT, "vl-vllm", "ml");
      return (d?.spec as { replicas?: number } | undefined)?.replicas === 0 ? true : undefined;
    });
  });

  it("refuses a run name too long for the objects an engine names after it, naming the field and the fix", async () => {
    const h = await started({}, NO_TRAINER);
    const name = `r${"x".repeat(55)}`;
    await h.create("ml", name, { model: hf, rollout: { engine: "vllm" }, learner: { engine: "torch" } });
    const status = await until("failed run", async () => {
      const s = await h.status("ml", name);
      return s.phase === "Failed" ? s : undefined;
    });
    expect(condition(status, "Failed")?.reason).toBe("InvalidSpec");
    expect(condition(status, "Failed")?.message).toContain(
      `metadata.name: "${name}" is too long for learner.engine torch`,
    );
    expect(condition(status, "Failed")?.message).toContain("(fix: use a run name of at most 48 characters)");
    expect(await h.api.get(DEPLOYMENT, `${name}-augment`, "ml")).toBeUndefined();
  });
});
