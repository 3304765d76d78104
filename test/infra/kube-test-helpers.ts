import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { inject } from "vitest";
import { systemClock } from "../../functions/runtime/clock.ts";
import { createLogger, silentLogger } from "../../functions/runtime/logger.ts";
import { MemoryBus } from "../../functions/runtime/memory-bus.ts";
import type { ObjectStore } from "../../functions/runtime/object-store.ts";
import {
  type ArtifactAccess,
  type ArtifactLocation,
  objectStoreArtifacts,
} from "../../operator/artifacts.ts";
import type { KubeApi } from "../../operator/kube-api.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../../operator/kube-client.ts";
import { OperatorMetrics } from "../../operator/metrics.ts";
import { Operator, type OperatorOptions } from "../../operator/operator.ts";
import type { ConsumerLagReader } from "../../operator/questatraining-controller.ts";
import { MemoryTopicAdmin } from "../../operator/topic-admin.ts";
import { startKubeTestCluster } from "./kube-server.ts";

const run = promisify(execFile);
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const RELEASE = "questa";

/** What a test file needs of the kube-apiserver; `stop` tears down a cluster the file started itself. */
export interface KubeContext {
  kubeconfig: string;
  operatorKubeconfig: string;
  operatorNamespace: string;
  binDir: string;
  etcdEndpoint: string;
  stop(): Promise<void>;
}

/**
 * The shared cluster of test/infra/kube-setup.ts when the vitest project runs it as globalSetup;
 * otherwise a cluster of this test file's own (a few seconds more, same real servers).
 */
export async function kubeContext(): Promise<KubeContext> {
  const kubeconfig = inject("kubeconfig");
  if (kubeconfig) {
    return {
      kubeconfig,
      operatorKubeconfig: inject("operatorKubeconfig"),
      operatorNamespace: inject("operatorNamespace"),
      binDir: inject("kubeBinDir"),
      etcdEndpoint: inject("etcdEndpoint"),
      stop: async () => {},
    };
  }
  const cluster = await startKubeTestCluster();
  return {
    kubeconfig: cluster.kubeconfig,
    operatorKubeconfig: cluster.operatorKubeconfig,
    operatorNamespace: cluster.operatorNamespace,
    binDir: cluster.binDir,
    etcdEndpoint: cluster.etcdEndpoint,
    stop: () => cluster.stop(),
  };
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary from the kube bin dir; never throws on a non-zero exit (tests assert on it). */
export async function tool(binDir: string, name: string, args: readonly string[]): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(join(binDir, name), [...args], {
      cwd: repoRoot,
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === "number" ? failed.code : 1,
      stdout: failed.stdout ?? "",
      stderr: failed.stderr ?? "",
    };
  }
}

