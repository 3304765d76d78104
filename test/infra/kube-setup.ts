import type { TestProject } from "vitest/node";
import { ensureNodeBinaries } from "./kube-node.ts";
import { type KubeTestCluster, kubeBinDir, startKubeTestCluster } from "./kube-server.ts";
import { trainerInstall } from "./kube-trainer.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** admin kubeconfig of the test kube-apiserver */
    kubeconfig: string;
    /** kubeconfig authenticating as the operator's service account (RBAC applies) */
    operatorKubeconfig: string;
    operatorNamespace: string;
    operatorServiceAccount: string;
    kubeBinDir: string;
    etcdEndpoint: string;
  }
}

let cluster: KubeTestCluster | undefined;

/**
 * vitest globalSetup: a real etcd + kube-apiserver shared by test/operator-*.test.ts (each test file
 * works in namespaces of its own), torn down afterwards. Fails, never skips, when the servers cannot
 * be built or started (scripts/install-kube-test-servers.sh runs first when a binary is missing).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // what test/operator-engines.test.ts's own cluster adds (kube-controller-manager, and Kubeflow
  // Trainer's and JobSet's controllers): Go builds of minutes on a cold cache, done here, outside any
  // test or hook timeout, and cached for later runs; a failed build fails the run
  ensureNodeBinaries(kubeBinDir());
  trainerInstall(kubeBinDir());
  cluster = await startKubeTestCluster();
  project.provide("kubeconfig", cluster.kubeconfig);
  project.provide("operatorKubeconfig", cluster.operatorKubeconfig);
  project.provide("operatorNamespace", cluster.operatorNamespace);
  project.provide("operatorServiceAccount", cluster.operatorServiceAccount);
  project.provide("kubeBinDir", cluster.binDir);
  project.provide("etcdEndpoint", cluster.etcdEndpoint);
  return async () => {
    await cluster?.stop();
    cluster = undefined;
  };
}
