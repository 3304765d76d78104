import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  type QuestATrainingSpec,
  QuestATrainingSpecSchema,
} from "../../functions/contracts/questatraining.ts";
import { kafkaConnectionConfigFromEnv } from "../../functions/runtime/kafka-bus.ts";
import { buildConfigMap, configHash, renderTrainingConfig } from "./config-map.ts";
import { derivedRunNames, engineNameIssues, FUNCTIONS, legacyRunNames, type RunRef } from "./names.ts";
import { buildLearnerPeersPolicy, buildNetworkPolicy } from "./network-policy.ts";
import { runTopics } from "./topics.ts";
import {
  buildLearnerJob,
  buildLearnerService,
  buildTrainJob,
  learnerJobAction,
  learnerJobFailure,
} from "./torch-learner.ts";
import {
  buildVllmDeployment,
  buildVllmNetworkPolicy,
  buildVllmService,
  vllmServerArgs,
} from "./vllm-servers.ts";
import { buildWorkload, functionEnv, resourceRequirements } from "./workloads.ts";

const run: RunRef = { name: "demo", namespace: "ml", uid: "uid-1" };

function specOf(input: Record<string, unknown>): QuestATrainingSpec {
  return QuestATrainingSpecSchema.parse({ datasets: { train: [{ name: "hard", synthetic: {} }] }, ...input });
}

const names = derivedRunNames(run, specOf({}));
const options = { defaultImage: "questa:1", configHash: "abc", names };

