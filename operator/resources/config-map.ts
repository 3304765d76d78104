import { createHash } from "node:crypto";
import { stringify } from "yaml";
import { API_VERSION, KIND, type QuestATrainingSpec } from "../../functions/contracts/questatraining.ts";
import type { KubeObject } from "../kube-api.ts";
import { configMapName, ownerReference, type RunRef, runLabels } from "./names.ts";

export const CONFIG_FILE = "training.yaml";
export const CONFIG_MOUNT_DIR = "/etc/questa";

/** The validated spec, every default filled in, as the file each function reads at start-up. */
export function renderTrainingConfig(run: RunRef, spec: QuestATrainingSpec): string {
  return stringify({
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name: run.name, namespace: run.namespace },
    spec,
  });
}

export const configHash = (text: string): string =>
  createHash("sha256").update(text).digest("hex").slice(0, 16);

export function buildConfigMap(run: RunRef, spec: QuestATrainingSpec): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: configMapName(run),
      namespace: run.namespace,
      labels: runLabels(run, "config"),
      ownerReferences: [ownerReference(run)],
    },
    data: { [CONFIG_FILE]: renderTrainingConfig(run, spec) },
  };
}
