import type { QuestATrainingSpec } from "../../functions/contracts/questatraining.ts";
import {
  vllmServerArgs as serverArgs,
  VLLM_SERVER_MODULE,
  vllmServerEnv,
} from "../../functions/host/vllm-server-args.ts";
import type { KubeObject } from "../kube-api.ts";
import { CONFIG_FILE, CONFIG_MOUNT_DIR } from "./config-map.ts";
import {
  configMapName,
  MANAGED_BY,
  ownerReference,
  RUN_LABEL,
  type RunRef,
  runLabels,
  VLLM_PORT,
  VLLM_SYNC,
  vllmName,
} from "./names.ts";
import {
  functionEnv,
  METRICS_PORT,
  podAnnotations,
  resourceRequirements,
  restrictedContainer,
  restrictedPod,
  secretMounts,
  type WorkloadOptions,
} from "./workloads.ts";

/** the shared folder: the starting model at `initial/`, each reloaded checkpoint in a folder of its own */
export const MODELS_DIR = "/models";
export const INITIAL_MODEL_DIR = `${MODELS_DIR}/initial`;
/** the sync sidecar: it holds one checkpoint's shards in memory while it writes them */
const SYNC_RESOURCES = { cpu: "1", memory: "4Gi", gpus: 0, scratch: "1Gi" };
/** the model fetch before the server starts */
const FETCH_RESOURCES = { cpu: "1", memory: "4Gi", gpus: 0, scratch: "1Gi" };

const vllmSelector = (run: RunRef): Record<string, string> => ({
  [RUN_LABEL]: run.name,
  "app.kubernetes.io/component": "vllm",
});

/** the server's command line: the OpenAI-compatible server on the starting model, named after the run */
export function vllmServerArgs(run: RunRef, spec: QuestATrainingSpec): string[] {
  return serverArgs({
    host: "0.0.0.0",
    port: VLLM_PORT,
    modelFolder: INITIAL_MODEL_DIR,
    servedModelName: run.name,
    maxModelLength: spec.rollout.vllm.maxModelLength,
    vllm: spec.rollout.vllm,
    device: "gpu",
  });
}

/**
 * The run's vLLM servers (rollout.engine vllm): `replicas` pods, each with
 * - an init container (the questa image) that copies the starting Hugging Face folder from the
 *   object store into /models/initial (`questa model fetch`);
 * - the server (`python3 -m vllm.entrypoints.openai.api_server`), with the dev-mode routes on
 *   (VLLM_SERVER_DEV_MODE: /pause, /collective_rpc reload_weights, /resume), ready when /health
 *   answers, given up to 30 minutes to load the model;
 * - a sidecar (the questa image, `questa function vllm-sync`) that fetches each published
 *   checkpoint into a new folder under /models and makes the server reload it.
 * Updates replace one server at a time and never ask for more GPUs than the replicas hold.
 */
