import { API_VERSION, KIND } from "../../functions/contracts/questatraining.ts";
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

/** default Kafka topic prefix: unique per namespace and run */
export const defaultTopicPrefix = (run: RunRef): string => `questa.${run.namespace}.${run.name}`;

/** consumer group of a function's workers; the operator reads its lag to scale rollout workers */
export const consumerGroup = (topicPrefix: string, fn: FunctionName): string => `${topicPrefix}.${fn}`;

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
