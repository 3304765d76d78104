import { buildTorchImage } from "../../scripts/build-image.ts";
import { nodeSetup } from "./kube-node-setup.ts";

/**
 * vitest global setup of the `scale-node` project, after kafka-s3-setup.ts: the cluster and real
 * node of the end-to-end project, with the torch learner's image (Dockerfile.torch: the questa image
 * plus Python and the learner's venv, built by scripts/build-image.ts --torch; its ~3 GB layer is
 * cached) as `questaImage`, so the operator, the functions and the learner pods all run from it.
 */
export default nodeSetup(buildTorchImage);
