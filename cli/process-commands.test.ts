import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { testTempDir } from "../test/temp-dir.ts";
import { main } from "./main.ts";
import { clusterSpec, functionProcessEnv, parseBrokers, parseS3Location } from "./process-run.ts";
import { captureIO } from "./test-io.ts";

const root = join(import.meta.dirname, "..");

describe("questa function", () => {
  it("refuses a missing or unknown function, a missing --config and unknown flags", async () => {
    const none = captureIO(root);
    expect(await main(["function"], none.io)).toBe(2);
    expect(none.stderr()).toContain("usage: questa function <augment|rollout|learn|evaluate|vllm-sync>");

    const unknown = captureIO(root);
    expect(await main(["function", "train", "--config", "x.yaml"], unknown.io)).toBe(2);
    expect(unknown.stderr()).toContain(
      'unknown function "train"; expected one of augment, rollout, learn, evaluate, vllm-sync',
    );

    const noConfig = captureIO(root);
    expect(await main(["function", "learn"], noConfig.io)).toBe(2);
    expect(noConfig.stderr()).toContain("--config FILE is required");

    const badFlag = captureIO(root);
    expect(await main(["function", "learn", "--config", "x.yaml", "--broker", "a:1"], badFlag.io)).toBe(2);
    expect(badFlag.stderr()).toContain("--broker: unknown option");
  });

  it("names every missing environment variable before connecting anywhere", async () => {
    const { io, stderr } = captureIO(root);
    expect(await main(["function", "evaluate", "--config", "training.yaml"], io)).toBe(2);
    expect(stderr()).toContain("cannot start (invalid_environment)");
    expect(stderr()).toContain("QUESTA_RUN:");
    expect(stderr()).toContain("QUESTA_TOPIC_PREFIX:");
  });
});

describe("questa operator", () => {
  it("refuses arguments that are not --setting=value and reports missing settings", async () => {
    const positional = captureIO(root);
    expect(await main(["operator", "now"], positional.io)).toBe(2);
    expect(positional.stderr()).toContain('expected --setting=value, got "now"');

    const missing = captureIO(root);
    expect(await main(["operator", "--leader-elect=false"], missing.io)).toBe(2);
    expect(missing.stderr()).toContain("QUESTA_OPERATOR_IMAGE");

    const invalid = captureIO(root);
    expect(await main(["operator", "--operator-image=questa:dev", "--leader-elect=maybe"], invalid.io)).toBe(
      2,
    );
    expect(invalid.stderr()).toContain("QUESTA_LEADER_ELECT");
  });
});

describe("questa run --kafka --s3", () => {
  it("needs both flags, valid brokers and an S3 URL with a bucket", async () => {
    const dir = testTempDir("questa-run-flags-");
    writeFileSync(join(dir, "run.yaml"), "kind: nothing\n");
    const kafkaOnly = captureIO(dir);
    expect(await main(["run", "run.yaml", "--kafka", "127.0.0.1:9092"], kafkaOnly.io)).toBe(2);
    expect(kafkaOnly.stderr()).toContain("--kafka and --s3 go together");

    const badBrokers = captureIO(dir);
    expect(await main(["run", "run.yaml", "--kafka", "localhost", "--s3", "s3://b1x/p"], badBrokers.io)).toBe(
      2,
    );
    expect(badBrokers.stderr()).toContain("--kafka: not host:port: localhost");

    const noBucket = captureIO(dir);
    expect(
      await main(["run", "run.yaml", "--kafka", "k:9092", "--s3", "http://minio:9000"], noBucket.io),
    ).toBe(2);
    expect(noBucket.stderr()).toContain("--s3: http://minio:9000 names no bucket");

    const scheme = captureIO(dir);
    expect(await main(["run", "run.yaml", "--kafka", "k:9092", "--s3", "ftp://x/y"], scheme.io)).toBe(2);
    expect(scheme.stderr()).toContain("unsupported scheme ftp:");
  });

  it("reads S3 URLs of AWS and of S3-compatible servers", () => {
    expect(parseS3Location("s3://questa-runs/team/a")).toEqual({ bucket: "questa-runs", prefix: "team/a/" });
    expect(parseS3Location("http://127.0.0.1:9000/questa")).toEqual({
      bucket: "questa",
      prefix: "",
      endpoint: "http://127.0.0.1:9000",
    });
    expect(parseBrokers("a:1, b:2")).toEqual(["a:1", "b:2"]);
  });
});

describe("function process environment", () => {
  it("is what the operator sets on the pod, with the command line's Kafka and S3", async () => {
    const { QuestATrainingSchema } = await import("../functions/contracts/questatraining.ts");
    const resource = QuestATrainingSchema.parse({
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: { name: "demo" },
      spec: { datasets: { train: [{ name: "t", synthetic: { count: 4 } }] } },
    });
    const spec = clusterSpec(resource.spec, ["k:9092"], {
      bucket: "runs",
      prefix: "p/",
      endpoint: "http://minio:9000",
    });
    const env = functionProcessEnv(
      { name: "demo", namespace: "default", uid: "" },
      spec,
      "rollout",
      "/tmp/demo/training.yaml",
      { AWS_ACCESS_KEY_ID: "id", HOME: "/home/me" },
    );
    expect(env).toMatchObject({
      QUESTA_RUN: "demo",
      QUESTA_FUNCTION: "rollout",
      QUESTA_CONFIG: "/tmp/demo/training.yaml",
      QUESTA_TOPIC_PREFIX: "questa.default.demo",
      QUESTA_CONSUMER_GROUP: "questa.default.demo.rollout",
      QUESTA_KAFKA_BROKERS: "k:9092",
      QUESTA_S3_BUCKET: "runs",
      QUESTA_S3_PREFIX: "p/namespaces/default/",
      QUESTA_DATA_SOURCES: "any",
      QUESTA_S3_ENDPOINT: "http://minio:9000",
      QUESTA_S3_FORCE_PATH_STYLE: "true",
      QUESTA_METRICS_PORT: "0",
      AWS_ACCESS_KEY_ID: "id",
      HOME: "/home/me",
    });
  });
});
