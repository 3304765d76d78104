import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeObject, ResourceKind } from "../operator/kube-api.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import {
  DEPLOYMENT,
  JOB,
  NETWORK_POLICY,
  QUESTA_TRAINING,
  SERVICE,
  TRAIN_JOB,
} from "../operator/questatraining-controller.ts";
import { type KubeTestCluster, startKubeTestCluster } from "./infra/kube-server.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubectlApply,
  mustTool,
  startTestOperator,
  type TestOperator,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";
import {
  installTrainerCrds,
  startTrainerControllers,
  type TrainerControllers,
} from "./infra/kube-trainer.ts";

// The operator side of the scale engines (#21 vLLM rollouts, #22 the torch learner) against a real
// kube-apiserver of this file's own, with kube-controller-manager (the Job controller makes the
// learner's pods, the garbage collector deletes what a deleted run owned): first without Kubeflow
// Trainer (the Indexed Job fallback), then with Trainer's and JobSet's CRDs and controllers (built from
// the Go module proxy, test/infra/kube-trainer.ts): the TrainJob, and what Trainer and JobSet make of it.
// Its own cluster, because installing CRDs is cluster-wide and the shared one serves other files.

const POD: ResourceKind = { group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true };
const JOB_SET: ResourceKind = {
  group: "jobset.x-k8s.io",
  version: "v1alpha2",
  kind: "JobSet",
  plural: "jobsets",
  namespaced: true,
};

let cluster: KubeTestCluster;
let admin: ClientNodeKubeApi;
let namespace: string;
let test: TestOperator | undefined;
let trainer: TrainerControllers | undefined;

const torchSpec = (extra = "") => `
model: { source: huggingface, uri: "s3://models/qwen2.5-1.5b/" }
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
learner:
  engine: torch
  torch: { nodes: 2, image: "registry.example/questa-torch:1" }
  resources: { cpu: "1", memory: 1Gi, gpus: 2 }
storage:
  bucket: questa-runs
  endpoint: http://minio.storage:9000
  credentialsSecretRef: { name: s3-credentials }
${extra}`;

const vllmSpec = `
model: { source: huggingface, uri: "s3://models/qwen2.5-1.5b/" }
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
rollout:
  engine: vllm
  vllm: { replicas: 2, resources: { cpu: "1", memory: 1Gi, gpus: 1 }, maxModelLength: 4096 }
storage:
  bucket: questa-runs
  endpoint: http://minio.storage:9000
  credentialsSecretRef: { name: s3-credentials }
`;

type Env = { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
type PodSpec = {
  hostname?: string;
  subdomain?: string;
  restartPolicy?: string;
  containers: {
    name: string;
    image: string;
    args?: string[];
    env: Env;
    volumeMounts?: unknown[];
  }[];
  volumes?: unknown[];
  securityContext?: unknown;
  initContainers?: { name: string; args?: string[] }[];
};
type Labels = Record<string, string>;
/** the part of the operator's runtime patch a test compares with what Trainer and JobSet made */
type RuntimePatch = {
  trainingRuntimeSpec: {
    template: {
      spec: {
        replicatedJobs: {
          template: {
            metadata: { labels: Labels };
            spec: { template: { metadata: { labels: Labels }; spec: PodSpec } };
          };
        }[];
      };
    };
  };
};
const envOf = (env: Env) => new Map(env.map((e) => [e.name, e]));

const get = (kind: ResourceKind, name: string) => admin.get(kind, name, namespace);
const gone = (kind: ResourceKind, name: string) => async () =>
  (await get(kind, name)) === undefined ? true : undefined;

async function startOperator(instance: string): Promise<void> {
  test = startTestOperator(cluster.operatorKubeconfig, { instance, namespace });
  await test.operator.start();
}

async function deleteRun(name: string): Promise<void> {
  await mustTool(cluster.binDir, "kubectl", [
    "--kubeconfig",
    cluster.kubeconfig,
    "-n",
    namespace,
    "delete",
    "qt",
    name,
    "--wait=false",
  ]);
  await eventually(`${name} deleted`, gone(QUESTA_TRAINING, name), 30_000);
}

beforeAll(async () => {
  cluster = await startKubeTestCluster({ workloads: true });
  admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: cluster.kubeconfig }));
  await installChart(cluster.binDir, cluster.kubeconfig, cluster.operatorNamespace);
  namespace = await createNamespace(cluster.binDir, cluster.kubeconfig, "engines");
  await startOperator("engines-no-trainer");
}, 240_000);

