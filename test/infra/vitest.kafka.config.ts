import { defineConfig } from "vitest/config";

// Runs only the Kafka and S3 integration tests with their servers, before (or besides) the main
// config's integration project: `npx vitest run --config test/infra/vitest.kafka.config.ts`.
export default defineConfig({
  test: {
    root: new URL("../..", import.meta.url).pathname,
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ["test/kafka-*.test.ts", "test/s3-*.test.ts"],
    globalSetup: ["test/infra/kafka-s3-setup.ts"],
    // the AWS SDK's notice that its 2027 releases need Node 22 is noise in test output
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  },
});
