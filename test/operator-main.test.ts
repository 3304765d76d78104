import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import { QUESTA_TRAINING } from "../operator/questatraining-controller.ts";
import { freePort } from "./infra/kube-server.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  repoRoot,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";

const kube = await kubeContext();
afterAll(async () => await kube.stop());
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const operatorKubeconfig = kube.operatorKubeconfig;
const operatorNamespace = kube.operatorNamespace;
const admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }));

let namespace: string;
let port: number;
let child: ChildProcess | undefined;
let output = "";

beforeAll(async () => {
  await installChart(bin, kubeconfig, operatorNamespace);
  namespace = await createNamespace(bin, kubeconfig, "main");
  port = await freePort();
});

afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
});

describe("operator/main.ts as a process", () => {
  it("starts from its environment, serves /metrics, reconciles, and exits cleanly on SIGTERM", async () => {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      KUBECONFIG: operatorKubeconfig,
      QUESTA_OPERATOR_IMAGE: "ghcr.io/questa-dev/questa:test",
      QUESTA_WATCH_NAMESPACE: namespace,
      QUESTA_LEADER_ELECT: "false",
      QUESTA_METRICS_PORT: String(port),
      QUESTA_LOG_LEVEL: "warn",
    };
    child = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "operator", "main.ts")], {
      cwd: repoRoot,
      env,
    });
    child.stdout?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    child.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
    });
    const metrics = await eventually(
      "/metrics",
      async () => {
        const response = await fetch(`http://127.0.0.1:${port}/metrics`);
        const text = await response.text();
        return text.includes("questa_operator_leader 1") ? text : undefined;
      },
      30_000,
      200,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\noperator output:\n${output}`);
    });
    expect(metrics).toContain("questa_operator_reconcile_duration_seconds");
    expect(metrics).toContain("questa_operator_queue_depth");
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);

    // this operator has no Kafka of its own, so a run without brokers is rejected with the field to fix
    await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(
        namespace,
        "no-brokers",
        "datasets:\n  train:\n    - name: s\n      synthetic: { count: 4 }",
      ),
    );
    const condition = await eventually("InvalidSpec condition", async () => {
      const object = await admin.get(QUESTA_TRAINING, "no-brokers", namespace);
      const conditions = (
        object?.status as
          | { conditions?: { type: string; status: string; reason: string; message: string }[] }
          | undefined
      )?.conditions;
      return conditions?.find((c) => c.type === "Failed" && c.status === "True");
    });
    expect(condition.reason).toBe("InvalidSpec");
    expect(condition.message).toContain("spec.kafka.brokers");
    // the status write lands before the reconcile that wrote it is counted: wait for the count
    const reconciles = await eventually("a counted reconcile", async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return /questa_operator_reconcile_total\{result="success"\} [1-9]/.test(text) ? text : undefined;
    });
    expect(reconciles).toMatch(/questa_operator_reconcile_total\{result="success"\} [1-9]/);

    const exited = new Promise<number | null>((resolve) => child?.once("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