type Container = {
  env: { name: string; value?: string; valueFrom?: unknown }[];
  resources: { limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts: { name: string; mountPath: string }[];
  image: string;
};
type PodSpec = {
  containers: Container[];
  nodeSelector?: unknown;
  tolerations?: unknown;
  volumes: { name: string; emptyDir?: { sizeLimit?: string } }[];
  securityContext: Record<string, unknown>;
};
const podOf = (object: ReturnType<typeof buildWorkload>) =>
  (object.spec as { template: { spec: PodSpec } }).template.spec;

describe("runTopics", () => {
  it("derives one topic per logical event topic plus dead-letter under the run's prefix", () => {
    const topics = runTopics(
      names.topicPrefix,
      specOf({ kafka: { partitions: 3, replicationFactor: 2 } }).kafka,
    );
    expect(topics.map((t) => t.name)).toEqual([
      "questa.ml.demo.checkpoints",
      "questa.ml.demo.evaluations",
      "questa.ml.demo.questions",
      "questa.ml.demo.rollouts",
      "questa.ml.demo.status",
      "questa.ml.demo.dead-letter",
    ]);
    expect(topics.every((t) => t.partitions === 3 && t.replicationFactor === 2)).toBe(true);
  });

  it("honours a prefix under the run's own, and retention; refuses another run's prefix", () => {
    const spec = specOf({ kafka: { topicPrefix: "questa.ml.demo.v2", retentionMs: 1000 } });
    const topics = runTopics(derivedRunNames(run, spec).topicPrefix, spec.kafka);
    expect(() => derivedRunNames(run, specOf({ kafka: { topicPrefix: "team.x" } }))).toThrow(
      /not this run's: topic prefixes must be questa.ml.demo/,
    );
    expect(topics[0]).toEqual({
      name: "questa.ml.demo.v2.checkpoints",
      partitions: 8,
      replicationFactor: 1,
      retentionMs: 1000,
    });
  });
});

describe("buildConfigMap", () => {
  it("holds the validated spec with every default, owned by the run", () => {
    const spec = specOf({ rollout: { groupSize: 4 } });
    const config = buildConfigMap(run, spec);
    expect(config.metadata.ownerReferences).toEqual([
      {
        apiVersion: "questa.dev/v1alpha1",
        kind: "QuestATraining",
        name: "demo",
        uid: "uid-1",
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
    const file = parse((config.data as Record<string, string>)["training.yaml"]!) as {
      spec: QuestATrainingSpec;
    };
    expect(file.spec.rollout.groupSize).toBe(4);
    expect(file.spec.learner.learningRate).toBe(2e-5);
    expect(QuestATrainingSpecSchema.parse(file.spec)).toEqual(spec);
  });

  it("hashes the rendered config so a spec change changes the hash", () => {
    const a = configHash(renderTrainingConfig(run, specOf({})));
    const b = configHash(renderTrainingConfig(run, specOf({ seed: 1 })));
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(a).not.toBe(b);
  });
});

describe("buildWorkload", () => {
  const spec = specOf({
    rollout: {
      resources: { cpu: "4", memory: "16Gi", gpus: 2 },
      nodeSelector: { pool: "gpu" },
      tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
    },
    storage: { bucket: "runs", credentialsSecretRef: { name: "s3" }, caSecretRef: { name: "s3-ca" } },
    kafka: {
      brokers: ["k:9092"],
      tls: { secretRef: { name: "kafka-ca" }, clientCertificate: true },
      sasl: { mechanism: "plain", secretRef: { name: "kafka-user" } },
    },
  });

  it("requests GPUs and places rollout pods with the node selector and tolerations", () => {
    const pod = podOf(buildWorkload(run, spec, "rollout", 3, options));
    expect(pod.containers[0]!.resources.limits).toEqual({
      cpu: "4",
      memory: "16Gi",
      "ephemeral-storage": "10Gi",
      "nvidia.com/gpu": "2",
    });
    expect(pod.nodeSelector).toEqual({ pool: "gpu" });
    expect(pod.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);
  });

  it("runs every function non-root with a read-only root file system", () => {
    for (const fn of FUNCTIONS) {
      const pod = podOf(buildWorkload(run, spec, fn, 1, options));
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532 });
      expect(pod.containers[0]!.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ["ALL"] },
      });
      expect(pod.containers[0]!.volumeMounts.map((m) => m.mountPath)).toContain("/tmp");
      // scratch is bounded: the kubelet evicts a pod that writes more than it asked for
      const tmp = pod.volumes.find((v) => v.name === "tmp");
      expect(tmp?.emptyDir?.sizeLimit).toBe(fn === "augment" ? "2Gi" : "10Gi");
      expect(pod.containers[0]!.resources.limits["ephemeral-storage"]).toBe(tmp?.emptyDir?.sizeLimit);
    }
  });

  it("derives topics, groups and the object prefix from the recorded names, never from the spec alone", () => {
    const env = (n: typeof names) =>
      new Map((functionEnv(run, spec, "rollout", n) as Container["env"]).map((e) => [e.name, e.value]));
    const current = env(names);
    expect(current.get("QUESTA_TOPIC_PREFIX")).toBe("questa.ml.demo");
    expect(current.get("QUESTA_CONSUMER_GROUP")).toBe("questa.ml.demo.rollout");
    expect(current.get("QUESTA_S3_PREFIX")).toBe("questa/namespaces/ml/");
    expect(current.get("QUESTA_DATA_SOURCES")).toBe("object-store");
    // a run created before namespaced names keeps its keys so it resumes
    expect(env(legacyRunNames(run, spec)).get("QUESTA_S3_PREFIX")).toBe("questa/");
  });

  it("passes credentials only as secret references: mounted secret files and secretKeyRefs", () => {
    const env = functionEnv(run, spec, "learn", names) as Container["env"];
    const byName = new Map(env.map((e) => [e.name, e]));
    expect(byName.get("QUESTA_S3_SECRET_DIR")?.value).toBe("/etc/questa/s3-credentials");
    expect(byName.get("QUESTA_KAFKA_SASL_USERNAME")?.valueFrom).toEqual({
      secretKeyRef: { name: "kafka-user", key: "username" },
    });
    expect(byName.get("QUESTA_KAFKA_SASL_PASSWORD_FILE")?.value).toBe("/etc/questa/kafka-sasl/password");
    expect(byName.get("QUESTA_KAFKA_TLS_CA_FILE")?.value).toBe("/etc/questa/kafka-tls/ca.crt");
    // mutual TLS: the client certificate and key come from the same Secret
    expect(byName.get("QUESTA_KAFKA_TLS_CERT_FILE")?.value).toBe("/etc/questa/kafka-tls/tls.crt");
    expect(byName.get("QUESTA_KAFKA_TLS_KEY_FILE")?.value).toBe("/etc/questa/kafka-tls/tls.key");
    expect(byName.get("QUESTA_S3_CA_FILE")?.value).toBe("/etc/questa/s3-ca/ca.crt");
    // what the function's Kafka client makes of it: CA, client certificate and key from the Secret
    const plain = Object.fromEntries(env.flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
    expect(kafkaConnectionConfigFromEnv({ ...plain, QUESTA_KAFKA_SASL_USERNAME: "u" }).tls).toEqual({
      ca: "/etc/questa/kafka-tls/ca.crt",
      cert: "/etc/questa/kafka-tls/tls.crt",
      key: "/etc/questa/kafka-tls/tls.key",
      rejectUnauthorized: true,
    });
    expect(byName.get("QUESTA_S3_PREFIX")?.value).toBe("questa/namespaces/ml/");
    expect(byName.has("AWS_SECRET_ACCESS_KEY")).toBe(false);
    const pod = podOf(buildWorkload(run, spec, "learn", 1, options));
    const volumes = pod.volumes as { name: string; secret?: { secretName: string; defaultMode: number } }[];
    expect(
      volumes.filter((v) => v.secret).map((v) => [v.name, v.secret?.secretName, v.secret?.defaultMode]),
    ).toEqual([
      ["kafka-tls", "kafka-ca", 0o400],
      ["kafka-sasl", "kafka-user", 0o400],
      ["s3-credentials", "s3", 0o400],
      ["s3-ca", "s3-ca", 0o400],
    ]);
    const mounts = pod.containers[0]!.volumeMounts as {
      name: string;
      mountPath: string;
      readOnly?: boolean;
    }[];
    expect(mounts.find((m) => m.name === "s3-credentials")).toEqual({
      name: "s3-credentials",
      mountPath: "/etc/questa/s3-credentials",
      readOnly: true,
    });
  });

  it("uses the spec's image over the default, the learner never overlaps, CPU functions request no GPU", () => {
    const withImage = specOf({ image: "custom:2" });
    expect(podOf(buildWorkload(run, withImage, "augment", 1, options)).containers[0]!.image).toBe("custom:2");
    expect(podOf(buildWorkload(run, spec, "augment", 1, options)).containers[0]!.image).toBe("questa:1");
    const learn = buildWorkload(run, spec, "learn", 1, options);
    expect((learn.spec as { strategy: unknown }).strategy).toEqual({ type: "Recreate" });
    expect(
      podOf(buildWorkload(run, spec, "augment", 1, options)).containers[0]!.resources.limits,
    ).not.toHaveProperty("nvidia.com/gpu");
    expect(buildWorkload(run, spec, "rollout", 0, options).spec).toMatchObject({ replicas: 0 });
  });

  it("resourceRequirements sets requests equal to limits", () => {
    expect(resourceRequirements({ cpu: "1", memory: "1Gi", gpus: 1, scratch: "5Gi" })).toEqual({
      requests: { cpu: "1", memory: "1Gi", "ephemeral-storage": "5Gi", "nvidia.com/gpu": "1" },
      limits: { cpu: "1", memory: "1Gi", "ephemeral-storage": "5Gi", "nvidia.com/gpu": "1" },
    });
  });

  it("a NetworkPolicy admits only metrics scrapes from the given peers, or nothing", () => {
    const monitoring = {
      namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
    };
    const policy = buildNetworkPolicy(run, { metricsFrom: [monitoring] });
    expect(policy.metadata.ownerReferences?.[0]?.uid).toBe("uid-1");
    expect(policy.spec).toEqual({
      podSelector: {
        matchLabels: { "questa.dev/run": "demo", "app.kubernetes.io/managed-by": "questa-operator" },
      },
      policyTypes: ["Ingress"],
      ingress: [{ from: [monitoring], ports: [{ protocol: "TCP", port: 9090 }] }],
    });
    expect((buildNetworkPolicy(run, { metricsFrom: [] }).spec as { ingress: unknown[] }).ingress).toEqual([]);
  });
});

type EnvVar = { name: string; value?: string; valueFrom?: unknown };
const envOf = (container: { env: EnvVar[] }) => new Map(container.env.map((e) => [e.name, e]));

describe("the torch learner", () => {
  const torchSpec = (extra: Record<string, unknown> = {}) =>
    specOf({
      model: { source: "huggingface", uri: "s3://models/qwen/" },
      learner: {
        engine: "torch",
        torch: { nodes: 2, image: "questa-torch:1" },
        resources: { cpu: "16", memory: "128Gi", gpus: 4 },
        nodeSelector: { pool: "h100" },
      },
      storage: { bucket: "runs", credentialsSecretRef: { name: "s3" } },
      ...extra,
    });

  it("without Trainer: an Indexed Job whose pods learn with the rendezvous at node 0, and its headless Service", () => {
    const spec = torchSpec();
    const job = buildLearnerJob(run, spec, true, options);
    expect(job.metadata).toMatchObject({
      name: "demo-learn",
      labels: { "questa.dev/run": "demo", "app.kubernetes.io/component": "learn" },
      ownerReferences: [{ kind: "QuestATraining", uid: "uid-1", controller: true }],
    });
    expect(job.metadata.annotations?.["questa.dev/template-hash"]).toMatch(/^[0-9a-f]{16}$/);
    const jobSpec = job.spec as {
      completionMode: string;
      completions: number;
      parallelism: number;
      backoffLimit: number;
      podFailurePolicy: unknown;
      suspend: boolean;
      template: { spec: PodSpec & { restartPolicy: string; subdomain: string } };
    };
    expect(jobSpec).toMatchObject({
      completionMode: "Indexed",
      completions: 2,
      parallelism: 2,
      backoffLimit: 6,
      suspend: false,
      podFailurePolicy: { rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget" }] }] },
    });
    const pod = jobSpec.template.spec;
    expect(pod.restartPolicy).toBe("Never");
    expect(pod.subdomain).toBe("demo-learn");
    expect(pod.nodeSelector).toEqual({ pool: "h100" });
    const container = pod.containers[0]! as Container & {
      args: string[];
      ports: { containerPort: number }[];
    };
    expect(container.image).toBe("questa-torch:1");
    // the same process as the onnx learner's Deployment runs: it starts torchrun itself
    expect(container.args).toEqual(["function", "learn", "--config", "/etc/questa/training.yaml"]);
    expect(container.resources.limits["nvidia.com/gpu"]).toBe("4");
    expect(container.ports.map((p) => p.containerPort)).toEqual([9090, 29500]);
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, runAsNonRoot: true });
    expect(container.volumeMounts.map((m) => m.mountPath)).toEqual([
      "/etc/questa",
      "/tmp",
      "/dev/shm",
      "/etc/questa/s3-credentials",
    ]);
    const env = envOf(container);
    expect(env.get("PET_NNODES")?.value).toBe("2");
    expect(env.get("PET_NPROC_PER_NODE")?.value).toBe("4");
    expect(env.get("PET_NODE_RANK")?.valueFrom).toEqual({
      fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" },
    });
    expect(env.get("PET_MASTER_ADDR")?.value).toBe("demo-learn-0.demo-learn");
    expect(env.get("PET_MASTER_PORT")?.value).toBe("29500");
    // the learner's usual environment: run, Kafka, S3
    expect(env.get("QUESTA_FUNCTION")?.value).toBe("learn");
    expect(env.get("QUESTA_CONSUMER_GROUP")?.value).toBe("questa.ml.demo.learn");
    expect(env.get("QUESTA_S3_BUCKET")?.value).toBe("runs");

    expect(buildLearnerService(run)).toMatchObject({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "demo-learn", ownerReferences: [{ uid: "uid-1" }] },
      spec: {
        clusterIP: "None",
        publishNotReadyAddresses: true,
        selector: { "questa.dev/run": "demo", "app.kubernetes.io/component": "learn" },
        ports: [{ name: "rendezvous", port: 29500 }],
      },
    });
  });

  it("one process per GPU by default, one on the CPU, or as set", () => {
    const nproc = (spec: QuestATrainingSpec) =>
      envOf(
        (buildLearnerJob(run, spec, true, options).spec as { template: { spec: PodSpec } }).template.spec
          .containers[0]!,
      ).get("PET_NPROC_PER_NODE")?.value;
    expect(nproc(torchSpec())).toBe("4");
    const cpu = torchSpec({
      learner: { engine: "torch", resources: { gpus: 0 } },
    });
    expect(nproc(cpu)).toBe("1");
    expect(
      nproc(
        torchSpec({ learner: { engine: "torch", torch: { processesPerNode: 2 }, resources: { gpus: 8 } } }),
      ),
    ).toBe("2");
  });

  it("suspends in place: the template hash ignores suspend and follows every other change", () => {
    const spec = torchSpec();
    const running = buildLearnerJob(run, spec, true, options);
    const suspended = buildLearnerJob(run, spec, false, options);
    expect((suspended.spec as { suspend: boolean }).suspend).toBe(true);
    const hash = (o: typeof running) => o.metadata.annotations?.["questa.dev/template-hash"];
    expect(hash(suspended)).toBe(hash(running));
    expect(hash(buildLearnerJob(run, spec, true, { ...options, configHash: "other" }))).not.toBe(
      hash(running),
    );
    expect(learnerJobAction(undefined, running)).toBe("create");
    expect(learnerJobAction(suspended, running)).toBe("apply");
    expect(learnerJobAction(buildLearnerJob(run, spec, true, { ...options, configHash: "x" }), running)).toBe(
      "replace",
    );
    const deleting = {
      ...running,
      metadata: { ...running.metadata, deletionTimestamp: "2026-01-01T00:00:00Z" },
    };
    expect(learnerJobAction(deleting, running)).toBe("wait");
    const failed = {
      ...running,
      status: {
        conditions: [
          {
            type: "Failed",
            status: "True",
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
          },
        ],
      },
    };
    expect(learnerJobAction(failed, running)).toBe("leave");
    expect(learnerJobFailure(failed)).toBe(
      "the learner's Job demo-learn failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
    );
    expect(learnerJobFailure(running)).toBeUndefined();
  });

  it("with Trainer: a TrainJob on torch-distributed, its pods patched like the function pods", () => {
    const train = buildTrainJob(run, torchSpec(), true, options);
    expect(train).toMatchObject({
      apiVersion: "trainer.kubeflow.org/v1alpha1",
      kind: "TrainJob",
      metadata: { name: "demo-learn", ownerReferences: [{ uid: "uid-1", controller: true }] },
    });
    const spec = train.spec as {
      runtimeRef: unknown;
      suspend: boolean;
      trainer: {
        image: string;
        args: string[];
        env: EnvVar[];
        numNodes: number;
        numProcPerNode: number;
        resourcesPerNode: { requests: Record<string, string>; limits: Record<string, string> };
      };
      runtimePatches: {
        manager: string;
        trainingRuntimeSpec: {
          template: {
            spec: {
              replicatedJobs: {
                name: string;
                template: {
                  spec: {
                    template: {
                      metadata: { labels: Record<string, string> };
                      spec: PodSpec & { containers: { name: string }[] };
                    };
                  };
                };
              }[];
            };
          };
        };
      }[];
    };
    expect(spec.runtimeRef).toEqual({
      name: "torch-distributed",
      apiGroup: "trainer.kubeflow.org",
      kind: "ClusterTrainingRuntime",
    });
    expect(spec.suspend).toBe(false);
    expect(spec.trainer).toMatchObject({
      image: "questa-torch:1",
      args: ["function", "learn", "--config", "/etc/questa/training.yaml"],
      numNodes: 2,
      numProcPerNode: 4,
    });
    expect(spec.trainer.resourcesPerNode.requests["nvidia.com/gpu"]).toBe("4");
    // Trainer sets the PET_* variables itself and refuses them here
    expect(spec.trainer.env.some((e) => e.name.startsWith("PET_"))).toBe(false);
    expect(envOf(spec.trainer).get("QUESTA_KAFKA_BROKERS")?.value).toBe("");
    const patch = spec.runtimePatches[0]!;
    expect(patch.manager).toBe("questa.dev/operator");
    const replicated = patch.trainingRuntimeSpec.template.spec.replicatedJobs[0]!;
    expect(replicated.name).toBe("node");
    const pod = replicated.template.spec.template;
    expect(pod.metadata.labels).toMatchObject({
      "questa.dev/run": "demo",
      "app.kubernetes.io/component": "learn",
    });
    expect(pod.spec.containers[0]!.name).toBe("node");
    expect(pod.spec.volumes.map((v) => v.name)).toEqual(["config", "tmp", "dshm", "s3-credentials"]);
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(pod.spec.nodeSelector).toEqual({ pool: "h100" });
  });

  it("a NetworkPolicy lets the learner pods reach each other on every port, and nothing else", () => {
    const learners = {
      matchLabels: {
        "questa.dev/run": "demo",
        "app.kubernetes.io/managed-by": "questa-operator",
        "app.kubernetes.io/component": "learn",
      },
    };
    expect(buildLearnerPeersPolicy(run).spec).toEqual({
      podSelector: learners,
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ podSelector: learners }] }],
    });
  });
});

