import type { QuestATrainingSpec, Resources, Toleration } from "../../functions/contracts/questatraining.ts";
import { functionGroup } from "../../functions/contracts/run-names.ts";
import type { KubeObject } from "../kube-api.ts";
import { CONFIG_FILE, CONFIG_MOUNT_DIR } from "./config-map.ts";
import {
  CONFIG_HASH_ANNOTATION,
  configMapName,
  consumerGroup,
  type FunctionName,
  ownerReference,
  RUN_LABEL,
  type RunNames,
  type RunRef,
  runLabels,
  VLLM_SYNC,
  vllmEndpoints,
  workloadName,
} from "./names.ts";

export const GPU_RESOURCE = "nvidia.com/gpu";
export const KAFKA_TLS_DIR = "/etc/questa/kafka-tls";
export const KAFKA_SASL_DIR = "/etc/questa/kafka-sasl";
export const S3_CREDENTIALS_DIR = "/etc/questa/s3-credentials";
export const S3_CA_DIR = "/etc/questa/s3-ca";
/** QUESTA_DATA_SOURCES on pods: datasets and models only from the object store, never local files */
export const OBJECT_STORE_ONLY = "object-store";
export const METRICS_PORT = 9090;
/** uid/gid of the distroless "nonroot" user the function image runs as */
export const NON_ROOT_UID = 65532;

export interface WorkloadOptions {
  /** image of the functions when the spec names none (the operator's own image) */
  defaultImage: string;
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  /** the augment function has no section in the spec; it runs on the CPU with these resources */
  augmentResources?: Resources;
  /** hash of the rendered config: a spec change rolls the pods */
  configHash: string;
  /** the run's recorded names (topic prefix, object-store prefix) */
  names: RunNames;
}

export type Replicas = Record<FunctionName, number>;

export interface Placement {
  resources: Resources;
  nodeSelector?: Record<string, string> | undefined;
  tolerations?: Toleration[] | undefined;
}

export function placementOf(spec: QuestATrainingSpec, fn: FunctionName, options: WorkloadOptions): Placement {
  switch (fn) {
    case "augment":
      return { resources: options.augmentResources ?? { cpu: "1", memory: "2Gi", gpus: 0, scratch: "2Gi" } };
    case "rollout":
      return spec.rollout;
    case "learn":
      return spec.learner;
    case "evaluate":
      return spec.evaluation;
    default: {
      const unknown: never = fn;
      throw new Error(`unknown function ${String(unknown)}`);
    }
  }
}

export function resourceRequirements(resources: Resources): Record<string, Record<string, string>> {
  // the /tmp emptyDir counts against ephemeral-storage: the kubelet evicts a pod that outgrows it
  const amounts: Record<string, string> = {
    cpu: resources.cpu,
    memory: resources.memory,
    "ephemeral-storage": resources.scratch,
  };
  if (resources.gpus > 0) amounts[GPU_RESOURCE] = String(resources.gpus);
  // requests = limits: GPUs can only be limits-equal, and guaranteed QoS keeps training pods from eviction
  return { requests: { ...amounts }, limits: { ...amounts } };
}

function secretEnv(name: string, secret: string, key: string) {
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}

