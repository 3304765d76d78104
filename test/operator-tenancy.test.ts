import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RunKeys } from "../functions/contracts/run-keys.ts";
import { systemClock } from "../functions/runtime/clock.ts";
import { KafkaAdmin, parseKafkaConnectionConfig } from "../functions/runtime/kafka-bus.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { S3ObjectStore, s3StoreConfigFromEnv } from "../functions/runtime/s3-object-store.ts";
import type { KubeObject } from "../operator/kube-api.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import { artifactStores, kafkaConnections } from "../operator/main.ts";
import { OperatorMetrics } from "../operator/metrics.ts";
import { Operator } from "../operator/operator.ts";
import { CONFIG_MAP, DEPLOYMENT, QUESTA_TRAINING } from "../operator/questatraining-controller.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  mustTool,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";
import { type Endpoint, startSilentEndpoint } from "./infra/tls-endpoints.ts";

// The tenancy proof of issue #25, against the real kube-apiserver (as the chart's service account),
// the real Kafka broker and the real MinIO of the integration setup: a victim run, a hostile run in
// another namespace that copies its names, endpoint and bucket, a squatted config map, and a run
// whose object store never answers.

const kube = await kubeContext();
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }));
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const bucket = `questa-tenancy-${randomBytes(4).toString("hex")}`;
const LOGICAL = ["checkpoints", "dead-letter", "evaluations", "questions", "rollouts", "status"];

const kafka = kafkaConnections(parseKafkaConnectionConfig({ brokers, clientId: "questa-tenancy-operator" }), {
  logLevel: "nothing",
});
const kafkaAdmin = new KafkaAdmin({ brokers, clientId: "questa-tenancy-test" }, { logLevel: "nothing" });
const stores: S3ObjectStore[] = [];
const operators: Operator[] = [];
let silent: Endpoint;
let victimNs: string;
let hostileNs: string;

/**
 * One operator per namespace here, because other test files run operators against the same API
 * server; both share the Kafka connections and the object-store allow-list, as one operator would.
 */
function operatorFor(namespace: string): Operator {
  const api = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kube.operatorKubeconfig }), {
    requestTimeoutMs: 5_000,
  });
  const operator = new Operator(
    {
      api,
      kafkaFor: kafka.kafkaFor,
      artifactsFor: artifactStores(
        [
          { bucket, endpoint: s3.endpoint },
          { bucket: "slow-bucket", endpoint: silent.url },
        ],
        // long budgets: the hung call must still be waiting when the other run is reconciled
        { credentials, connectionTimeoutMs: 600_000, requestTimeoutMs: 600_000 },
      ),
      clock: systemClock,
      metrics: new OperatorMetrics(),
      log: silentLogger(),
    },
    {
      defaultImage: "ghcr.io/questa-dev/questa:test",
      defaultKafkaBrokers: brokers,
      namespace,
      instance: `tenancy-${namespace}`,
      // one worker: a reconcile waiting on the hung store would stop every other run
      workers: 1,
      autoscaleIntervalMs: 1_000,
      watchMaxBackoffMs: 1_000,
      cleanupTimeoutMs: 10 * 60_000,
      leaderElection: { enabled: false, namespace: "questa-system", leaseName: "questa-operator" },
    },
  );
  operators.push(operator);
  return operator;
}

const storage = (extra = "") => `
storage:
  bucket: ${bucket}
  endpoint: ${s3.endpoint}
  forcePathStyle: true
  prefix: questa${extra}`;

const spec = (extra = "") => `
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
${extra}`;

type Status = {
  phase?: string;
  owned?: { topicPrefix: string; topics: string[]; objectStores: { root: string }[] };
  conditions?: { type: string; status: string; reason: string; message: string }[];
};
const statusOf = async (namespace: string, name: string) =>
  ((await admin.get(QUESTA_TRAINING, name, namespace))?.status ?? {}) as Status;
const condition = (status: Status, type: string) => status.conditions?.find((c) => c.type === type);

/** the object store as the run's functions open it: from their pod's environment */
async function podStore(namespace: string, run: string): Promise<S3ObjectStore> {
  const deployment = (await eventually(`${run} deployment`, () =>
    admin.get(DEPLOYMENT, `${run}-learn`, namespace),
  )) as unknown as {
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  const env = Object.fromEntries(
    deployment.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]),
  );
  const store = new S3ObjectStore({ ...s3StoreConfigFromEnv(env), credentials });
  stores.push(store);
  return store;
}

