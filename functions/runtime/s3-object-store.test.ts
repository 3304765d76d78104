import { describe, expect, it } from "vitest";
import { InputError, RetryableError } from "./errors.ts";
import {
  classifyS3Error,
  parseS3StoreConfig,
  S3ObjectStore,
  s3ClientConfig,
  s3StoreConfigFromEnv,
  secretDirCredentials,
} from "./s3-object-store.ts";

// Unit tests of the pure parts of the S3 adapter; reads and writes are tested against a real MinIO
// in test/s3-object-store.test.ts.

function inputError(run: () => unknown): InputError {
  try {
    run();
  } catch (error) {
    if (error instanceof InputError) return error;
    throw error;
  }
  throw new Error("expected an InputError");
}

function sdkError(name: string, status: number | undefined, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${name} happened`), {
    name,
    $metadata: { httpStatusCode: status },
    ...extra,
  });
}

describe("S3 store config", () => {
  it("fills defaults and uses path-style addressing for a custom endpoint", () => {
    const config = parseS3StoreConfig({ bucket: "questa-runs", endpoint: "http://minio:9000" });
    expect(config).toMatchObject({
      bucket: "questa-runs",
      prefix: "",
      region: "us-east-1",
      partSizeBytes: 16 * 1024 * 1024,
      maxAttempts: 5,
      verify: "required",
    });
    expect(s3ClientConfig(config)).toMatchObject({
      endpoint: "http://minio:9000",
      forcePathStyle: true,
      maxAttempts: 5,
      retryMode: "standard",
    });
    expect(s3ClientConfig(parseS3StoreConfig({ bucket: "questa-runs" })).forcePathStyle).toBe(false);
  });

  it("reports every problem with its path", () => {
    const error = inputError(() =>
      parseS3StoreConfig({
        bucket: "Not_A_Bucket",
        prefix: "/abs",
        endpoint: "not a url",
        partSizeBytes: 1024,
      }),
    );
    expect(error.issues.map((i) => i.path).sort()).toEqual(["bucket", "endpoint", "partSizeBytes", "prefix"]);
    expect(error.code).toBe("invalid_s3_config");
  });

  it("reads QUESTA_S3_* variables", () => {
    expect(
      s3StoreConfigFromEnv({
        QUESTA_S3_BUCKET: "questa",
        QUESTA_S3_PREFIX: "runs/demo/",
        QUESTA_S3_ENDPOINT: "http://minio.questa.svc:9000",
        QUESTA_S3_FORCE_PATH_STYLE: "false",
        QUESTA_S3_SECRET_DIR: "/var/run/secrets/s3",
      }),
    ).toMatchObject({
      bucket: "questa",
      prefix: "runs/demo/",
      endpoint: "http://minio.questa.svc:9000",
      forcePathStyle: false,
      credentials: { secretDir: "/var/run/secrets/s3" },
    });
    expect(inputError(() => s3StoreConfigFromEnv({})).issues[0]?.path).toBe("bucket");
  });

  it("names objects with s3:// URIs under the prefix and validates keys", () => {
    const store = new S3ObjectStore({
      bucket: "questa",
      prefix: "runs/",
      credentials: { accessKeyId: "a", secretAccessKey: "b" },
    });
    expect(store.uri("ckpt/step-10/manifest.json")).toBe("s3://questa/runs/ckpt/step-10/manifest.json");
    expect(() => store.uri("../x")).toThrow(InputError);
    store.close();
  });
});

describe("secretDirCredentials", () => {
  it("reads the mounted files and asks to be re-read later", async () => {
    const files: Record<string, string> = {
      "/s/AWS_ACCESS_KEY_ID": "AKIA\n",
      "/s/AWS_SECRET_ACCESS_KEY": "secret\n",
    };
    const provider = secretDirCredentials("/s", {
      readFile: (path) => {
        const content = files[path];
        if (content === undefined) throw new Error("ENOENT");
        return content;
      },
      clock: () => 1_000,
      refreshMs: 60_000,
    });
    expect(await provider()).toEqual({
      accessKeyId: "AKIA",
      secretAccessKey: "secret",
      expiration: new Date(61_000),
    });
    files["/s/AWS_SESSION_TOKEN"] = "token";
    files["/s/AWS_ACCESS_KEY_ID"] = "ROTATED";
    expect(await provider()).toMatchObject({ accessKeyId: "ROTATED", sessionToken: "token" });
    delete files["/s/AWS_SECRET_ACCESS_KEY"];
    await expect(provider()).rejects.toThrow(/AWS_SECRET_ACCESS_KEY/);
  });
});

describe("classifyS3Error", () => {
  it("makes throttling, 5xx and network failures retryable", () => {
    for (const error of [
      sdkError("SlowDown", 503),
      sdkError("InternalError", 500),
      sdkError("Unknown", 502),
      sdkError("TooManyRequests", 429),
      Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9000"), { code: "ECONNREFUSED" }),
      sdkError("TimeoutError", undefined),
    ]) {
      const classified = classifyS3Error(error, "get s3://b/k");
      expect(classified, error.name).toBeInstanceOf(RetryableError);
      expect((classified as RetryableError).cause).toBe(error);
      expect((classified as RetryableError).message).toContain("s3 get s3://b/k");
    }
  });

  it("leaves permanent failures alone", () => {
    for (const error of [
      sdkError("AccessDenied", 403),
      sdkError("NoSuchBucket", 404),
      new TypeError("bug"),
    ]) {
      expect(classifyS3Error(error, "put")).toBe(error);
    }
  });
});