describe("the vLLM servers", () => {
  const vllmSpec = (vllm: Record<string, unknown> = {}) =>
    specOf({
      model: { source: "huggingface", uri: "s3://models/qwen/" },
      rollout: { engine: "vllm", vllm },
      storage: { bucket: "runs", endpoint: "http://minio:9000", credentialsSecretRef: { name: "s3" } },
      kafka: { brokers: ["k:9092"], sasl: { mechanism: "scram-sha-512", secretRef: { name: "kafka-user" } } },
    });

  type VllmPod = {
    initContainers: (Container & { name: string; args: string[] })[];
    containers: (Container & {
      name: string;
      command?: string[];
      args: string[];
      startupProbe?: { httpGet: { path: string }; failureThreshold: number; periodSeconds: number };
      readinessProbe?: { httpGet: { path: string; port: string } };
    })[];
    volumes: { name: string; emptyDir?: { sizeLimit?: string; medium?: string } }[];
    nodeSelector?: unknown;
    tolerations?: unknown;
  };

  it("renders a Deployment: the model fetched first, the server, and the sidecar that reloads it", () => {
    const spec = vllmSpec({
      replicas: 3,
      tensorParallelSize: 2,
      dtype: "bfloat16",
      maxModelLength: 8192,
      gpuMemoryUtilization: 0.85,
      extraArgs: ["--enable-prefix-caching"],
      resources: { cpu: "8", memory: "64Gi", gpus: 2, scratch: "40Gi" },
      nodeSelector: { pool: "h100" },
      tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
    });
    const deployment = buildVllmDeployment(run, spec, 3, options);
    expect(deployment.metadata).toMatchObject({
      name: "demo-vllm",
      labels: { "questa.dev/run": "demo", "app.kubernetes.io/component": "vllm" },
      ownerReferences: [{ uid: "uid-1", controller: true }],
    });
    const dSpec = deployment.spec as { replicas: number; strategy: unknown; template: { spec: VllmPod } };
    expect(dSpec.replicas).toBe(3);
    expect(dSpec.strategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
    });
    const pod = dSpec.template.spec;
    expect(pod.nodeSelector).toEqual({ pool: "h100" });
    expect(pod.tolerations).toEqual([{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }]);

    const fetch = pod.initContainers[0]!;
    expect(fetch.image).toBe("questa:1");
    expect(fetch.args).toEqual(["model", "fetch", "s3://models/qwen/", "/models/initial"]);
    const fetchEnv = envOf(fetch);
    expect(fetchEnv.get("QUESTA_S3_ENDPOINT")?.value).toBe("http://minio:9000");
    expect(fetchEnv.get("QUESTA_S3_SECRET_DIR")?.value).toBe("/etc/questa/s3-credentials");
    expect(fetchEnv.has("QUESTA_KAFKA_SASL_USERNAME")).toBe(false);
    expect(fetch.volumeMounts.map((m) => m.mountPath)).toEqual([
      "/models",
      "/tmp",
      "/etc/questa/s3-credentials",
    ]);

    const [server, sync] = pod.containers;
    expect(server!.name).toBe("vllm");
    expect(server!.image).toBe("vllm/vllm-openai:v0.32.0");
    expect(server!.command).toEqual(["python3", "-m", "vllm.entrypoints.openai.api_server"]);
    expect(server!.args).toEqual([
      "--host",
      "0.0.0.0",
      "--port",
      "8000",
      "--model",
      "/models/initial",
      "--served-model-name",
      "demo",
      "--max-model-len",
      "8192",
      "--dtype",
      "bfloat16",
      "--logprobs-mode",
      "raw_logprobs",
      "--tensor-parallel-size",
      "2",
      "--gpu-memory-utilization",
      "0.85",
      "--enable-prefix-caching",
    ]);
    expect(envOf(server!).get("VLLM_SERVER_DEV_MODE")?.value).toBe("1");
    expect(envOf(server!).get("HF_HUB_OFFLINE")?.value).toBe("1");
    expect(server!.resources.limits).toEqual({
      cpu: "8",
      memory: "64Gi",
      "ephemeral-storage": "40Gi",
      "nvidia.com/gpu": "2",
    });
    expect(server!.readinessProbe?.httpGet).toEqual({ path: "/health", port: "http" });
    // up to 30 minutes to load a model before the kubelet gives up
    expect(server!.startupProbe!.failureThreshold * server!.startupProbe!.periodSeconds).toBe(1800);
    expect(server!.volumeMounts).toContainEqual({ name: "models", mountPath: "/models", readOnly: true });

    expect(sync!.name).toBe("sync");
    expect(sync!.args).toEqual(["function", "vllm-sync", "--config", "/etc/questa/training.yaml"]);
    const syncEnv = envOf(sync!);
    expect(syncEnv.get("QUESTA_VLLM_URL")?.value).toBe("http://127.0.0.1:8000");
    expect(syncEnv.get("QUESTA_VLLM_MODEL_DIR")?.value).toBe("/models");
    expect(syncEnv.get("QUESTA_KAFKA_BROKERS")?.value).toBe("k:9092");
    expect(syncEnv.get("QUESTA_KAFKA_SASL_USERNAME")?.valueFrom).toEqual({
      secretKeyRef: { name: "kafka-user", key: "username" },
    });
    // every server reloads every checkpoint: a consumer group per pod
    expect(syncEnv.get("QUESTA_POD_NAME")?.valueFrom).toEqual({ fieldRef: { fieldPath: "metadata.name" } });
    expect(syncEnv.get("QUESTA_CONSUMER_GROUP")?.value).toBe("questa.ml.demo.vllm-sync.$(QUESTA_POD_NAME)");
    expect(sync!.env.findIndex((e) => e.name === "QUESTA_POD_NAME")).toBeLessThan(
      sync!.env.findIndex((e) => e.name === "QUESTA_CONSUMER_GROUP"),
    );
    expect(sync!.volumeMounts).toContainEqual({ name: "models", mountPath: "/models" });
    expect(pod.volumes.find((v) => v.name === "models")?.emptyDir).toEqual({ sizeLimit: "40Gi" });
    expect(pod.volumes.find((v) => v.name === "dshm")?.emptyDir).toEqual({ medium: "Memory" });
  });

  it("omits --max-model-len when unset, and wires the rollout workers to the headless Service", () => {
    const spec = vllmSpec();
    expect(vllmServerArgs(run, spec)).not.toContain("--max-model-len");
    const service = buildVllmService(run);
    expect(service.spec).toEqual({
      clusterIP: "None",
      selector: { "questa.dev/run": "demo", "app.kubernetes.io/component": "vllm" },
      ports: [{ name: "http", port: 8000, targetPort: 8000, protocol: "TCP" }],
    });
    const rolloutEnv = envOf({ env: functionEnv(run, spec, "rollout", names) as EnvVar[] });
    expect(rolloutEnv.get("QUESTA_VLLM_ENDPOINTS")?.value).toBe("http://demo-vllm.ml.svc:8000");
    expect(
      envOf({ env: functionEnv(run, spec, "learn", names) as EnvVar[] }).has("QUESTA_VLLM_ENDPOINTS"),
    ).toBe(false);
    expect(
      envOf({ env: functionEnv(run, specOf({}), "rollout", names) as EnvVar[] }).has("QUESTA_VLLM_ENDPOINTS"),
    ).toBe(false);
  });

  it("a NetworkPolicy admits only the run's rollout workers and servers to port 8000", () => {
    const selector = (component: string) => ({
      podSelector: {
        matchLabels: {
          "questa.dev/run": "demo",
          "app.kubernetes.io/managed-by": "questa-operator",
          "app.kubernetes.io/component": component,
        },
      },
    });
    expect(buildVllmNetworkPolicy(run).spec).toEqual({
      ...selector("vllm"),
      policyTypes: ["Ingress"],
      ingress: [{ from: [selector("rollout"), selector("vllm")], ports: [{ protocol: "TCP", port: 8000 }] }],
    });
  });
});

