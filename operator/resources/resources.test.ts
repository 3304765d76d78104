import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  type QuestATrainingSpec,
  QuestATrainingSpecSchema,
} from "../../functions/contracts/questatraining.ts";
import { kafkaConnectionConfigFromEnv } from "../../functions/runtime/kafka-bus.ts";
import { buildConfigMap, configHash, renderTrainingConfig } from "./config-map.ts";
import { derivedRunNames, FUNCTIONS, legacyRunNames, type RunRef } from "./names.ts";
import { buildNetworkPolicy } from "./network-policy.ts";
import { runTopics } from "./topics.ts";
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
