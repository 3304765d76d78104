import { API_VERSION, KIND, type QuestATrainingSpec } from "../../functions/contracts/questatraining.ts";
import {
  functionGroup,
  legacyStorePrefix,
  runStorePrefix,
  runTopicPrefix,
} from "../../functions/contracts/run-names.ts";
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

export function runLabels(run: RunRef, component?: FunctionName | "config"): Record<string, string> {
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
