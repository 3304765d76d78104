import type { KubeObject } from "../kube-api.ts";
import { MANAGED_BY, ownerReference, RUN_LABEL, type RunRef, runLabels } from "./names.ts";
import { METRICS_PORT } from "./workloads.ts";

/** What may reach a run's pods: Kubernetes NetworkPolicyPeers (e.g. the monitoring namespace). */
export interface NetworkPolicyOptions {
  /** peers allowed to scrape the metrics port; empty: no ingress at all */
  metricsFrom: readonly Record<string, unknown>[];
}

export const networkPolicyName = (run: RunRef): string => `${run.name}-functions`;
export const learnerPeersPolicyName = (run: RunRef): string => `${run.name}-learner`;

/**
 * A NetworkPolicy for the run's function pods: they serve nothing but metrics and health, so
 * ingress is the metrics port from the given peers, and nothing else (the kubelet's probes are not
 * subject to NetworkPolicy). Egress stays open: Kafka and S3 are the run's own choice of endpoints.
 */
export function buildNetworkPolicy(run: RunRef, options: NetworkPolicyOptions): KubeObject {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: networkPolicyName(run),
      namespace: run.namespace,
      labels: runLabels(run),
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      podSelector: { matchLabels: { [RUN_LABEL]: run.name, "app.kubernetes.io/managed-by": MANAGED_BY } },
      policyTypes: ["Ingress"],
      ingress:
        options.metricsFrom.length === 0
          ? []
          : [{ from: [...options.metricsFrom], ports: [{ protocol: "TCP", port: METRICS_PORT }] }],
    },
  };
}

/**
 * With the functions' policy in place, the torch learner's pods must still reach each other: node
 * 0's rendezvous port and the ports the collectives (NCCL, gloo) open, which are ephemeral, so every
 * port, but only between the run's own learner pods. Policies add up: this admits nothing else.
 */
export function buildLearnerPeersPolicy(run: RunRef): KubeObject {
  const learners = {
    matchLabels: {
      [RUN_LABEL]: run.name,
      "app.kubernetes.io/managed-by": MANAGED_BY,
      "app.kubernetes.io/component": "learn",
    },
  };
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: {
      name: learnerPeersPolicyName(run),
      namespace: run.namespace,
      labels: runLabels(run, "learn"),
      ownerReferences: [ownerReference(run)],
    },
    spec: {
      podSelector: learners,
      policyTypes: ["Ingress"],
      ingress: [{ from: [{ podSelector: learners }] }],
    },
  };
}
