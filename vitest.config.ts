import { defineConfig } from "vitest/config";

// Seven projects: `unit` (next to the code, no servers), `integration` (test/, real Kafka, S3 and
// kube-apiserver started by the global setups), `browser` (test/browser: pages in headless
// Chromium), `e2e` (test/e2e: the chart and image on a real node, run last) and `chaos`
// (test/chaos: faults injected into a Kafka and a MinIO of its own), and `scale` (test/scale:
// torchrun and vLLM on the CPU) with `scale-node` (the torch learner's pods on the real node):
// `npm run test:scale`, not part of `npm test`.
// `npx vitest run --project unit` skips the servers.
export default defineConfig({
  test: {
    // 2-core CI: keep workers bounded so heavy numeric tests don't starve each other
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default", "./test/closing-line-reporter.ts"],
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: [
            "functions/**/*.test.ts",
            "operator/**/*.test.ts",
            "cli/**/*.test.ts",
            "scripts/**/*.test.ts",
          ],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/**/*.test.ts"],
          exclude: ["test/chaos/**", "test/browser/**", "test/e2e/**", "test/scale/**"],
          globalSetup: ["test/infra/kafka-s3-setup.ts", "test/infra/kube-setup.ts"],
        },
      },
      {
        // pages opened in headless Chromium (installed by the global setup when missing): no servers
        extends: true,
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          globalSetup: ["test/infra/chromium-setup.ts"],
        },
      },
      {
        // test/e2e: the operator's pods on a real node (containerd + kubelet, test/infra/kube-node.ts)
        // with its own API server, controllers and a Kafka and MinIO of its own; run after the other
        // projects (groupOrder) so its pods do not compete with them for the two cores
        extends: true,
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // one file at a time: the node is two cores, and an exec into a pod of one file right
          // after it turned Ready failed twice ("container not found", exit 137) while the other
          // file's chart install loaded the node; alone it passed every time
          fileParallelism: false,
          globalSetup: ["test/infra/kafka-s3-setup.ts", "test/infra/kube-node-setup.ts"],
          sequence: { groupOrder: 1 },
        },
      },
      {
        // faults injected into servers of its own (a broker and a MinIO it restarts): no shared setup
        extends: true,
        test: { name: "chaos", include: ["test/chaos/**/*.test.ts"] },
      },
      {
        // test/scale: the engines questa hands work to at cluster scale (PyTorch FSDP2 under torchrun,
        // vLLM), on the CPU, over the shared Kafka and MinIO; their Python venvs are installed by the
        // global setups. Not part of `npm test` (minutes of installs and model work): `.ci/run` runs it
        // after, with `npm run test:scale`
        extends: true,
        test: {
          name: "scale",
          include: ["test/scale/**/*.test.ts"],
          exclude: ["test/scale/**/*-on-node.test.ts"],
          globalSetup: [
            "test/infra/kafka-s3-setup.ts",
            "test/infra/torch-learner-setup.ts",
            "test/infra/vllm-setup.ts",
          ],
          testTimeout: 600_000,
        },
      },
      {
        // test/scale/*-on-node.test.ts: the torch learner's pods on the real node of the e2e project,
        // from the torch learner's image (test/infra/torch-node-setup.ts); `npm run test:scale` runs
        // it after the scale project (groupOrder), so that they do not share the two cores
        extends: true,
        test: {
          name: "scale-node",
          include: ["test/scale/**/*-on-node.test.ts"],
          globalSetup: ["test/infra/kafka-s3-setup.ts", "test/infra/torch-node-setup.ts"],
          sequence: { groupOrder: 1 },
          testTimeout: 1_200_000,
          hookTimeout: 900_000,
        },
      },
    ],
  },
});
