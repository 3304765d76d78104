import { createServer, type Server } from "node:http";
import type { TestProject } from "vitest/node";
import { type KubeTestCluster, startKubeTestCluster } from "./kube-server.ts";

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
    /** loopback URL: POST /apiserver/stop and /apiserver/start restart kube-apiserver (etcd keeps data) */
    kubeControlUrl: string;
  }
}

let cluster: KubeTestCluster | undefined;
let control: Server | undefined;

/** vitest globalSetup: a real etcd + kube-apiserver for test/operator-*.test.ts, torn down afterwards. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  cluster = await startKubeTestCluster();
  const running = cluster;
  control = createServer((request, response) => {
    const action =
      request.method === "POST" && request.url === "/apiserver/stop"
        ? running.stopApiServer()
        : request.method === "POST" && request.url === "/apiserver/start"
          ? running.startApiServer()
          : undefined;
    if (!action) {
      response.writeHead(404).end();
      return;
    }
    action.then(
      () => response.writeHead(204).end(),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((r) => control?.listen(0, "127.0.0.1", r));
  const address = control.address();
  const port = typeof address === "object" && address ? address.port : 0;
  project.provide("kubeconfig", running.kubeconfig);
  project.provide("operatorKubeconfig", running.operatorKubeconfig);
  project.provide("operatorNamespace", running.operatorNamespace);
  project.provide("operatorServiceAccount", running.operatorServiceAccount);
  project.provide("kubeBinDir", running.binDir);
  project.provide("etcdEndpoint", running.etcdEndpoint);
  project.provide("kubeControlUrl", `http://127.0.0.1:${port}`);
  return async () => {
    await new Promise<void>((r) => (control ? control.close(() => r()) : r()));
    await cluster?.stop();
    cluster = undefined;
  };
}
