import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";
import type { KubeObject, ResourceKind } from "../operator/kube-api.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import { CONFIG_MAP, DEPLOYMENT, QUESTA_TRAINING } from "../operator/questatraining-controller.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  mustTool,
  startTestOperator,
  type TestOperator,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";

const kube = await kubeContext();
afterAll(async () => await kube.stop());
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const operatorKubeconfig = kube.operatorKubeconfig;
const operatorNamespace = kube.operatorNamespace;
const admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }));
const EVENTS: ResourceKind = {
  group: "events.k8s.io",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
};

let namespace: string;
let test: TestOperator;
const artifacts = new MemoryObjectStore();

const spec = (extra = "") => `
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
rollout:
  groupSize: 8
  replicas: { min: 0, max: 3 }
  resources: { cpu: "4", memory: 16Gi, gpus: 2 }
  nodeSelector: { nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3 }
  tolerations:
    - { key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }
learner:
  resources: { cpu: "8", memory: 32Gi, gpus: 1 }
storage:
  bucket: questa-runs
  endpoint: http://minio.storage:9000
  credentialsSecretRef: { name: s3-credentials }
kafka:
  sasl: { mechanism: scram-sha-512, secretRef: { name: kafka-user } }
${extra}`;

async function training(name: string): Promise<KubeObject | undefined> {
  return await admin.get(QUESTA_TRAINING, name, namespace);
}

type Status = {
  phase?: string;
  observedGeneration?: number;
  step?: number;
  stage?: number;
  passAt1?: number;
  latestCheckpoint?: { step: number; uri: string };
  conditions?: { type: string; status: string; reason: string; observedGeneration?: number }[];
};
const statusOf = (object: KubeObject | undefined) => (object?.status ?? {}) as Status;

async function waitForPhase(name: string, phase: string): Promise<Status> {
  return await eventually(`${name} phase ${phase}`, async () => {
    const status = statusOf(await training(name));
    return status.phase === phase ? status : undefined;
  });
}

type Deployment = {
  metadata: {
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
    labels?: Record<string, string>;
  };
  spec: {
    replicas: number;
    strategy: { type: string };
    template: {
      metadata: { annotations: Record<string, string> };
      spec: {
        automountServiceAccountToken: boolean;
        securityContext: Record<string, unknown>;
        nodeSelector?: Record<string, string>;
        tolerations?: unknown[];
        volumes: unknown[];
        containers: {
          image: string;
          env: {
            name: string;
            value?: string;
            valueFrom?: { secretKeyRef?: { name: string; key: string } };
          }[];
          resources: { limits: Record<string, string>; requests: Record<string, string> };
          securityContext: Record<string, unknown>;
        }[];
      };
    };
  };
};

async function deployment(name: string): Promise<Deployment | undefined> {
  return (await admin.get(DEPLOYMENT, name, namespace)) as unknown as Deployment | undefined;
}

async function replicasOf(run: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const fn of ["augment", "rollout", "learn", "evaluate"]) {
    out[fn] = (await deployment(`${run}-${fn}`))?.spec.replicas ?? -1;
  }
  return out;
}

async function publish(topic: string, type: string, data: unknown, id: string): Promise<void> {
  const event: CloudEvent<unknown> = {
    specversion: "1.0",
    id,
    source: "/questa/test",
    type,
    subject: "run",
    time: "2026-11-26T06:00:00.000Z",
    datacontenttype: "application/json",
    data,
  };
  await test.bus.publish(topic, [toBinaryMessage(event)]);
}

beforeAll(async () => {
  await installChart(bin, kubeconfig, operatorNamespace);
  namespace = await createNamespace(bin, kubeconfig, "reconcile");
  test = startTestOperator(
    operatorKubeconfig,
    { instance: "reconcile-test", namespace },
    undefined,
    artifacts,
  );
  await test.operator.start();
});

afterAll(async () => {
  await test?.operator.stop();
});

