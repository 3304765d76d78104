import { defineConfig, mergeConfig } from "vitest/config";
import base from "../../vitest.config.ts";

// temporary: the operator's integration tests with the kube-apiserver global setup, until the lead adds
// ./test/infra/kube-setup.ts to the integration project's globalSetup in vitest.config.ts
export default mergeConfig(
  base,
  defineConfig({
    test: {
      projects: [
        {
          extends: true,
          test: {
            name: "kube",
            include: ["test/operator-*.test.ts"],
            globalSetup: ["./test/infra/kube-setup.ts"],
            fileParallelism: false,
          },
        },
      ],
    },
  }),
);