afterAll(async () => {
  await test?.operator.stop();
  await trainer?.stop();
  await cluster?.stop();
});

describe("the torch learner and the vLLM servers on a real API server", () => {
  it("without Kubeflow Trainer: an Indexed Job and a headless Service; the Job controller's pods get rank and master", async () => {
    const applied = await kubectlApply(
      cluster.binDir,
      cluster.kubeconfig,
      trainingYaml(namespace, "tl", torchSpec()),
    );
    expect(applied.stderr).toBe("");
    const job = await eventually("learner job", () => get(JOB, "tl-learn"));
    expect(job.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "QuestATraining", name: "tl", controller: true }),
    ]);
    const spec = job.spec as {
      completionMode: string;
      completions: number;
      parallelism: number;
      backoffLimit: number;
      suspend: boolean;
      template: { spec: PodSpec };
    };
    expect(spec).toMatchObject({
      completionMode: "Indexed",
      completions: 2,
      parallelism: 2,
      backoffLimit: 6,
      suspend: false,
    });
    const container = spec.template.spec.containers[0]!;
    expect(container.image).toBe("registry.example/questa-torch:1");
    expect(container.args).toEqual(["function", "learn", "--config", "/etc/questa/training.yaml"]);
    const env = envOf(container.env);
    expect(env.get("PET_NNODES")?.value).toBe("2");
    expect(env.get("PET_NPROC_PER_NODE")?.value).toBe("2");
    expect(env.get("PET_MASTER_ADDR")?.value).toBe("tl-learn-0.tl-learn");
    expect(env.get("PET_MASTER_PORT")?.value).toBe("29500");
    expect(env.get("QUESTA_KAFKA_BROKERS")?.value).toBe("kafka-0.kafka:9092");
    expect(env.get("QUESTA_S3_BUCKET")?.value).toBe("questa-runs");

    const service = await eventually("learner service", () => get(SERVICE, "tl-learn"));
    expect(service.spec).toMatchObject({
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: { "questa.dev/run": "tl", "app.kubernetes.io/component": "learn" },
    });
    await eventually("augment deployment", () => get(DEPLOYMENT, "tl-augment"));
    expect(await get(DEPLOYMENT, "tl-learn")).toBeUndefined();

    // what the pods become: the Job controller names pod i's host tl-learn-i and annotates its index
    const pods = await eventually("two learner pods", async () => {
      const list = await admin.list(POD, namespace, "batch.kubernetes.io/job-name=tl-learn");
      return list.items.length === 2 ? list.items : undefined;
    });
    const byIndex = new Map(
      pods.map((pod) => [pod.metadata.annotations?.["batch.kubernetes.io/job-completion-index"], pod]),
    );
    expect([...byIndex.keys()].sort()).toEqual(["0", "1"]);
    const first = byIndex.get("0")!.spec as PodSpec;
    expect(first).toMatchObject({ hostname: "tl-learn-0", subdomain: "tl-learn", restartPolicy: "Never" });
    expect(envOf(first.containers[0]!.env).get("PET_NODE_RANK")?.valueFrom?.fieldRef?.fieldPath).toBe(
      "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    );
  });

  it("suspending the run suspends the learner Job in place", async () => {
    const before = (await get(JOB, "tl-learn"))!;
    await mustTool(cluster.binDir, "kubectl", [
      "--kubeconfig",
      cluster.kubeconfig,
      "-n",
      namespace,
      "patch",
      "qt",
      "tl",
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { suspend: true } }),
    ]);
    const suspended = await eventually("suspended job", async () => {
      const job = await get(JOB, "tl-learn");
      return (job?.spec as { suspend?: boolean } | undefined)?.suspend === true ? job : undefined;
    });
    expect(suspended.metadata.uid).toBe(before.metadata.uid);
  });

  it("vLLM: the servers' Deployment, headless Service and NetworkPolicy; the rollout workers point at them", async () => {
    const applied = await kubectlApply(
      cluster.binDir,
      cluster.kubeconfig,
      trainingYaml(namespace, "vl", vllmSpec),
    );
    expect(applied.stderr).toBe("");
    const servers = await eventually("vllm deployment", () => get(DEPLOYMENT, "vl-vllm"));
    const spec = servers.spec as { replicas: number; template: { spec: PodSpec } };
    expect(spec.replicas).toBe(2);
    const pod = spec.template.spec;
    expect(pod.initContainers?.[0]?.args).toEqual([
      "model",
      "fetch",
      "s3://models/qwen2.5-1.5b/",
      "/models/initial",
    ]);
    expect(pod.containers.map((c) => c.name)).toEqual(["vllm", "sync"]);
    expect(pod.containers[0]!.args).toContain("--max-model-len");
    expect(envOf(pod.containers[0]!.env).get("VLLM_SERVER_DEV_MODE")?.value).toBe("1");
    expect(envOf(pod.containers[1]!.env).get("QUESTA_VLLM_URL")?.value).toBe("http://127.0.0.1:8000");
    expect(await eventually("vllm service", () => get(SERVICE, "vl-vllm"))).toMatchObject({
      spec: { clusterIP: "None", ports: [{ port: 8000 }] },
    });
    const policy = await eventually("vllm network policy", () => get(NETWORK_POLICY, "vl-vllm"));
    expect((policy.spec as { ingress: { ports: { port: number }[] }[] }).ingress[0]?.ports).toEqual([
      { protocol: "TCP", port: 8000 },
    ]);
    const rollout = await eventually("rollout deployment", () => get(DEPLOYMENT, "vl-rollout"));
    const rolloutEnv = envOf(
      (rollout.spec as { template: { spec: PodSpec } }).template.spec.containers[0]!.env,
    );
    expect(rolloutEnv.get("QUESTA_VLLM_ENDPOINTS")?.value).toBe(`http://vl-vllm.${namespace}.svc:8000`);
  });

  it("deleting the runs removes their jobs, services, servers and policies (owner references)", async () => {
    await deleteRun("tl");
    await deleteRun("vl");
    for (const [kind, name] of [
      [JOB, "tl-learn"],
      [SERVICE, "tl-learn"],
      [DEPLOYMENT, "vl-vllm"],
      [SERVICE, "vl-vllm"],
      [NETWORK_POLICY, "vl-vllm"],
    ] as const) {
      await eventually(`${kind.kind} ${name} collected`, gone(kind, name), 60_000);
    }
  });

  it("with Kubeflow Trainer and JobSet running: the TrainJob, its JobSet, the Indexed Job and headless Service they make, with the PET_* env, our image and args and the runtime patch", async () => {
    await test?.operator.stop();
    await installTrainerCrds(cluster.binDir, cluster.kubeconfig);
    trainer = await startTrainerControllers(cluster.binDir, cluster.kubeconfig);
    // a new operator: the old one asked discovery before the CRDs were there
    await startOperator("engines-trainer");
    const applied = await kubectlApply(
      cluster.binDir,
      cluster.kubeconfig,
      trainingYaml(namespace, "tt", torchSpec()),
    );
    expect(applied.stderr).toBe("");
    const train: KubeObject = await eventually("train job", () => get(TRAIN_JOB, "tt-learn"));
    expect(train.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "QuestATraining", name: "tt", controller: true }),
    ]);
    expect(train.spec).toMatchObject({
      runtimeRef: { name: "torch-distributed", kind: "ClusterTrainingRuntime" },
      suspend: false,
      trainer: {
        image: "registry.example/questa-torch:1",
        args: ["function", "learn", "--config", "/etc/questa/training.yaml"],
        numNodes: 2,
        numProcPerNode: 2,
        resourcesPerNode: { limits: { "nvidia.com/gpu": "2" } },
      },
      runtimePatches: [{ manager: "questa.dev/operator" }],
    });
    const trainSpec = train.spec as { trainer: { env: Env }; runtimePatches: RuntimePatch[] };
    const env = envOf(trainSpec.trainer.env);
    expect(env.get("QUESTA_FUNCTION")?.value).toBe("learn");
    expect([...env.keys()].some((name) => name.startsWith("PET_"))).toBe(false);
    const patch = trainSpec.runtimePatches[0]!.trainingRuntimeSpec.template.spec.replicatedJobs[0]!.template;
    const patchedPod = patch.spec.template;
    expect(patchedPod.spec.volumes?.length).toBeGreaterThan(0);

    // Trainer: the JobSet, owned by the TrainJob, with the runtime's one replicated job "node"
    const jobSet = await eventually("JobSet", () => get(JOB_SET, "tt-learn"));
    expect(jobSet.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "TrainJob", name: "tt-learn", controller: true }),
    ]);
    const replicated = (jobSet.spec as { replicatedJobs: { name: string; replicas: number }[] })
      .replicatedJobs;
    expect(replicated.map((r) => [r.name, r.replicas])).toEqual([["node", 1]]);

    // JobSet: the Indexed Job of 2 pods, and the headless Service their hostnames resolve in
    const job = await eventually("the JobSet's Indexed Job", () => get(JOB, "tt-learn-node-0"));
    expect(job.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "JobSet", name: "tt-learn", controller: true }),
    ]);
    const jobSpec = job.spec as {
      completionMode: string;
      completions: number;
      parallelism: number;
      template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    };
    expect(jobSpec).toMatchObject({ completionMode: "Indexed", completions: 2, parallelism: 2 });
    expect(job.metadata.labels).toMatchObject(patch.metadata.labels);
    const pod = jobSpec.template;
    expect(pod.metadata.labels).toMatchObject(patchedPod.metadata.labels);
    expect(pod.spec.volumes).toEqual(patchedPod.spec.volumes);
    expect(pod.spec.securityContext).toEqual(patchedPod.spec.securityContext);
    expect(pod.spec.subdomain).toBe("tt-learn");
    const node = pod.spec.containers.find((c) => c.name === "node");
    expect(node?.image).toBe("registry.example/questa-torch:1");
    expect(node?.args).toEqual(["function", "learn", "--config", "/etc/questa/training.yaml"]);
    expect(node?.volumeMounts).toEqual(patchedPod.spec.containers[0]?.volumeMounts);
    const nodeEnv = envOf(node?.env ?? []);
    expect(nodeEnv.get("QUESTA_FUNCTION")?.value).toBe("learn");
    expect(nodeEnv.get("PET_NNODES")?.value).toBe("2");
    expect(nodeEnv.get("PET_NPROC_PER_NODE")?.value).toBe("2");
    expect(nodeEnv.get("PET_NODE_RANK")?.valueFrom?.fieldRef?.fieldPath).toBe(
      "metadata.annotations['batch.kubernetes.io/job-completion-index']",
    );
    expect(nodeEnv.get("PET_MASTER_ADDR")?.value).toBe("tt-learn-node-0-0.tt-learn");
    expect(nodeEnv.get("PET_MASTER_PORT")?.value).toBe("29500");

    const service = await eventually("the JobSet's headless Service", () => get(SERVICE, "tt-learn"));
    expect(service.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "JobSet", name: "tt-learn", controller: true }),
    ]);
    expect(service.spec).toMatchObject({
      clusterIP: "None",
      publishNotReadyAddresses: true,
      selector: { "jobset.sigs.k8s.io/jobset-name": "tt-learn" },
    });
    // the Job controller's pods pass JobSet's pod webhooks
    const pods = await eventually("two JobSet pods", async () => {
      const list = await admin.list(POD, namespace, "batch.kubernetes.io/job-name=tt-learn-node-0");
      return list.items.length === 2 ? list.items : undefined;
    });
    expect(
      pods.map((p) => p.metadata.annotations?.["batch.kubernetes.io/job-completion-index"]).sort(),
    ).toEqual(["0", "1"]);
    expect(await get(JOB, "tt-learn")).toBeUndefined();

    await deleteRun("tt");
    for (const [kind, name] of [
      [TRAIN_JOB, "tt-learn"],
      [JOB_SET, "tt-learn"],
      [JOB, "tt-learn-node-0"],
      [SERVICE, "tt-learn"],
    ] as const) {
      await eventually(`${kind.kind} ${name} collected`, gone(kind, name), 60_000);
    }
  });
});
