import type { QuestATrainingSpec } from "../functions/contracts/questatraining.ts";
import type { InputIssue } from "../functions/runtime/errors.ts";

/** What an administrator allows runs in this cluster (operator settings, not the spec's). */
export interface ClusterPolicy {
  /** image prefixes (`registry/repo:` or `registry/repo@sha256:...`) a spec's image must start with; empty: any */
  allowedImages: readonly string[];
}

const OBJECT_STORE_URI = /^s3:\/\/[^/]+\/.+/;

/**
 * What a spec may not do in a cluster, whatever its schema allows: an image outside the allow-list,
 * and dataset or model URIs that are not in the object store (in a pod, a local path would read the
 * pod's own files: its mounted secrets, its service-account files).
 */
export function clusterPolicyIssues(spec: QuestATrainingSpec, policy: ClusterPolicy): InputIssue[] {
  const issues: InputIssue[] = [];
  if (spec.image !== undefined && policy.allowedImages.length > 0) {
    if (!policy.allowedImages.some((prefix) => spec.image?.startsWith(prefix))) {
      issues.push({
        path: "spec.image",
        message: `${JSON.stringify(spec.image)} is not an allowed image`,
        hint: `omit image (the operator's own), or use one starting with ${policy.allowedImages.join(", ")}`,
      });
    }
  }
  const uris: [path: string, uri: string | undefined][] = [
    ["spec.model.uri", spec.model.uri],
    ...spec.datasets.train.map((d, i): [string, string | undefined] => [
      `spec.datasets.train[${i}].uri`,
      d.uri,
    ]),
    ...spec.evaluation.benchmarks.map((d, i): [string, string | undefined] => [
      `spec.evaluation.benchmarks[${i}].uri`,
      d.uri,
    ]),
  ];
  for (const [path, uri] of uris) {
    if (uri === undefined || OBJECT_STORE_URI.test(uri)) continue;
    issues.push({
      path,
      message: `${JSON.stringify(uri)} is not an object-store URI; runs in a cluster read datasets and models from the object store only`,
      hint: "upload it and give s3://BUCKET/KEY",
    });
  }
  return issues;
}