describe("engineNameIssues", () => {
  const at = (name: string) => ({ ...run, name });
  const torch = specOf({ model: { source: "huggingface", uri: "s3://m/x/" }, learner: { engine: "torch" } });
  const vllm = specOf({ model: { source: "huggingface", uri: "s3://m/x/" }, rollout: { engine: "vllm" } });

  it("accepts names that fit, and says how long a name may be when one does not", () => {
    expect(engineNameIssues(at("a".repeat(48)), torch)).toEqual([]);
    expect(engineNameIssues(at("a".repeat(58)), vllm)).toEqual([]);
    expect(engineNameIssues(at("a".repeat(63)), specOf({}))).toEqual([]);
    const [tooLong] = engineNameIssues(at("a".repeat(49)), torch);
    expect(tooLong).toMatchObject({ path: "metadata.name", hint: "use a run name of at most 48 characters" });
    expect(tooLong?.message).toContain("learner.engine torch");
    expect(tooLong?.message).toContain("-learn-node-0-0 (64 characters)");
    const elevenNodes = specOf({
      model: { source: "huggingface", uri: "s3://m/x/" },
      learner: { engine: "torch", torch: { nodes: 11 } },
    });
    expect(engineNameIssues(at("a".repeat(48)), elevenNodes)[0]?.hint).toBe(
      "use a run name of at most 47 characters",
    );
    expect(engineNameIssues(at("a".repeat(59)), vllm)[0]?.hint).toBe(
      "use a run name of at most 58 characters",
    );
  });

  it("refuses a name starting with a digit: Service names start with a letter", () => {
    const [issue] = engineNameIssues(at("7b-run"), vllm);
    expect(issue).toMatchObject({ path: "metadata.name", hint: "use a run name that starts with a letter" });
    expect(engineNameIssues(at("7b-run"), specOf({}))).toEqual([]);
  });
});