async function topicsOf(prefix: string): Promise<string[]> {
  return (await kafkaAdmin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)).sort();
}

async function deleteRun(namespace: string, name: string): Promise<void> {
  await mustTool(bin, "kubectl", [
    "--kubeconfig",
    kubeconfig,
    "-n",
    namespace,
    "delete",
    "qt",
    name,
    "--wait=false",
  ]);
}

beforeAll(async () => {
  silent = await startSilentEndpoint();
  await installChart(bin, kubeconfig, kube.operatorNamespace);
  const shared = new S3ObjectStore({ bucket, endpoint: s3.endpoint, region: s3.region, credentials });
  stores.push(shared);
  await shared.ensureBucket();
  victimNs = await createNamespace(bin, kubeconfig, "victim");
  hostileNs = await createNamespace(bin, kubeconfig, "hostile");
  await Promise.all([operatorFor(victimNs).start(), operatorFor(hostileNs).start()]);
});

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop({ release: false })));
  // the run whose store never answers still holds its finalizer: let it go
  const slow = await admin.get(QUESTA_TRAINING, "slow", hostileNs ?? "").catch(() => undefined);
  if (slow) await admin.replace(QUESTA_TRAINING, { ...slow, metadata: { ...slow.metadata, finalizers: [] } });
  await silent?.close();
  await kafka.close();
  await kafkaAdmin.close();
  for (const store of stores) store.close();
  await kube.stop();
});