/** Environment of a function container: plain settings, and credentials only as secret references. */
export function functionEnv(
  run: RunRef,
  spec: QuestATrainingSpec,
  fn: FunctionName | typeof VLLM_SYNC,
  names: RunNames,
): Record<string, unknown>[] {
  const prefix = names.topicPrefix;
  const env: Record<string, unknown>[] = [];
  let group: string;
  if (fn === VLLM_SYNC) {
    // every server reloads every checkpoint: a consumer group per pod, never one the replicas share
    env.push({ name: "QUESTA_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
    group = `${functionGroup(prefix, fn)}.$(QUESTA_POD_NAME)`;
  } else {
    group = consumerGroup(prefix, fn);
  }
  env.push(
    { name: "QUESTA_RUN", value: run.name },
    { name: "QUESTA_NAMESPACE", value: run.namespace },
    { name: "QUESTA_FUNCTION", value: fn },
    { name: "QUESTA_CONFIG", value: `${CONFIG_MOUNT_DIR}/${CONFIG_FILE}` },
    { name: "QUESTA_TOPIC_PREFIX", value: prefix },
    { name: "QUESTA_CONSUMER_GROUP", value: group },
    { name: "QUESTA_METRICS_PORT", value: String(METRICS_PORT) },
    { name: "QUESTA_LOG_LEVEL", value: "info" },
    // the QUESTA_KAFKA_* variables functions/runtime/kafka-bus.ts reads (kafkaConnectionConfigFromEnv)
    { name: "QUESTA_KAFKA_BROKERS", value: spec.kafka.brokers.join(",") },
    { name: "QUESTA_KAFKA_CLIENT_ID", value: `questa-${run.name}-${fn}` },
    // the QUESTA_S3_* variables functions/runtime/s3-object-store.ts reads (s3StoreConfigFromEnv)
    { name: "QUESTA_S3_REGION", value: spec.storage.region },
    { name: "QUESTA_S3_PREFIX", value: names.storePrefix },
    // a dataset or model URI that names a local file would read the pod's own (secret) files
    { name: "QUESTA_DATA_SOURCES", value: OBJECT_STORE_ONLY },
    { name: "HOME", value: "/tmp" },
  );
  if (fn === "rollout" && spec.rollout.engine === "vllm") {
    env.push({ name: "QUESTA_VLLM_ENDPOINTS", value: vllmEndpoints(run) });
  }
  if (spec.storage.bucket !== undefined) env.push({ name: "QUESTA_S3_BUCKET", value: spec.storage.bucket });
  if (spec.storage.endpoint !== undefined)
    env.push({ name: "QUESTA_S3_ENDPOINT", value: spec.storage.endpoint });
  if (spec.storage.forcePathStyle) env.push({ name: "QUESTA_S3_FORCE_PATH_STYLE", value: "true" });
  // credentials are mounted secret files (re-read on rotation), never values in the pod spec
  if (spec.storage.credentialsSecretRef)
    env.push({ name: "QUESTA_S3_SECRET_DIR", value: S3_CREDENTIALS_DIR });
  if (spec.storage.caSecretRef) env.push({ name: "QUESTA_S3_CA_FILE", value: `${S3_CA_DIR}/ca.crt` });
  const sasl = spec.kafka.sasl;
  if (sasl) {
    env.push({ name: "QUESTA_KAFKA_SASL_MECHANISM", value: sasl.mechanism });
    env.push(secretEnv("QUESTA_KAFKA_SASL_USERNAME", sasl.secretRef.name, "username"));
    env.push({ name: "QUESTA_KAFKA_SASL_PASSWORD_FILE", value: `${KAFKA_SASL_DIR}/password` });
  }
  if (spec.kafka.tls) {
    env.push({ name: "QUESTA_KAFKA_TLS", value: "true" });
    env.push({ name: "QUESTA_KAFKA_TLS_CA_FILE", value: `${KAFKA_TLS_DIR}/ca.crt` });
    if (spec.kafka.tls.clientCertificate) {
      env.push({ name: "QUESTA_KAFKA_TLS_CERT_FILE", value: `${KAFKA_TLS_DIR}/tls.crt` });
      env.push({ name: "QUESTA_KAFKA_TLS_KEY_FILE", value: `${KAFKA_TLS_DIR}/tls.key` });
    }
  }
  return env;
}

/** What differs between the pods that run a function process (a Deployment's, a learner job's). */
export interface FunctionPod {
  image: string;
  placement: Placement;
  env: Record<string, unknown>[];
  /** container ports besides metrics */
  ports?: Record<string, unknown>[];
  /** a memory-backed /dev/shm (torch and NCCL exchange tensors through shared memory) */
  sharedMemory?: boolean;
}

/** The credentials a run's spec names, as secret volumes and their read-only mounts. */
export function secretMounts(spec: QuestATrainingSpec): {
  volumes: Record<string, unknown>[];
  mounts: Record<string, unknown>[];
} {
  const volumes: Record<string, unknown>[] = [];
  const mounts: Record<string, unknown>[] = [];
  const secretVolume = (name: string, secretName: string, path: string) => {
    volumes.push({ name, secret: { secretName, defaultMode: 0o400 } });
    mounts.push({ name, mountPath: path, readOnly: true });
  };
  if (spec.kafka.tls) secretVolume("kafka-tls", spec.kafka.tls.secretRef.name, KAFKA_TLS_DIR);
  if (spec.kafka.sasl) secretVolume("kafka-sasl", spec.kafka.sasl.secretRef.name, KAFKA_SASL_DIR);
  if (spec.storage.credentialsSecretRef) {
    secretVolume("s3-credentials", spec.storage.credentialsSecretRef.name, S3_CREDENTIALS_DIR);
  }
  if (spec.storage.caSecretRef) secretVolume("s3-ca", spec.storage.caSecretRef.name, S3_CA_DIR);
  return { volumes, mounts };
}

/** a container's: non-root, no privilege escalation, no capabilities, a read-only root file system */
export const restrictedContainer = (): Record<string, unknown> => ({
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  capabilities: { drop: ["ALL"] },
});

/** a pod's: the distroless "nonroot" user, the runtime's default seccomp profile */
export const restrictedPod = (): Record<string, unknown> => ({
  runAsNonRoot: true,
  runAsUser: NON_ROOT_UID,
  runAsGroup: NON_ROOT_UID,
  fsGroup: NON_ROOT_UID,
  seccompProfile: { type: "RuntimeDefault" },
});

/** The pod spec of one function process: `questa function <fn>` with the run's config and secrets. */
export function functionPodSpec(
  run: RunRef,
  spec: QuestATrainingSpec,
  fn: FunctionName,
  pod: FunctionPod,
  options: WorkloadOptions,
): Record<string, unknown> {
  const { placement } = pod;
  const secrets = secretMounts(spec);
  const volumes: Record<string, unknown>[] = [
    { name: "config", configMap: { name: configMapName(run), defaultMode: 0o444 } },
    // the root file system is read-only: scratch space (model cache, temp files) lives here, bounded
    { name: "tmp", emptyDir: { sizeLimit: placement.resources.scratch } },
  ];
  const mounts: Record<string, unknown>[] = [
    { name: "config", mountPath: CONFIG_MOUNT_DIR, readOnly: true },
    { name: "tmp", mountPath: "/tmp" },
  ];
  if (pod.sharedMemory) {
    volumes.push({ name: "dshm", emptyDir: { medium: "Memory" } });
    mounts.push({ name: "dshm", mountPath: "/dev/shm" });
  }
  volumes.push(...secrets.volumes);
  mounts.push(...secrets.mounts);
  const podSpec: Record<string, unknown> = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 60,
    securityContext: restrictedPod(),
    containers: [
      {
        name: fn,
        image: pod.image,
        imagePullPolicy: options.imagePullPolicy ?? "IfNotPresent",
        args: ["function", fn, "--config", `${CONFIG_MOUNT_DIR}/${CONFIG_FILE}`],
        env: pod.env,
        ports: [{ name: "metrics", containerPort: METRICS_PORT, protocol: "TCP" }, ...(pod.ports ?? [])],
        // the function runtime's health server (functions/runtime/health-server.ts)
        livenessProbe: {
          httpGet: { path: "/healthz", port: "metrics" },
          periodSeconds: 20,
          failureThreshold: 3,
        },
        readinessProbe: { httpGet: { path: "/readyz", port: "metrics" }, periodSeconds: 10 },
        resources: resourceRequirements(placement.resources),
        securityContext: restrictedContainer(),
        volumeMounts: mounts,
      },
    ],
    volumes,
  };
  if (placement.nodeSelector && Object.keys(placement.nodeSelector).length > 0) {
    podSpec.nodeSelector = placement.nodeSelector;
  }
  if (placement.tolerations && placement.tolerations.length > 0) podSpec.tolerations = placement.tolerations;
  return podSpec;
}

/** the annotations of a run's pod template: a spec change rolls the pods; where metrics are */
export const podAnnotations = (options: WorkloadOptions): Record<string, string> => ({
  [CONFIG_HASH_ANNOTATION]: options.configHash,
  "prometheus.io/port": String(METRICS_PORT),
});

/** A Deployment running one function of the run. */
export function buildWorkload(
  run: RunRef,
  spec: QuestATrainingSpec,
  fn: FunctionName,
  replicas: number,
  options: WorkloadOptions,
): KubeObject {
  const labels = runLabels(run, fn);
  const selector = { [RUN_LABEL]: run.name, "app.kubernetes.io/component": fn };
  const podSpec = functionPodSpec(
    run,
    spec,
    fn,
    {
      image: spec.image ?? options.defaultImage,
      placement: placementOf(spec, fn, options),
      env: functionEnv(run, spec, fn, options.names),
    },
    options,
  );
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: workloadName(run, fn),
      namespace: run.namespace,
      labels,
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: selector },
      // the learner is the single writer of checkpoints: never two at once, even during an update
      strategy: fn === "learn" ? { type: "Recreate" } : { type: "RollingUpdate" },
      template: {
        metadata: { labels, annotations: podAnnotations(options) },
        spec: podSpec,
      },
    },
  };
}
