import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  freePort,
  questaCacheDir,
  requireTool,
  runLogged,
  type ServerProcess,
  startServer,
  waitUntil,
} from "./kafka-s3-process.ts";

/**
 * MinIO, built from source with `go install` through the Go module proxy (MinIO tags releases as
 * RELEASE.* rather than semver, so the module is pinned by its pseudo-version), serving a
 * throwaway directory on a random loopback port.
 */

/** minio master of 2026-02-12, the newest module version the proxy serves */
export const defaultMinioModuleVersion = "v0.0.0-20260212201848-7aac2a2c5b7c";

export interface S3Endpoint {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

export interface RunningS3 extends S3Endpoint {
  stop(): Promise<void>;
  /**
   * kills MinIO (SIGKILL with `hard`, else a graceful stop), keeps it down for `downMs`, and starts
   * it again on the same port and data (only with `restartable`)
   */
  restart(options?: { hard?: boolean; downMs?: number }): Promise<void>;
}

/** path of the MinIO binary, built once into the cache (several minutes on 2 cores) */
export async function ensureMinio(moduleVersion: string = defaultMinioModuleVersion): Promise<string> {
  const binDir = join(questaCacheDir(), "bin");
  const binary = join(binDir, `minio-${moduleVersion}`);
  if (existsSync(binary)) return binary;
  requireTool(
    "go",
    ["version"],
    "install Go 1.24+ (https://go.dev/doc/install, or Debian's golang-go if new enough)",
  );
  const buildDir = mkdtempSync(join(tmpdir(), "questa-minio-build-"));
  const logFile = join(questaCacheDir(), `minio-build-${moduleVersion}.log`);
  process.stderr.write(
    `questa test infra: building MinIO ${moduleVersion} with go install (log: ${logFile})...\n`,
  );
  try {
    await runLogged("go", ["install", `github.com/minio/minio@${moduleVersion}`], {
      cwd: buildDir,
      env: {
        ...process.env,
        GOBIN: buildDir,
        GOFLAGS: "-buildvcs=false",
        GOTOOLCHAIN: "local",
        CGO_ENABLED: "0",
      },
      logFile,
      timeoutMs: 40 * 60_000,
      what: "go install of MinIO",
    });
    mkdirSync(binDir, { recursive: true });
    // rename is atomic: a concurrent run never sees a half-written binary
    renameSync(join(buildDir, "minio"), binary);
  } finally {
    rmSync(buildDir, { recursive: true, force: true });
  }
  return binary;
}

export async function startS3(
  options: {
    moduleVersion?: string;
    /** keep the data directory across `restart()`; it is then deleted by `stop()` only */
    restartable?: boolean;
  } = {},
): Promise<RunningS3> {
  const binary = await ensureMinio(options.moduleVersion);
  const workDir = mkdtempSync(join(tmpdir(), "questa-minio-"));
  const dataDir = join(workDir, "data");
  mkdirSync(dataDir);
  const [port, consolePort] = [await freePort(), await freePort()];
  const accessKeyId = "questa-test";
  const secretAccessKey = randomBytes(16).toString("hex");
  const launch = (): ServerProcess =>
    startServer({
      name: "MinIO",
      command: binary,
      args: [
        "server",
        "--quiet",
        "--address",
        `127.0.0.1:${port}`,
        "--console-address",
        `127.0.0.1:${consolePort}`,
        dataDir,
      ],
      env: {
        ...process.env,
        MINIO_ROOT_USER: accessKeyId,
        MINIO_ROOT_PASSWORD: secretAccessKey,
        MINIO_BROWSER: "off",
        MINIO_UPDATE: "off",
        MINIO_CI_CD: "1",
        HOME: workDir,
      },
      cwd: workDir,
      ...(options.restartable ? {} : { cleanupDir: workDir }),
      logFile: join(workDir, `minio-${Date.now()}.log`),
    });
  let server = launch();
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
  const ready = () =>
    waitUntil(
      `MinIO on port ${port}`,
      async () => (await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(2000) })).ok,
      { timeoutMs: 60_000, server },
    );
  const restart = async (how: { hard?: boolean; downMs?: number } = {}) => {
    if (!options.restartable) throw new Error("startS3({ restartable: true }) to restart MinIO");
    if (how.hard) {
      // the server is the watchdog's child: find it by its data directory, which no other process names
      spawnSync("pkill", ["-KILL", "-f", dataDir]);
    }
    await server.stop();
    await new Promise((resolveDown) => setTimeout(resolveDown, how.downMs ?? 0));
    server = launch();
    await ready();
  };
  try {
    await ready();
    return { endpoint, accessKeyId, secretAccessKey, region: "us-east-1", stop, restart };
  } catch (error) {
    await stop();
    throw error;
  }
}