describe("tenancy against the real API server, Kafka and MinIO", () => {
  it("a hostile run that copies a victim's names, endpoint and bucket cannot touch its topics or objects", async () => {
    // the victim: a run with checkpoints in the shared bucket
    await kubectlApply(bin, kubeconfig, trainingYaml(victimNs, "victim", spec(storage())));
    const victimTopics = LOGICAL.map((t) => `questa.${victimNs}.victim.${t}`);
    await eventually("victim topics in Kafka", async () =>
      (await topicsOf(`questa.${victimNs}.victim`)).length === 6 ? true : undefined,
    );
    const victimStore = await podStore(victimNs, "victim");
    const keys = new RunKeys("victim");
    const victimObjects = [`${keys.checkpoint(10)}/manifest.json`, `${keys.checkpoint(20)}/manifest.json`];
    for (const key of victimObjects) await victimStore.put(key, `victim ${key}`);

    // copying the victim's topic prefix is refused before it is stored (the chart's admission policy)
    const forged = await eventually("the admission policy refuses a foreign topic prefix", async () => {
      const result = await kubectlApply(
        bin,
        kubeconfig,
        trainingYaml(
          hostileNs,
          "victim",
          spec(`${storage()}\nkafka:\n  topicPrefix: questa.${victimNs}.victim`),
        ),
      );
      return result.code !== 0 ? result : undefined;
    });
    expect(forged.stderr).toContain(
      `spec.kafka.topicPrefix questa.${victimNs}.victim does not belong to this run`,
    );

    // everything else copied: same name, bucket, prefix, endpoint and brokers; deleted with its artifacts
    const hostile = `${spec(`${storage()}\nkafka:\n  brokers: [${brokers.join(", ")}]`)}`;
    const applied = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(hostileNs, "victim", hostile).replace(
        "metadata:\n",
        'metadata:\n  annotations: { questa.dev/delete-artifacts: "true" }\n',
      ),
    );
    expect(applied.stderr).toBe("");
    await eventually("hostile topics in Kafka", async () =>
      (await topicsOf(`questa.${hostileNs}.victim`)).length === 6 ? true : undefined,
    );
    const hostileStore = await podStore(hostileNs, "victim");
    // same run name, same bucket: the hostile run's functions do not see the victim's objects
    expect((await hostileStore.list("victim/")).map((o) => o.key)).toEqual([]);
    await hostileStore.put(`${keys.checkpoint(10)}/manifest.json`, "hostile");
    expect((await victimStore.list("victim/")).map((o) => o.key)).toEqual(victimObjects);
    const owned = (await statusOf(hostileNs, "victim")).owned;
    expect(owned?.topicPrefix).toBe(`questa.${hostileNs}.victim`);
    expect(owned?.objectStores.map((o) => o.root)).toEqual([`questa/namespaces/${hostileNs}/victim/`]);

    await deleteRun(hostileNs, "victim");
    await eventually("hostile run deleted", async () =>
      (await admin.get(QUESTA_TRAINING, "victim", hostileNs)) ? undefined : true,
    );
    expect(await topicsOf(`questa.${victimNs}.victim`)).toEqual([...victimTopics].sort());
    expect(await topicsOf(`questa.${hostileNs}.victim`)).toEqual([]);
    expect((await victimStore.list("victim/")).map((o) => o.key)).toEqual(victimObjects);
    for (const key of victimObjects) {
      expect(new TextDecoder().decode(await victimStore.get(key))).toBe(`victim ${key}`);
    }
    // what the hostile run was allowed to delete, it did: its own objects
    expect((await hostileStore.list("victim/")).map((o) => o.key)).toEqual([]);
  });

  it("leaves a pre-existing <name>-config owned by nobody untouched, with a Conflict condition", async () => {
    await mustTool(bin, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "-n",
      victimNs,
      "create",
      "configmap",
      "squatter-config",
      "--from-literal=app.properties=not questa's",
    ]);
    const before = (await admin.get(CONFIG_MAP, "squatter-config", victimNs)) as KubeObject;
    await kubectlApply(bin, kubeconfig, trainingYaml(victimNs, "squatter", spec()));
    const status = await eventually("Conflict condition", async () => {
      const s = await statusOf(victimNs, "squatter");
      return condition(s, "Conflict")?.status === "True" ? s : undefined;
    });
    expect(condition(status, "Conflict")?.message).toContain(
      "ConfigMap squatter-config exists and is controlled by nothing: it is left untouched",
    );
    expect(condition(status, "Ready")).toMatchObject({ status: "False", reason: "Conflict" });
    const after = (await admin.get(CONFIG_MAP, "squatter-config", victimNs)) as KubeObject;
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect(after.data).toEqual({ "app.properties": "not questa's" });
    expect(after.metadata.ownerReferences).toBeUndefined();
    expect(await admin.get(DEPLOYMENT, "squatter-learn", victimNs)).toBeUndefined();
  });

  it("a run whose object store never answers does not hold up another run's reconcile", async () => {
    const slow = trainingYaml(
      hostileNs,
      "slow",
      spec(`storage:\n  bucket: slow-bucket\n  endpoint: ${silent.url}\n  forcePathStyle: true`),
    ).replace("metadata:\n", 'metadata:\n  annotations: { questa.dev/delete-artifacts: "true" }\n');
    await kubectlApply(bin, kubeconfig, slow);
    await eventually("slow reconciled", () => admin.get(DEPLOYMENT, "slow-learn", hostileNs));
    await deleteRun(hostileNs, "slow");
    const pending = await eventually("the finalizer waits on the silent store", async () => {
      const c = condition(await statusOf(hostileNs, "slow"), "CleanedUp");
      return c?.reason === "CleanupPending" && silent.open() > 0 ? c : undefined;
    });
    expect(pending.message).toContain(`objects under s3://slow-bucket/questa/namespaces/${hostileNs}/slow/`);
    expect(pending.message).toMatch(/the finalizer gives up at \d{4}-/);

    const started = Date.now();
    await kubectlApply(bin, kubeconfig, trainingYaml(hostileNs, "after", spec()));
    await eventually("the other run reconciled", async () =>
      (await statusOf(hostileNs, "after")).phase === "Pending" &&
      (await admin.get(DEPLOYMENT, "after-learn", hostileNs))
        ? true
        : undefined,
    );
    const tookMs = Date.now() - started;
    // the bound, stated logically: it finished while the operator's call to the silent store (its
    // only worker's run) was still open and unanswered, with that run still waiting to be deleted
    expect(silent.open()).toBeGreaterThan(0);
    expect((await admin.get(QUESTA_TRAINING, "slow", hostileNs))?.metadata.finalizers).toContain(
      "questa.dev/cleanup",
    );
    console.log(
      `[tenancy] another run reconciled in ${tookMs} ms (apply to Pending with workloads) while a run's object-store call hung (1 worker)`,
    );
  });
});
