import { createHash } from "node:crypto";
import type { QuestATrainingSpec } from "../../functions/contracts/questatraining.ts";
import type { KubeObject } from "../kube-api.ts";
import { learnerJobName, ownerReference, RUN_LABEL, type RunRef, runLabels } from "./names.ts";
import {
  functionEnv,
  functionPodSpec,
  podAnnotations,
  resourceRequirements,
  type WorkloadOptions,
} from "./workloads.ts";

/** torchrun's c10d rendezvous port on node 0 (Kubeflow Trainer's ContainerTrainerPort is the same) */
export const RENDEZVOUS_PORT = 29500;
/** Kubeflow Trainer's runtime for PyTorch (a ClusterTrainingRuntime its install ships) */
export const TORCH_RUNTIME = "torch-distributed";
/** the container of the torch-distributed runtime that runs the trainer */
const TRAINER_CONTAINER = "node";
/** the replicated job of the torch-distributed runtime */
const TRAINER_JOB = "node";
/** on the learner job: the hash of what it was created with; a different one means replace it */
export const TEMPLATE_HASH_ANNOTATION = "questa.dev/template-hash";
/** who owns the TrainJob's runtime patch (Trainer keys patches by manager) */
export const RUNTIME_PATCH_MANAGER = "questa.dev/operator";

/** where the learner pods run and how many: learner.torch over learner.resources */
export interface TorchLayout {
  nodes: number;
  processesPerNode: number;
}

export function torchLayout(spec: QuestATrainingSpec): TorchLayout {
  return {
    nodes: spec.learner.torch.nodes,
    processesPerNode: spec.learner.torch.processesPerNode ?? (spec.learner.resources.gpus || 1),
  };
}

const learnerImage = (spec: QuestATrainingSpec, options: WorkloadOptions): string =>
  spec.learner.torch.image ?? spec.image ?? options.defaultImage;

/** the learner pods' labels: the run's, plus what selects them for the Service and the peer policy */
export const learnerSelector = (run: RunRef): Record<string, string> => ({
  [RUN_LABEL]: run.name,
  "app.kubernetes.io/component": "learn",
});

/** a short hash of what a job was created with, suspend aside (the one field changed in place) */
export function templateHash(spec: unknown): string {
  const { suspend: _suspend, ...rest } = spec as Record<string, unknown>;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex").slice(0, 16);
}

function withTemplateHash(object: KubeObject): KubeObject {
  return {
    ...object,
    metadata: {
      ...object.metadata,
      annotations: { ...object.metadata.annotations, [TEMPLATE_HASH_ANNOTATION]: templateHash(object.spec) },
    },
  };
}

/** the headless Service that gives node 0 a stable name: `<job>-0.<service>` */
export function buildLearnerService(run: RunRef): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: learnerJobName(run),
      namespace: run.namespace,
      labels: runLabels(run, "learn"),
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      clusterIP: "None",
      // node 0's name must resolve before it is ready: the other nodes rendezvous with it to start
      publishNotReadyAddresses: true,
      selector: learnerSelector(run),
      ports: [{ name: "rendezvous", port: RENDEZVOUS_PORT, targetPort: RENDEZVOUS_PORT, protocol: "TCP" }],
    },
  };
}

/**
 * The torch learner without Kubeflow Trainer: an Indexed Job of `nodes` pods, each running
 * `questa function learn` (which starts torchrun with the c10d rendezvous at PET_MASTER_ADDR), node
 * 0 reachable through the headless Service. Failure policy: a pod evicted, preempted or drained
 * (DisruptionTarget) is replaced without counting; any other pod failure counts, and one fault
 * usually fails every node of the torchrun group (the survivors lose their peer), so the job fails
 * after three group failures' worth (3 x nodes): each restart resumes from the last checkpoint, and
 * a learner that keeps failing has a bug or a bad input that restarts do not fix.
 */
export function buildLearnerJob(
  run: RunRef,
  spec: QuestATrainingSpec,
  active: boolean,
  options: WorkloadOptions,
): KubeObject {
  const layout = torchLayout(spec);
  const name = learnerJobName(run);
  const env = [
    ...functionEnv(run, spec, "learn", options.names),
    { name: "PET_NNODES", value: String(layout.nodes) },
    { name: "PET_NPROC_PER_NODE", value: String(layout.processesPerNode) },
    {
      name: "PET_NODE_RANK",
      valueFrom: {
        fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" },
      },
    },
    // the Indexed Job names pod i's host <job>-i; the Service is its subdomain
    { name: "PET_MASTER_ADDR", value: `${name}-0.${name}` },
    { name: "PET_MASTER_PORT", value: String(RENDEZVOUS_PORT) },
  ];
  const podSpec = functionPodSpec(
    run,
    spec,
    "learn",
    {
      image: learnerImage(spec, options),
      placement: spec.learner,
      env,
      ports: [{ name: "rendezvous", containerPort: RENDEZVOUS_PORT, protocol: "TCP" }],
      sharedMemory: true,
    },
    options,
  );
  const labels = runLabels(run, "learn");
  return withTemplateHash({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: run.namespace, labels, ownerReferences: [ownerReference(run)] },
    spec: {
      completionMode: "Indexed",
      completions: layout.nodes,
      parallelism: layout.nodes,
      backoffLimit: 3 * layout.nodes,
      podFailurePolicy: { rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget" }] }] },
      suspend: !active,
      template: {
        metadata: { labels, annotations: podAnnotations(options) },
        spec: { ...podSpec, restartPolicy: "Never", subdomain: name },
      },
    },
  });
}