export async function mustTool(binDir: string, name: string, args: readonly string[]): Promise<string> {
  const result = await tool(binDir, name, args);
  if (result.code !== 0)
    throw new Error(`${name} ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  return result.stdout;
}

/** `helm upgrade --install` of charts/questa into the operator namespace (idempotent across test files). */
/** Serialises a section across test files (helm refuses concurrent operations on one release). */
async function withLock<T>(name: string, body: () => Promise<T>): Promise<T> {
  const lock = join(tmpdir(), `questa-${name}.lock`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // a lock older than two minutes belongs to a crashed run
      const since = statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now();
      if (Date.now() > deadline || Date.now() - since > 120_000) {
        rmSync(lock, { recursive: true, force: true });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await body();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** `helm upgrade --install` of the chart, then waits until its CRD is established (served) */
export async function installChart(binDir: string, kubeconfig: string, namespace: string): Promise<string> {
  const output = await withLock(
    `helm-${createHash("sha256").update(kubeconfig).digest("hex").slice(0, 12)}`,
    () => installChartNow(binDir, kubeconfig, namespace),
  );
  await mustTool(binDir, "kubectl", [
    "--kubeconfig",
    kubeconfig,
    "wait",
    "--for=condition=Established",
    "--timeout=30s",
    "crd/questatrainings.questa.dev",
  ]);
  return output;
}

async function installChartNow(binDir: string, kubeconfig: string, namespace: string): Promise<string> {
  return await mustTool(binDir, "helm", [
    "upgrade",
    "--install",
    RELEASE,
    // QUESTA_CHART_DIR: test another copy of the chart (e.g. an unpacked release tarball)
    process.env.QUESTA_CHART_DIR ?? join(repoRoot, "charts", "questa"),
    "--kubeconfig",
    kubeconfig,
    "--namespace",
    namespace,
    "--create-namespace",
    "--set",
    "kafka.brokers={kafka-0.kafka:9092}",
  ]);
}

export async function createNamespace(binDir: string, kubeconfig: string, prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(3).toString("hex")}`;
  await mustTool(binDir, "kubectl", ["--kubeconfig", kubeconfig, "create", "namespace", name]);
  return name;
}

export async function kubectlApply(binDir: string, kubeconfig: string, yaml: string): Promise<CommandResult> {
  const { spawn } = await import("node:child_process");
  return await new Promise((resolveResult) => {
    const child = spawn(join(binDir, "kubectl"), ["--kubeconfig", kubeconfig, "apply", "-f", "-"], {
      cwd: repoRoot,
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("close", (code) => resolveResult({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(yaml);
  });
}

export class MemoryLagReader implements ConsumerLagReader {
  readonly lags = new Map<string, number>();
  async lag(groupId: string): Promise<number> {
    return this.lags.get(groupId) ?? 0;
  }
}

export interface TestOperator {
  operator: Operator;
  api: KubeApi;
  bus: MemoryBus;
  topics: MemoryTopicAdmin;
  lag: MemoryLagReader;
  metrics: OperatorMetrics;
}

/** An in-process operator authenticated as the chart's service account (so the chart's RBAC applies). */
export function startTestOperator(
  kubeconfig: string,
  options: Partial<OperatorOptions> & { instance: string },
  shared?: { bus: MemoryBus; topics: MemoryTopicAdmin; lag: MemoryLagReader },
  /** where the finalizer deletes objects: one store for every location, or the operator's own lookup */
  artifacts?: ObjectStore | ((location: ArtifactLocation) => ArtifactAccess),
): TestOperator {
  const api = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }), {
    requestTimeoutMs: 5_000,
  });
  const bus = shared?.bus ?? new MemoryBus();
  const topics = shared?.topics ?? new MemoryTopicAdmin();
  const lag = shared?.lag ?? new MemoryLagReader();
  const metrics = new OperatorMetrics();
  const operator = new Operator(
    {
      api,
      kafkaFor: () => ({ bus, topics, lag }),
      ...(artifacts === undefined
        ? {}
        : {
            artifactsFor:
              typeof artifacts === "function"
                ? artifacts
                : () => ({ store: objectStoreArtifacts(artifacts) }),
          }),
      clock: systemClock,
      metrics,
      log: process.env.QUESTA_TEST_LOG ? createLogger({ level: "debug" }) : silentLogger(),
    },
    {
      defaultImage: "ghcr.io/questa-dev/questa:test",
      defaultKafkaBrokers: ["kafka-0.kafka:9092"],
      autoscaleIntervalMs: 500,
      scaleDownAfterMs: 1_000,
      lagPerReplica: 10,
      watchMaxBackoffMs: 1_000,
      leaderElection: { enabled: false, namespace: "questa-system", leaseName: "questa-operator" },
      ...options,
    },
  );
  return { operator, api, bus, topics, lag, metrics };
}

/** Polls until `probe` returns a value other than undefined; fails with the last observation. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

export function trainingYaml(namespace: string, name: string, specYaml: string): string {
  return `apiVersion: questa.dev/v1alpha1
kind: QuestATraining
metadata:
  name: ${name}
  namespace: ${namespace}
spec:
${specYaml
  .trim()
  .split("\n")
  .map((line) => `  ${line}`)
  .join("\n")}
`;
}
