import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { type BuiltImage, buildImage, buildPauseImage, PAUSE_IMAGE } from "../../scripts/build-image.ts";
import { type KubeNode, startKubeNode } from "./kube-node.ts";
import { type KubeTestCluster, startKubeTestCluster } from "./kube-server.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** the image built without docker, imported into the node's containerd (questa:dev; questa-torch:dev in scale-node) */
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
 * A vitest global setup, after kafka-s3-setup.ts: builds the image with `build`, starts etcd +
 * kube-apiserver + kube-controller-manager + kube-scheduler and a real node (containerd + kubelet,
 * with a pod network and cluster DNS) whose pods reach this run's Kafka and MinIO. Fails, never
 * skips, when a piece cannot be built or started; the error names it and its log.
 */
export function nodeSetup(build: (outDir: string) => BuiltImage) {
  return async function setup(project: TestProject): Promise<() => Promise<void>> {
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
      // the cluster first: starting it installs the node's tools on a fresh machine, umoci among
      // them, which the image build needs
      cluster = await startKubeTestCluster({ workloads: true });
      const image = build(imageDir);
      const pause = buildPauseImage(join(cluster.binDir, "pause"), imageDir);
      node = await startKubeNode({
        binDir: cluster.binDir,
        kubeconfig: cluster.kubeconfig,
        apiPort: cluster.apiPort,
        forwardPorts: ports,
        images: [
          { tar: pause, reference: PAUSE_IMAGE },
          { tar: image.tar, reference: image.reference },
        ],
      });
      // imported: the tar is a copy of the layout's blobs (3 GB for the torch image)
      rmSync(image.tar, { force: true });
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
  };
}

/** the end-to-end project's: the questa image (Dockerfile) on the node */
export default nodeSetup(buildImage);
