import {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSSASLAuthenticationError,
} from "kafkajs";
import { describe, expect, it } from "vitest";
import { DeadLetterError, InputError, RetryableError } from "./errors.ts";
import {
  classifyKafkaError,
  headersToStrings,
  kafkaClientConfig,
  kafkaConnectionConfigFromEnv,
  parseKafkaConnectionConfig,
  toBusMessage,
} from "./kafka-bus.ts";

// Unit tests of the pure parts of the Kafka adapter; the broker-facing parts are tested against a
// real Kafka in test/kafka-bus.test.ts.

function inputError(run: () => unknown): InputError {
  try {
    run();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error("expected an InputError");
}

describe("Kafka connection config", () => {
  it("fills defaults", () => {
    expect(parseKafkaConnectionConfig({ brokers: ["kafka:9092"] })).toEqual({
      brokers: ["kafka:9092"],
      clientId: "questa",
      connectionTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
    });
  });

  it("reports every problem with its path", () => {
    const error = inputError(() =>
      parseKafkaConnectionConfig({
        brokers: ["no-port"],
        tls: { cert: "/c.pem" },
        sasl: { mechanism: "gssapi", username: "u" },
      }),
    );
    const paths = error.issues.map((issue) => issue.path);
    expect(paths).toContain("brokers.0");
    expect(paths).toContain("sasl.mechanism");
    expect(error.code).toBe("invalid_kafka_config");
  });

  it("needs exactly one of password and passwordFile, and cert with key", () => {
    expect(
      inputError(() =>
        parseKafkaConnectionConfig({ brokers: ["k:1"], sasl: { mechanism: "plain", username: "u" } }),
      ).issues.map((i) => i.path),
    ).toEqual(["sasl.password"]);
    expect(
      inputError(() => parseKafkaConnectionConfig({ brokers: ["k:1"], tls: { cert: "/c.pem" } })).issues.map(
        (i) => i.path,
      ),
    ).toEqual(["tls.cert"]);
  });

  it("reads QUESTA_KAFKA_* variables", () => {
    const config = kafkaConnectionConfigFromEnv({
      QUESTA_KAFKA_BROKERS: "a:9092, b:9093",
      QUESTA_KAFKA_CLIENT_ID: "rollout-0",
      QUESTA_KAFKA_TLS_CA_FILE: "/secrets/ca.pem",
      QUESTA_KAFKA_SASL_MECHANISM: "SCRAM-SHA-512",
      QUESTA_KAFKA_SASL_USERNAME: "questa",
      QUESTA_KAFKA_SASL_PASSWORD_FILE: "/secrets/password",
    });
    expect(config).toMatchObject({
      brokers: ["a:9092", "b:9093"],
      clientId: "rollout-0",
      tls: { ca: "/secrets/ca.pem", rejectUnauthorized: true },
      sasl: { mechanism: "scram-sha-512", username: "questa", passwordFile: "/secrets/password" },
    });
    expect(kafkaConnectionConfigFromEnv({ QUESTA_KAFKA_BROKERS: "a:1", QUESTA_KAFKA_TLS: "true" }).tls).toBe(
      true,
    );
    expect(inputError(() => kafkaConnectionConfigFromEnv({})).issues[0]?.path).toBe("brokers");
  });

  it("builds kafkajs options, reading TLS and password files", () => {
    const files: Record<string, string> = {
      "/s/ca.pem": "CA",
      "/s/cert.pem": "CERT",
      "/s/key.pem": "KEY",
      "/s/pw": "secret\n",
    };
    const readFile = (path: string) => {
      const content = files[path];
      if (content === undefined) throw new Error("ENOENT");
      return content;
    };
    const config = parseKafkaConnectionConfig({
      brokers: ["k:9093"],
      tls: { ca: "/s/ca.pem", cert: "/s/cert.pem", key: "/s/key.pem" },
      sasl: { mechanism: "scram-sha-256", username: "u", passwordFile: "/s/pw" },
    });
    expect(kafkaClientConfig(config, readFile)).toMatchObject({
      brokers: ["k:9093"],
      ssl: { ca: "CA", cert: "CERT", key: "KEY", rejectUnauthorized: true },
      sasl: { mechanism: "scram-sha-256", username: "u", password: "secret" },
    });
    const missing = parseKafkaConnectionConfig({
      brokers: ["k:9093"],
      tls: { ca: "/nope/ca.pem" },
      sasl: { mechanism: "plain", username: "u", passwordFile: "/nope/pw" },
    });
    const error = inputError(() => kafkaClientConfig(missing, readFile));
    expect(error.issues.map((i) => i.path)).toEqual(["tls.ca", "sasl.passwordFile"]);
    expect(error.message).toContain("/nope/ca.pem");
  });
});

describe("classifyKafkaError", () => {
  it("makes transient failures retryable", () => {
    const connection = new KafkaJSConnectionError("Connection error: ECONNREFUSED");
    expect(classifyKafkaError(connection, "publish")).toBeInstanceOf(RetryableError);
    const exhausted = new KafkaJSNumberOfRetriesExceeded(connection, { retryCount: 5, retryTime: 1000 });
    const classified = classifyKafkaError(exhausted, "publish to t");
    expect(classified).toBeInstanceOf(RetryableError);
    expect((classified as RetryableError).message).toContain("kafka publish to t");
    expect((classified as RetryableError).cause).toBe(exhausted);
    const leaderMoved = new KafkaJSProtocolError({
      message: "not leader",
      type: "NOT_LEADER_FOR_PARTITION",
      retriable: true,
    } as unknown as Error);
    expect(classifyKafkaError(leaderMoved, "publish")).toBeInstanceOf(RetryableError);
  });

  it("dead-letters messages the broker refuses", () => {
    const tooLarge = new KafkaJSProtocolError({
      message: "The request included a message larger than the max message size the server will accept",
      type: "MESSAGE_TOO_LARGE",
      retriable: false,
    } as unknown as Error);
    const classified = classifyKafkaError(tooLarge, "publish");
    expect(classified).toBeInstanceOf(DeadLetterError);
    expect((classified as DeadLetterError).code).toBe("kafka_message_rejected");
  });

  it("leaves configuration problems and foreign errors alone", () => {
    // kafkajs' typings omit this constructor's message argument
    const auth = new (KafkaJSSASLAuthenticationError as unknown as new (message: string) => Error)(
      "SASL SCRAM SHA512 authentication failed",
    );
    expect(classifyKafkaError(auth, "connect")).toBe(auth);
    const fatal = new KafkaJSNonRetriableError("bad");
    expect(classifyKafkaError(fatal, "connect")).toBe(fatal);
    const handshake = new KafkaJSNumberOfRetriesExceeded(
      new KafkaJSConnectionError(
        "Connection error: SSL routines:ssl3_read_bytes:sslv3 alert bad certificate",
      ),
      { retryCount: 5, retryTime: 1000 },
    );
    expect(classifyKafkaError(handshake, "connect")).toBe(handshake);
    const bug = new TypeError("x is undefined");
    expect(classifyKafkaError(bug, "consume")).toBe(bug);
  });
});

describe("message conversion", () => {
  it("decodes header buffers to strings, first value of repeated keys", () => {
    expect(
      headersToStrings({
        ce_type: Buffer.from("dev.questa.rollout.v1"),
        plain: "text",
        repeated: [Buffer.from("first"), Buffer.from("second")],
        missing: undefined,
        utf8: Buffer.from("värde ✓"),
      }),
    ).toEqual({ ce_type: "dev.questa.rollout.v1", plain: "text", repeated: "first", utf8: "värde ✓" });
    expect(headersToStrings(undefined)).toEqual({});
  });

  it("turns a kafkajs message into a BusMessage", () => {
    const message = toBusMessage("t", 2, {
      key: Buffer.from("k"),
      value: Buffer.from([1, 2, 3]),
      timestamp: "1700000000000",
      attributes: 0,
      offset: "9007199254740993",
      headers: { h: Buffer.from("v") },
    });
    expect(message).toEqual({
      topic: "t",
      partition: 2,
      offset: "9007199254740993",
      key: "k",
      headers: { h: "v" },
      value: Uint8Array.from([1, 2, 3]),
      timestamp: 1_700_000_000_000,
    });
    const tombstone = toBusMessage("t", 0, {
      key: null,
      value: null,
      timestamp: "1",
      attributes: 0,
      offset: "0",
      size: 0,
    });
    expect(tombstone.key).toBeUndefined();
    expect(tombstone.value).toEqual(new Uint8Array(0));
  });
});
