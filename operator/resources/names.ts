import { API_VERSION, KIND, type QuestATrainingSpec } from "../../functions/contracts/questatraining.ts";
import {
  functionGroup,
  legacyStorePrefix,
  runStorePrefix,
  runTopicPrefix,
} from "../../functions/contracts/run-names.ts";
import type { InputIssue } from "../../functions/runtime/errors.ts";
import type { KubeObject, OwnerReference } from "../kube-api.ts";

/** The run's functions, one workload each. */
export const FUNCTIONS = ["augment", "rollout", "learn", "evaluate"] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

export const FIELD_MANAGER = "questa-operator";
export const FINALIZER = "questa.dev/cleanup";
/** annotation a user sets to "true" so deleting the run also deletes its object-store artifacts */
export const DELETE_ARTIFACTS_ANNOTATION = "questa.dev/delete-artifacts";
export const CONFIG_HASH_ANNOTATION = "questa.dev/config-hash";
export const RUN_LABEL = "questa.dev/run";
export const MANAGED_BY = "questa-operator";

export interface RunRef {
  name: string;
  namespace: string;
  uid: string;
}

export function runRef(object: KubeObject): RunRef {
  return {
    name: object.metadata.name,
    namespace: object.metadata.namespace ?? "default",
    uid: object.metadata.uid ?? "",
  };
}

export const workloadName = (run: RunRef, fn: FunctionName): string => `${run.name}-${fn}`;
export const configMapName = (run: RunRef): string => `${run.name}-config`;
/** the torch learner's TrainJob, or its Indexed Job and headless Service (named alike: other kinds) */
export const learnerJobName = (run: RunRef): string => workloadName(run, "learn");
/** the run's vLLM servers: their Deployment, headless Service and NetworkPolicy */
export const vllmName = (run: RunRef): string => `${run.name}-vllm`;

export const VLLM_PORT = 8000;
/** the process beside each vLLM server that reloads it with every published checkpoint */
export const VLLM_SYNC = "vllm-sync";
/** where rollout workers reach the servers: the headless Service, whose name resolves to every ready server */
export const vllmEndpoints = (run: RunRef): string =>
  `http://${vllmName(run)}.${run.namespace}.svc:${VLLM_PORT}`;

/** what a pod of the run is, in its `app.kubernetes.io/component` label */
export type Component = FunctionName | "config" | "vllm";

/**
 * The names a run's functions use outside Kubernetes: what the operator recorded in `status.owned`
 * (functions/contracts/run-names.ts derives them for a new run).
 */
export interface RunNames {
  /** `namespaced` for runs created since names derive from the namespace; `legacy` before */
  layout: "namespaced" | "legacy";
  /** prefix of the run's topics and consumer groups */
  topicPrefix: string;
  /** the functions' object-store key prefix; their keys are `<run name>/...` under it */
  storePrefix: string;
}

/** a new run's names; an InputError when its spec names a topic prefix that is not its own */
export function derivedRunNames(run: RunRef, spec: QuestATrainingSpec): RunNames {
  return {
    layout: "namespaced",
    topicPrefix: runTopicPrefix(run, spec.kafka.topicPrefix),
    storePrefix: runStorePrefix(spec.storage.prefix, run.namespace),
  };
}

/** the names a run created before the namespaced layout used (so it resumes where it was) */
export function legacyRunNames(run: RunRef, spec: QuestATrainingSpec): RunNames {
  return {
    layout: "legacy",
    topicPrefix: spec.kafka.topicPrefix ?? `questa.${run.namespace}.${run.name}`,
    storePrefix: legacyStorePrefix(spec.storage.prefix),
  };
}

/** consumer group of a function's workers; the operator reads its lag to scale rollout workers */
export const consumerGroup = (topicPrefix: string, fn: FunctionName): string =>
  functionGroup(topicPrefix, fn);

export function runLabels(run: RunRef, component?: Component): Record<string, string> {
  const labels: Record<string, string> = {
    "app.kubernetes.io/name": "questa",
    "app.kubernetes.io/instance": run.name,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    [RUN_LABEL]: run.name,
  };
  if (component) labels["app.kubernetes.io/component"] = component;
  return labels;
}

/** Selects everything the operator writes for any run (used by its watches). */
export const MANAGED_SELECTOR = `app.kubernetes.io/managed-by=${MANAGED_BY}`;

export function ownerReference(run: RunRef): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    name: run.name,
    uid: run.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

const DNS_LABEL_MAX = 63;

/**
 * What the run's name cannot be once the scale engines name Kubernetes objects after it (the CRD
 * already makes it a DNS label of at most 63 characters): the torch learner's pods are
 * `<run>-learn-node-0-<rank>` under Kubeflow Trainer (`<run>-learn-<rank>` without it; the longer
 * one counts, so a run can move between clusters with and without Trainer) and its Service and
 * TrainJob need RFC 1035 names (starting with a letter); the vLLM servers' Service is `<run>-vllm`.
 */
export function engineNameIssues(run: RunRef, spec: QuestATrainingSpec): InputIssue[] {
  const issues: InputIssue[] = [];
  const uses: { engine: string; longest: string; service: string }[] = [];
  if (spec.learner.engine === "torch") {
    const lastRank = spec.learner.torch.nodes - 1;
    uses.push({
      engine: "learner.engine torch",
      longest: `${learnerJobName(run)}-node-0-${lastRank}`,
      service: learnerJobName(run),
    });
  }
  if (spec.rollout.engine === "vllm") {
    uses.push({ engine: "rollout.engine vllm", longest: vllmName(run), service: vllmName(run) });
  }
  for (const use of uses) {
    if (use.longest.length > DNS_LABEL_MAX) {
      const room = DNS_LABEL_MAX - (use.longest.length - run.name.length);
      issues.push({
        path: "metadata.name",
        message: `${JSON.stringify(run.name)} is too long for ${use.engine}: it names pods ${use.longest} (${use.longest.length} characters), over the ${DNS_LABEL_MAX} of a DNS label`,
        hint: `use a run name of at most ${room} characters`,
      });
    }
    if (!/^[a-z]/.test(use.service)) {
      issues.push({
        path: "metadata.name",
        message: `${JSON.stringify(run.name)} starts with a digit, but ${use.engine} names a Service ${use.service}, and Service names must start with a letter`,
        hint: "use a run name that starts with a letter",
      });
    }
  }
  return issues;
}