export function buildVllmDeployment(
  run: RunRef,
  spec: QuestATrainingSpec,
  replicas: number,
  options: WorkloadOptions,
): KubeObject {
  const vllm = spec.rollout.vllm;
  const questaImage = spec.image ?? options.defaultImage;
  const pullPolicy = options.imagePullPolicy ?? "IfNotPresent";
  const labels = runLabels(run, "vllm");
  const secrets = secretMounts(spec);
  const env = functionEnv(run, spec, VLLM_SYNC, options.names);
  // the fetch needs the object store's settings and credentials, not Kafka's
  const storeEnv = env.filter((e) => /^(QUESTA_S3_|QUESTA_DATA_SOURCES$|HOME$)/.test(String(e.name)));
  const s3Mounts = secrets.mounts.filter((m) => String(m.name).startsWith("s3-"));
  const podSpec: Record<string, unknown> = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    terminationGracePeriodSeconds: 60,
    securityContext: restrictedPod(),
    initContainers: [
      {
        name: "model",
        image: questaImage,
        imagePullPolicy: pullPolicy,
        args: ["model", "fetch", spec.model.uri ?? "", INITIAL_MODEL_DIR],
        env: storeEnv,
        resources: resourceRequirements(FETCH_RESOURCES),
        securityContext: restrictedContainer(),
        volumeMounts: [
          { name: "models", mountPath: MODELS_DIR },
          { name: "fetch-tmp", mountPath: "/tmp" },
          ...s3Mounts,
        ],
      },
    ],
    containers: [
      {
        name: "vllm",
        image: vllm.image,
        imagePullPolicy: pullPolicy,
        command: ["python3", ...VLLM_SERVER_MODULE],
        args: vllmServerArgs(run, spec),
        env: [
          ...Object.entries(vllmServerEnv({ device: "gpu" })).map(([name, value]) => ({ name, value })),
          // the root file system is read-only and the user has no home or passwd entry: caches go to
          // /tmp, and torch's getpass.getuser() reads USER
          { name: "HOME", value: "/tmp" },
          { name: "USER", value: "vllm" },
        ],
        ports: [{ name: "http", containerPort: VLLM_PORT, protocol: "TCP" }],
        startupProbe: {
          httpGet: { path: "/health", port: "http" },
          periodSeconds: 10,
          failureThreshold: 180,
        },
        readinessProbe: { httpGet: { path: "/health", port: "http" }, periodSeconds: 10 },
        livenessProbe: {
          httpGet: { path: "/health", port: "http" },
          periodSeconds: 20,
          failureThreshold: 3,
        },
        resources: resourceRequirements(vllm.resources),
        securityContext: restrictedContainer(),
        volumeMounts: [
          { name: "models", mountPath: MODELS_DIR, readOnly: true },
          { name: "tmp", mountPath: "/tmp" },
          { name: "dshm", mountPath: "/dev/shm" },
        ],
      },
      {
        name: "sync",
        image: questaImage,
        imagePullPolicy: pullPolicy,
        args: ["function", VLLM_SYNC, "--config", `${CONFIG_MOUNT_DIR}/${CONFIG_FILE}`],
        env: [
          ...env,
          { name: "QUESTA_VLLM_URL", value: `http://127.0.0.1:${VLLM_PORT}` },
          { name: "QUESTA_VLLM_MODEL_DIR", value: MODELS_DIR },
        ],
        ports: [{ name: "metrics", containerPort: METRICS_PORT, protocol: "TCP" }],
        livenessProbe: {
          httpGet: { path: "/healthz", port: "metrics" },
          periodSeconds: 20,
          failureThreshold: 3,
        },
        resources: resourceRequirements(SYNC_RESOURCES),
        securityContext: restrictedContainer(),
        volumeMounts: [
          { name: "config", mountPath: CONFIG_MOUNT_DIR, readOnly: true },
          { name: "models", mountPath: MODELS_DIR },
          { name: "sync-tmp", mountPath: "/tmp" },
          ...secrets.mounts,
        ],
      },
    ],
    volumes: [
      { name: "config", configMap: { name: configMapName(run), defaultMode: 0o444 } },
      // the starting model and the reloaded checkpoints (the sync sidecar removes old ones)
      { name: "models", emptyDir: { sizeLimit: vllm.resources.scratch } },
      { name: "tmp", emptyDir: { sizeLimit: "2Gi" } },
      { name: "fetch-tmp", emptyDir: { sizeLimit: FETCH_RESOURCES.scratch } },
      { name: "sync-tmp", emptyDir: { sizeLimit: SYNC_RESOURCES.scratch } },
      // tensor parallelism exchanges through shared memory; the container runtime's default is 64 MiB
      { name: "dshm", emptyDir: { medium: "Memory" } },
      ...secrets.volumes,
    ],
  };
  if (vllm.nodeSelector && Object.keys(vllm.nodeSelector).length > 0)
    podSpec.nodeSelector = vllm.nodeSelector;
  if (vllm.tolerations && vllm.tolerations.length > 0) podSpec.tolerations = vllm.tolerations;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name: vllmName(run),
      namespace: run.namespace,
      labels,
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      replicas,
      revisionHistoryLimit: 3,
      selector: { matchLabels: vllmSelector(run) },
      // one server at a time, and no extra GPUs asked for during an update
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: { metadata: { labels, annotations: podAnnotations(options) }, spec: podSpec },
    },
  };
}

/** A headless Service: its name resolves to every ready server, so the sampler spreads over them. */
export function buildVllmService(run: RunRef): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: vllmName(run),
      namespace: run.namespace,
      labels: runLabels(run, "vllm"),
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      clusterIP: "None",
      selector: vllmSelector(run),
      ports: [{ name: "http", port: VLLM_PORT, targetPort: VLLM_PORT, protocol: "TCP" }],
    },
  };
}

/**
 * Only the run's rollout workers (and its servers) reach the servers' port: the dev-mode routes on
 * it pause the server and load any folder as its weights. Rendered for every vLLM run, whatever the
 * operator's NetworkPolicy setting (the sync sidecar reaches its server over loopback).
 */
export function buildVllmNetworkPolicy(run: RunRef): KubeObject {
  const peer = (component: string) => ({
    podSelector: {
      matchLabels: {
        [RUN_LABEL]: run.name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": component,
      },
    },
  });
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: vllmName(run),
      namespace: run.namespace,
      labels: runLabels(run, "vllm"),
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      podSelector: peer("vllm").podSelector,
      policyTypes: ["Ingress"],
      ingress: [{ from: [peer("rollout"), peer("vllm")], ports: [{ protocol: "TCP", port: VLLM_PORT }] }],
    },
  };
}