/**
 * The torch learner under Kubeflow Trainer v2: a TrainJob on the `torch-distributed` runtime.
 * Trainer makes the JobSet (an Indexed Job of `numNodes` pods and a headless Service) and sets the
 * PET_* variables itself (it refuses them in `trainer.env`). What the runtime's pods lack and the
 * function pods have (the config and secret volumes, the read-only root and non-root user, labels,
 * placement) goes in a runtime patch. The trainer section is immutable: a change replaces the TrainJob.
 */
export function buildTrainJob(
  run: RunRef,
  spec: QuestATrainingSpec,
  active: boolean,
  options: WorkloadOptions,
): KubeObject {
  const layout = torchLayout(spec);
  const podSpec = functionPodSpec(
    run,
    spec,
    "learn",
    { image: learnerImage(spec, options), placement: spec.learner, env: [], sharedMemory: true },
    options,
  );
  const container = (podSpec.containers as Record<string, unknown>[])[0] as Record<string, unknown>;
  const labels = runLabels(run, "learn");
  const patchedPod: Record<string, unknown> = {
    volumes: podSpec.volumes,
    containers: [
      {
        name: TRAINER_CONTAINER,
        volumeMounts: container.volumeMounts,
        securityContext: container.securityContext,
      },
    ],
    securityContext: podSpec.securityContext,
    terminationGracePeriodSeconds: podSpec.terminationGracePeriodSeconds,
  };
  if (podSpec.nodeSelector !== undefined) patchedPod.nodeSelector = podSpec.nodeSelector;
  if (podSpec.tolerations !== undefined) patchedPod.tolerations = podSpec.tolerations;
  return withTemplateHash({
    apiVersion: "trainer.kubeflow.org/v1alpha1",
    kind: "TrainJob",
    metadata: {
      name: learnerJobName(run),
      namespace: run.namespace,
      labels,
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      runtimeRef: { name: TORCH_RUNTIME, apiGroup: "trainer.kubeflow.org", kind: "ClusterTrainingRuntime" },
      suspend: !active,
      trainer: {
        image: container.image,
        args: container.args,
        env: functionEnv(run, spec, "learn", options.names),
        numNodes: layout.nodes,
        numProcPerNode: layout.processesPerNode,
        resourcesPerNode: resourceRequirements(spec.learner.resources),
      },
      runtimePatches: [
        {
          manager: RUNTIME_PATCH_MANAGER,
          trainingRuntimeSpec: {
            template: {
              spec: {
                replicatedJobs: [
                  {
                    name: TRAINER_JOB,
                    template: {
                      metadata: { labels },
                      spec: {
                        template: {
                          metadata: { labels, annotations: podAnnotations(options) },
                          spec: patchedPod,
                        },
                      },
                    },
                  },
                ],
              },
            },
          },
        },
      ],
    },
  });
}

interface JobCondition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

/** the condition of a Job or TrainJob that holds, of the given type */
function holding(object: KubeObject, type: string): JobCondition | undefined {
  const conditions = (object.status as { conditions?: JobCondition[] } | undefined)?.conditions ?? [];
  return conditions.find((c) => c.type === type && c.status === "True");
}

/** why the learner's Job or TrainJob failed for good, when it did */
export function learnerJobFailure(object: KubeObject): string | undefined {
  const failed = holding(object, "Failed");
  if (!failed) return undefined;
  const why = [failed.reason, failed.message].filter((s) => s !== undefined && s !== "").join(": ");
  return `the learner's ${object.kind} ${object.metadata.name} failed${why === "" ? "" : `: ${why}`}`;
}

/**
 * What to do with the learner's Job or TrainJob, given the one that exists (the run's own):
 * - `create` when none does;
 * - `wait` while one is being deleted (Foreground: until its pods are gone, so two learners never
 *   write checkpoints at once);
 * - `leave` a finished one as it is (its status says how it ended);
 * - `replace` one created from another template (a Job's pod template and a TrainJob's trainer are
 *   immutable): delete it, then create the new one once it is gone;
 * - `apply` otherwise (suspend is the one field that changes in place).
 */
export function learnerJobAction(
  found: KubeObject | undefined,
  desired: KubeObject,
): "create" | "wait" | "leave" | "replace" | "apply" {
  if (!found) return "create";
  if (found.metadata.deletionTimestamp) return "wait";
  if (holding(found, "Failed") || holding(found, "Complete")) return "leave";
  const hash = (o: KubeObject) => o.metadata.annotations?.[TEMPLATE_HASH_ANNOTATION];
  return hash(found) === hash(desired) ? "apply" : "replace";
}
