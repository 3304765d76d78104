import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { buildImage, buildPauseImage, PAUSE_IMAGE } from "../../scripts/build-image.ts";
import { type KubeNode, startKubeNode } from "./kube-node.ts";
import { type KubeTestCluster, startKubeTestCluster } from "./kube-server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** the questa image built without docker, imported into the node's containerd (questa:dev) */
    questaImage: string;
    /** its OCI layout directory (compared with the Dockerfile) */
    questaImageLayout: string;
    /** the node's name (127.0.0.1) */
    nodeName: string;
    /** `ctr` arguments reaching the node's containerd, namespace k8s.io (e.g. to kill a container) */
    nodeCtr: string[];
  }
}

/**
 * vitest global setup of the end-to-end project, after kafka-s3-setup.ts: builds the image, starts
 * etcd + kube-apiserver + kube-controller-manager + kube-scheduler and a real node (containerd +
 * kubelet) whose pods reach this run's Kafka and MinIO. Fails, never skips, when a piece cannot be
 * built or started; the error names it and its log.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const provided = project.getProvidedContext();
  const ports = [...provided.kafkaBrokers, provided.s3.endpoint].map((address) =>
    Number(new URL(address.includes("://") ? address : `tcp://${address}`).port),
  );
  const imageDir = mkdtempSync(join(tmpdir(), "questa-image-"));
  let cluster: KubeTestCluster | undefined;
  let node: KubeNode | undefined;
  const teardown = async () => {
    await node?.stop();
    await cluster?.stop();
    rmSync(imageDir, { recursive: true, force: true });
  };
  try {
    const image = buildImage(imageDir);
    cluster = await startKubeTestCluster({ workloads: true });
    const pause = buildPauseImage(join(cluster.binDir, "pause"), imageDir);
    node = await startKubeNode({
      binDir: cluster.binDir,
      kubeconfig: cluster.kubeconfig,
      apiPort: cluster.apiPort,
      forwardPorts: ports,
      // the operator's and the functions' metrics/health ports (chart metrics.port, METRICS_PORT)
      exposePorts: [8080, 9090],
      images: [
        { tar: pause, reference: PAUSE_IMAGE },
        { tar: image.tar, reference: image.reference },
      ],
    });
    project.provide("kubeconfig", cluster.kubeconfig);
    project.provide("kubeBinDir", cluster.binDir);
    project.provide("questaImage", image.reference);
    project.provide("questaImageLayout", image.layout);
    project.provide("nodeName", node.name);
    project.provide("nodeCtr", node.ctrArgs);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}