describe("the operator against a real kube-apiserver (as the chart's service account)", () => {
  it("reconciles a run into topics, a config map and GPU workloads, and reports Pending", async () => {
    const applied = await kubectlApply(bin, kubeconfig, trainingYaml(namespace, "alpha", spec()));
    expect(applied.stderr).toBe("");

    const rollout = await eventually("rollout deployment", () => deployment("alpha-rollout"));
    const pod = rollout.spec.template.spec;
    const container = pod.containers[0]!;
    expect(rollout.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "QuestATraining", name: "alpha", controller: true }),
    ]);
    expect(rollout.metadata.labels).toMatchObject({
      "questa.dev/run": "alpha",
      "app.kubernetes.io/component": "rollout",
    });
    expect(container.resources.limits).toMatchObject({ "nvidia.com/gpu": "2", cpu: "4", memory: "16Gi" });
    expect(container.resources.requests["nvidia.com/gpu"]).toBe("2");
    expect(pod.nodeSelector).toEqual({ "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3" });
    expect(pod.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(container.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(container.image).toBe("ghcr.io/questa-dev/questa:test");
    const env = new Map(container.env.map((e) => [e.name, e]));
    // credentials: mounted secret files and secretKeyRefs only, never values
    expect(env.get("QUESTA_S3_SECRET_DIR")?.value).toBe("/etc/questa/s3-credentials");
    expect(pod.volumes).toContainEqual({
      name: "s3-credentials",
      secret: { secretName: "s3-credentials", defaultMode: 0o400 },
    });
    expect(env.get("QUESTA_KAFKA_SASL_USERNAME")?.valueFrom?.secretKeyRef).toEqual({
      name: "kafka-user",
      key: "username",
    });
    expect(env.get("QUESTA_KAFKA_BROKERS")?.value).toBe("kafka-0.kafka:9092");
    expect(env.get("QUESTA_S3_BUCKET")?.value).toBe("questa-runs");
    expect(JSON.stringify(container.env)).not.toMatch(/AWS_SECRET_ACCESS_KEY/);

    const learn = await eventually("learn deployment", () => deployment("alpha-learn"));
    expect(learn.spec.strategy.type).toBe("Recreate");
    expect(learn.spec.template.spec.containers[0]!.resources.limits["nvidia.com/gpu"]).toBe("1");
    expect(await replicasOf("alpha")).toEqual({ augment: 1, rollout: 0, learn: 1, evaluate: 1 });

    const config = await eventually("config map", () => admin.get(CONFIG_MAP, "alpha-config", namespace));
    const configText = (config.data as Record<string, string>)["training.yaml"]!;
    expect(configText).toContain("groupSize: 8");
    // defaults are filled in: the functions read the complete, validated spec
    expect(configText).toContain("temperature: 1");
    expect(configText).toContain("promptsPerStep: 128");

    const status = await waitForPhase("alpha", "Pending");
    expect(status.observedGeneration).toBe(1);
    expect(status.conditions?.find((c) => c.type === "Ready")).toMatchObject({
      status: "True",
      reason: "WaitingForWorkers",
      observedGeneration: 1,
    });
    expect((await training("alpha"))?.metadata.finalizers).toContain("questa.dev/cleanup");
    expect([...test.topics.topics.keys()].sort()).toEqual(
      ["checkpoints", "dead-letter", "evaluations", "questions", "rollouts", "status"].map(
        (t) => `questa.${namespace}.alpha.${t}`,
      ),
    );
    const events = await eventually("a Kubernetes Event", async () => {
      const list = await admin.list(EVENTS, namespace);
      return list.items.length > 0 ? list.items : undefined;
    });
    expect(events[0]).toMatchObject({
      reason: "WaitingForWorkers",
      regarding: { name: "alpha", kind: "QuestATraining" },
    });
    const printed = await mustTool(bin, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "-n",
      namespace,
      "get",
      "qt",
    ]);
    expect(printed).toMatch(/alpha\s+Pending/);
  });

  it("folds run events into the status: phase, step, stage, checkpoint, pass@1", async () => {
    const prefix = `questa.${namespace}.alpha`;
    await publish(
      `${prefix}.status`,
      "dev.questa.run.status.v1",
      { run: "alpha", kind: "started", step: 0, stage: 0, hintRatio: 0.5 },
      "s0",
    );
    await publish(
      `${prefix}.status`,
      "dev.questa.run.status.v1",
      { run: "alpha", kind: "step", step: 7, stage: 1, hintRatio: 0.25 },
      "s7",
    );
    const ref = (key: string) => ({ uri: `s3://questa-runs/${key}`, key, sha256: "a".repeat(64), size: 10 });
    await publish(
      `${prefix}.checkpoints`,
      "dev.questa.checkpoint.published.v1",
      {
        run: "alpha",
        step: 5,
        stage: 1,
        reason: "interval",
        manifest: ref("questa/alpha/ckpt/5/manifest.json"),
      },
      "c5",
    );
    for (const [benchmark, passAt1] of [
      ["aime24", 0.5],
      ["aime25", 0.25],
    ] as const) {
      await publish(
        `${prefix}.evaluations`,
        "dev.questa.evaluation.result.v1",
        {
          run: "alpha",
          step: 5,
          benchmark,
          problems: 30,
          samples: 32,
          temperature: 0.6,
          topP: 0.95,
          hinted: false,
          passAt1,
          passAtK: { "1": passAt1 },
          majAtK: { "1": passAt1 },
          passAt1Interval: { low: 0, high: 1 },
          results: ref(`questa/alpha/eval/${benchmark}.jsonl`),
        },
        `e-${benchmark}`,
      );
    }
    const status = await eventually("folded status", async () => {
      const s = statusOf(await training("alpha"));
      return s.phase === "Running" && s.passAt1 !== undefined && s.latestCheckpoint ? s : undefined;
    });
    expect(status).toMatchObject({
      step: 7,
      stage: 1,
      passAt1: 0.375,
      latestCheckpoint: { step: 5, uri: "s3://questa-runs/questa/alpha/ckpt/5/manifest.json" },
    });
    const printed = await mustTool(bin, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "-n",
      namespace,
      "get",
      "qt",
      "alpha",
    ]);
    expect(printed).toMatch(/alpha\s+Running\s+1\s+7\s+0\.375/);
  });

  it("scales rollout workers with consumer lag, and to zero when idle", async () => {
    const group = `questa.${namespace}.alpha.rollout`;
    test.lag.lags.set(group, 25);
    await eventually("3 rollout workers", async () =>
      (await replicasOf("alpha")).rollout === 3 ? true : undefined,
    );
    test.lag.lags.set(group, 0);
    await eventually("rollout workers scaled to zero", async () =>
      (await replicasOf("alpha")).rollout === 0 ? true : undefined,
    );
  });

  it("applies spec changes to the config map and workloads", async () => {
    const before = await deployment("alpha-evaluate");
    const applied = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(
        namespace,
        "alpha",
        `${spec()}\nevaluation:\n  samples: 64\n  k: [1, 64]\n  resources: { gpus: 4 }`,
      ),
    );
    expect(applied.code).toBe(0);
    const after = await eventually("updated evaluate deployment", async () => {
      const d = await deployment("alpha-evaluate");
      return d?.spec.template.spec.containers[0]?.resources.limits["nvidia.com/gpu"] === "4" ? d : undefined;
    });
    expect(after.spec.template.metadata.annotations["questa.dev/config-hash"]).not.toBe(
      before?.spec.template.metadata.annotations["questa.dev/config-hash"],
    );
    const config = await admin.get(CONFIG_MAP, "alpha-config", namespace);
    expect((config?.data as Record<string, string> | undefined)?.["training.yaml"]).toContain("samples: 64");
    const status = await eventually("observedGeneration 2", async () => {
      const s = statusOf(await training("alpha"));
      return s.observedGeneration === 2 ? s : undefined;
    });
    expect(status.conditions?.every((c) => c.observedGeneration === 2)).toBe(true);
  });

  it("suspends (workloads to zero) and resumes", async () => {
    const suspend = (value: boolean) =>
      mustTool(bin, "kubectl", [
        "--kubeconfig",
        kubeconfig,
        "-n",
        namespace,
        "patch",
        "qt",
        "alpha",
        "--type=merge",
        "-p",
        JSON.stringify({ spec: { suspend: value } }),
      ]);
    await suspend(true);
    const suspended = await waitForPhase("alpha", "Suspended");
    expect(suspended.conditions?.find((c) => c.type === "Suspended")?.status).toBe("True");
    await eventually("all workloads at zero", async () => {
      const replicas = await replicasOf("alpha");
      return Object.values(replicas).every((r) => r === 0) ? true : undefined;
    });
    await suspend(false);
    const resumed = await waitForPhase("alpha", "Running");
    expect(resumed.conditions?.find((c) => c.type === "Suspended")).toMatchObject({
      status: "False",
      reason: "Resumed",
    });
    await eventually("workloads back", async () => {
      const replicas = await replicasOf("alpha");
      return replicas.learn === 1 && replicas.augment === 1 && replicas.evaluate === 1 ? true : undefined;
    });
  });

  it("fails a run that outlives activeDeadlineSeconds with reason DeadlineExceeded", async () => {
    await kubectlApply(bin, kubeconfig, trainingYaml(namespace, "beta", spec("activeDeadlineSeconds: 2")));
    await waitForPhase("beta", "Pending");
    const failed = await waitForPhase("beta", "Failed");
    expect(failed.conditions?.find((c) => c.type === "Failed")).toMatchObject({
      status: "True",
      reason: "DeadlineExceeded",
    });
    await eventually("beta workloads at zero", async () => {
      const replicas = await replicasOf("beta");
      return Object.values(replicas).every((r) => r === 0) ? true : undefined;
    });
    const warning = await eventually("a DeadlineExceeded warning event", async () => {
      const list = await admin.list(EVENTS, namespace);
      return list.items.find((e) => e.reason === "DeadlineExceeded");
    });
    expect(warning.type).toBe("Warning");
  });

  it("runs the finalizer on delete: topics go, artifacts only when asked, the object goes", async () => {
    const prefix = `questa.${namespace}.beta`;
    expect(test.topics.topics.has(`${prefix}.questions`)).toBe(true);
    const root = `questa/namespaces/${namespace}`;
    for (const key of [
      `${root}/beta/ckpt/1/manifest.json`,
      `${root}/beta/rollouts/0.jsonl`,
      `${root}/alpha/ckpt/1/manifest.json`,
    ]) {
      await artifacts.put(key, "x");
    }
    await mustTool(bin, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "-n",
      namespace,
      "annotate",
      "qt",
      "beta",
      "questa.dev/delete-artifacts=true",
    ]);
    await mustTool(bin, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "-n",
      namespace,
      "delete",
      "qt",
      "beta",
      "--wait=false",
    ]);
    await eventually("beta deleted", async () => ((await training("beta")) === undefined ? true : undefined));
    expect(test.topics.deleted).toContain(`${prefix}.questions`);
    expect([...test.topics.topics.keys()].some((t) => t.startsWith(`${prefix}.`))).toBe(false);
    expect((await artifacts.list(`${root}/beta/`)).map((o) => o.key)).toEqual([]);
    // the other run is untouched
    expect(test.topics.topics.has(`questa.${namespace}.alpha.questions`)).toBe(true);
    expect((await artifacts.list(`${root}/alpha/`)).map((o) => o.key)).toEqual([
      `${root}/alpha/ckpt/1/manifest.json`,
    ]);
  });
});
