import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { KafkaSchema } from "../functions/contracts/questatraining.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { parseKafkaConnectionConfig } from "../functions/runtime/kafka-bus.ts";
import { artifactStores, kafkaConnections, parseArtifactStores, parseOperatorConfig } from "./main.ts";

describe("parseOperatorConfig", () => {
  it("reads the environment with defaults, and flags override it", () => {
    const config = parseOperatorConfig(
      { QUESTA_OPERATOR_IMAGE: "questa:1", QUESTA_METRICS_PORT: "9000", QUESTA_WATCH_NAMESPACE: "" },
      ["--leader-elect=false", "--watch-namespace=ml"],
    );
    expect(config).toMatchObject({
      QUESTA_OPERATOR_IMAGE: "questa:1",
      QUESTA_METRICS_PORT: 9000,
      QUESTA_LEADER_ELECT: "false",
      QUESTA_WATCH_NAMESPACE: "ml",
      QUESTA_LEADER_ELECTION_LEASE: "questa-operator",
      QUESTA_AUTOSCALE_INTERVAL_MS: 15_000,
    });
  });

  it("names every invalid setting and how to set it", () => {
    let error: unknown;
    try {
      parseOperatorConfig({ QUESTA_METRICS_PORT: "http" }, []);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InputError);
    const issues = (error as InputError).issues;
    expect(issues.map((i) => i.path).sort()).toEqual(["QUESTA_METRICS_PORT", "QUESTA_OPERATOR_IMAGE"]);
    expect(issues.find((i) => i.path === "QUESTA_OPERATOR_IMAGE")?.hint).toContain("--operator-image=");
  });
});

describe("kafkaConnections", () => {
  const caDir = mkdtempSync(join(tmpdir(), "questa-operator-ca-"));
  afterAll(() => rmSync(caDir, { recursive: true, force: true }));
  const caFile = join(caDir, "ca.crt");
  writeFileSync(caFile, "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n");
  const own = parseKafkaConnectionConfig({ brokers: ["kafka-0:9093"], tls: { ca: caFile } });
  const kafka = (input: Record<string, unknown>) => KafkaSchema.parse(input);

  it("uses the operator's own connection for its own brokers, and never drops a spec's SASL or client certificate", async () => {
    const connections = kafkaConnections(own, { logLevel: "nothing" });
    try {
      const mine = connections.kafkaFor(kafka({}));
      expect("refused" in mine).toBe(false);
      const busOf = (k: ReturnType<typeof connections.kafkaFor>) => ("refused" in k ? undefined : k.bus);
      expect(busOf(connections.kafkaFor(kafka({ brokers: ["kafka-0:9093"] })))).toBe(busOf(mine));
      const sasl = connections.kafkaFor(
        kafka({
          brokers: ["other:9093"],
          tls: { secretRef: { name: "ca" } },
          sasl: { mechanism: "scram-sha-512", secretRef: { name: "user" } },
        }),
      );
      expect(sasl).toEqual({
        refused:
          "the operator does not connect to other:9093: they need SASL scram-sha-512 from the run's Secrets, which the operator never reads",
      });
      const mtls = connections.kafkaFor(
        kafka({ brokers: ["other:9093"], tls: { secretRef: { name: "ca" }, clientCertificate: true } }),
      );
      expect("refused" in mtls && mtls.refused).toContain("a client certificate");
      // the spec's TLS is kept: a TLS connection and a plaintext one to the same brokers are two clients
      const tls = connections.kafkaFor(
        kafka({ brokers: ["other:9093"], tls: { secretRef: { name: "ca" } } }),
      );
      const plain = connections.kafkaFor(kafka({ brokers: ["other:9093"] }));
      expect("refused" in tls || "refused" in plain).toBe(false);
      expect(busOf(tls)).not.toBe(busOf(plain));
    } finally {
      await connections.close();
    }
  });
});

describe("artifactStores", () => {
  it("lets the operator delete only in the admin's allow-list", () => {
    const allowed = parseArtifactStores("questa-runs@http://minio.storage:9000/, aws-runs");
    expect(allowed).toEqual([
      { bucket: "questa-runs", endpoint: "http://minio.storage:9000" },
      { bucket: "aws-runs" },
    ]);
    const access = artifactStores(allowed);
    const at = (bucket: string, endpoint?: string) =>
      access({ bucket, ...(endpoint ? { endpoint } : {}), region: "us-east-1", forcePathStyle: true });
    expect("store" in at("questa-runs", "http://minio.storage:9000")).toBe(true);
    expect("store" in at("aws-runs")).toBe(true);
    expect(at("questa-runs", "http://evil.example:9000")).toEqual({
      refused:
        "s3://questa-runs at http://evil.example:9000 is not in the operator's artifact-store allow-list (chart value artifactCleanup.allowedStores)",
    });
    expect("refused" in at("other-bucket", "http://minio.storage:9000")).toBe(true);
  });
});
