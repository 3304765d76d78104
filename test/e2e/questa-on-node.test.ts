import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it, onTestFailed } from "vitest";
import { parse, stringify } from "yaml";
import { DeadLetter } from "../../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../../functions/runtime/s3-object-store.ts";
import { installChart, kubectl, kubectlExec, kubeTool, podLogsReport } from "../node-kubectl.ts";
import { announcedSteps, readRunEvents } from "../questa-cli.ts";

// The whole path on a real node: `helm install` the chart with the image built without docker,
// `kubectl apply` a small QuestATraining on the test's Kafka and MinIO; the operator's pods run
// `questa function …` and the run reaches Succeeded. Along the way: a rollout pod is deleted, the
// learner's process is killed (SIGKILL), and the leading operator pod is killed; every step still
// happens exactly once, and the standby operator takes over. Pod security is checked inside the
// running containers, not only in their specs. The cluster is this project's own (kube-node-setup.ts)
// and goes away with it, release and run included.

const root = join(import.meta.dirname, "..", "..");
const image = inject("questaImage");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");
const run = promisify(execFile);

const suffix = randomBytes(3).toString("hex");
const system = `questa-e2e-${suffix}`;
const runs = `runs-${suffix}`;
const bucket = `questa-e2e-${suffix}`;
const name = "tiny-run";
// enough steps that the three drills (at steps 2, 4 and 6 as the status reports them) land mid-run
const totalSteps = 12;

interface Pod {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: string };
  status?: {
    phase?: string;
    containerStatuses?: { containerID?: string; restartCount: number; ready: boolean }[];
  };
}
async function pods(namespace: string, selector: string): Promise<Pod[]> {
  const list = JSON.parse(await kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json")) as {
    items: Pod[];
  };
  return list.items.filter((p) => !p.metadata.deletionTimestamp);
}
async function runningPod(namespace: string, selector: string): Promise<Pod> {
  let found: Pod | undefined;
  await expect
    .poll(
      async () => {
        found = (await pods(namespace, selector)).find((p) => p.status?.containerStatuses?.[0]?.ready);
        return found !== undefined;
      },
      { timeout: 180_000, interval: 1000 },
    )
    .toBe(true);
  if (!found) throw new Error(`no ready pod ${selector}`);
  return found;
}
async function qtStatus(): Promise<{ phase?: string; step?: number; stage?: number; passAt1?: number }> {
  const qt = JSON.parse(await kubectl("-n", runs, "get", "qt", name, "-o", "json")) as { status?: object };
  return qt.status ?? {};
}
async function waitForStep(step: number): Promise<void> {
  await expect
    .poll(
      async () => {
        const status = await qtStatus();
        if (status.phase === "Failed") throw new Error(`run failed: ${JSON.stringify(status)}`);
        return status.step ?? 0;
      },
      { timeout: 300_000, interval: 1000 },
    )
    .toBeGreaterThanOrEqual(step);
}

/** what a container sees at run time: its ids, capabilities, which paths it can write, its token */
const probeScript = `
const fs = require("node:fs");
const writable = (dir) => { try { fs.writeFileSync(dir + "/.questa-probe", "x"); fs.rmSync(dir + "/.questa-probe"); return true; } catch { return false; } };
const status = fs.readFileSync("/proc/self/status", "utf8");
console.log(JSON.stringify({
  uid: process.getuid(), gid: process.getgid(),
  capEff: /CapEff:\\s*(\\w+)/.exec(status)[1], noNewPrivs: /NoNewPrivs:\\s*(\\d)/.exec(status)[1],
  writable: ["/", "/app", "/etc", "/usr", "/tmp"].filter(writable),
  token: fs.existsSync("/var/run/secrets/kubernetes.io/serviceaccount/token"),
}));`;
async function probe(namespace: string, pod: string) {
  return JSON.parse(await kubectlExec(namespace, pod, ["node", "-e", probeScript])) as {
    uid: number;
    gid: number;
    capEff: string;
    noNewPrivs: string;
    writable: string[];
    token: boolean;
  };
}

describe("questa on a real node (containerd + kubelet)", () => {
  it("helm install, kubectl apply, Succeeded; survives a deleted rollout pod, a killed learner and a killed leader", async () => {
    // a failure here is hard to reproduce: keep what explains it, the run's status and each pod's log
    onTestFailed(async () => {
      const status = await qtStatus().catch((error) => String(error));
      console.error(`run status: ${JSON.stringify(status)}\n${await podLogsReport([system, runs])}`);
    });
    // the image built from Debian packages, imported into the node: questa:dev, never pulled
    await installChart({ namespace: system, image, brokers, values: ["autoscaling.intervalMs=2000"] });
    const operators = await pods(system, "app.kubernetes.io/instance=questa");
    expect(operators).toHaveLength(2);

    await kubectl("create", "namespace", runs);
    await kubeTool("kubectl", [
      "-n",
      runs,
      "create",
      "secret",
      "generic",
      "s3",
      `--from-literal=AWS_ACCESS_KEY_ID=${s3.accessKeyId}`,
      `--from-literal=AWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}`,
    ]);
    const store = new S3ObjectStore({
      bucket,
      prefix: `runs/namespaces/${runs}/`,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await store.ensureBucket();

    // test/functions-processes.test.ts's tiny run, sized for a 2-core node: one rollout worker and
    // small CPU requests (the node does not throttle them, see test/infra/kube-node.ts)
    const resource = parse(readFileSync(join(root, "test", "fixtures", "tiny-run.yaml"), "utf8"));
    resource.metadata.namespace = runs;
    const topicPrefix = `questa.${runs}.${name}`;
    const small = { cpu: "150m", memory: "1Gi", gpus: 0, scratch: "1Gi" };
    resource.spec.image = image;
    resource.spec.rollout = { ...resource.spec.rollout, replicas: { min: 1, max: 1 }, resources: small };
    resource.spec.learner = { ...resource.spec.learner, totalSteps, resources: small };
    resource.spec.evaluation = { ...resource.spec.evaluation, interval: 4, resources: small };
    resource.spec.kafka = { brokers, topicPrefix, partitions: 2, replicationFactor: 1 };
    resource.spec.storage = {
      bucket,
      prefix: "runs",
      region: s3.region,
      endpoint: s3.endpoint,
      forcePathStyle: true,
      credentialsSecretRef: { name: "s3" },
    };
    await kubeTool("kubectl", ["apply", "-f", "-"], stringify(resource));

    // security at run time: a function pod and an operator pod, from inside
    const rollout = await runningPod(runs, "app.kubernetes.io/component=rollout");
    const inRollout = await probe(runs, rollout.metadata.name);
    expect(inRollout).toEqual({
      uid: 65532,
      gid: 65532,
      capEff: "0000000000000000",
      noNewPrivs: "1",
      writable: ["/tmp"],
      token: false,
    });
    const inOperator = await probe(system, operators[0]?.metadata.name ?? "");
    // the operator needs its token (the API); nothing else differs
    expect(inOperator).toEqual({ ...inRollout, token: true });

    // 1. a rollout pod deleted mid-run: its Deployment replaces it, and its work is redelivered
    await waitForStep(2);
    await kubectl("-n", runs, "delete", "pod", rollout.metadata.name, "--wait=false");
    const drills: string[] = [`rollout pod deleted at step ${(await qtStatus()).step}`];

    // 2. the learner's process killed (SIGKILL) mid-run: the kubelet restarts it, it resumes
    await waitForStep(4);
    const learner = await runningPod(runs, "app.kubernetes.io/component=learn");
    const containerId = learner.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, "");
    expect(containerId).toBeTruthy();
    await run("ctr", [...inject("nodeCtr"), "tasks", "kill", "--signal", "SIGKILL", containerId ?? ""]);
    drills.push(`learner killed at step ${(await qtStatus()).step}`);
    // restarted in place by the kubelet (the same pod, a new container), not replaced
    await expect
      .poll(
        async () =>
          (await pods(runs, "app.kubernetes.io/component=learn")).map((p) => [
            p.metadata.name,
            p.status?.containerStatuses?.[0]?.restartCount,
          ]),
        { timeout: 120_000, interval: 1000 },
      )
      .toEqual([[learner.metadata.name, 1]]);

    // 3. the leading operator pod killed: the standby takes the lease and carries the run on
    await waitForStep(6);
    const leaseHolder = async () =>
      (
        await kubectl(
          "-n",
          system,
          "get",
          "lease",
          "questa-operator",
          "-o",
          "jsonpath={.spec.holderIdentity}",
        )
      ).trim();
    const leader = await leaseHolder();
    expect(operators.map((p) => p.metadata.name)).toContain(leader);
    const standby = operators.map((p) => p.metadata.name).find((n) => n !== leader);
    await kubectl("-n", system, "delete", "pod", leader, "--grace-period=0", "--force");
    drills.push(`leader ${leader} killed at step ${(await qtStatus()).step}`);
    // every drill happened before the run was over
    expect(Math.max(...drills.map((d) => Number(/step (\d+)/.exec(d)?.[1])))).toBeLessThan(totalSteps);

    // the killed leader's lease runs out (or its process, force-deleted from the API, is still being
    // stopped by the kubelet and renews a little longer): wait for the takeover, bounded
    await expect.poll(leaseHolder, { timeout: 120_000, interval: 1000 }).not.toBe(leader);
    const newLeader = await leaseHolder();
    await expect
      .poll(async () => (await qtStatus()).phase, { timeout: 420_000, interval: 2000 })
      .toBe("Succeeded");
    // the standby usually wins; the killed pod's replacement may, but never the killed pod
    expect([
      standby,
      ...(await pods(system, "app.kubernetes.io/instance=questa")).map((p) => p.metadata.name),
    ]).toContain(newLeader);

    // kubectl get qt: the printer columns the chart's CRD declares
    const table = await kubectl("-n", runs, "get", "qt", name);
    const [header = "", row = ""] = table.trim().split("\n");
    expect(header.split(/\s+/)).toEqual(["NAME", "PHASE", "STAGE", "STEP", "PASS@1", "AGE"]);
    const [, phase, stage, step, passAt1] = row.split(/\s+/);
    expect({ phase, step: Number(step) }).toEqual({ phase: "Succeeded", step: totalSteps });
    expect(Number(stage)).toBeGreaterThanOrEqual(1);
    expect(Number(passAt1)).toBeGreaterThanOrEqual(0);
    expect(Number(passAt1)).toBeLessThanOrEqual(1);

    const bus = new KafkaBus(
      { brokers, clientId: "questa-e2e-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    try {
      const events = await readRunEvents(bus, topicPrefix);
      expect(events.filter((e) => e.type === DeadLetter.type)).toEqual([]);
      // each step once: a step event published again after the kill has the same id and data
      expect(announcedSteps(events)).toEqual(Array.from({ length: totalSteps }, (_, i) => i + 1));

      // S3: checkpoints and evaluations; the learner's record: every step once, on distinct groups
      const keys = (await store.list(`${name}/`)).map((o) => o.key);
      const checkpoints = keys.filter((k) => /\/checkpoints\/step-\d+\/manifest\.json$/.test(k));
      expect(checkpoints).toContain(
        `${name}/checkpoints/step-${String(totalSteps).padStart(6, "0")}/manifest.json`,
      );
      const evaluations = keys.filter((k) => k.includes("/evaluations/"));
      expect(evaluations).toContain(
        `${name}/evaluations/step-${String(totalSteps).padStart(6, "0")}/hard-eval.jsonl`,
      );
      expect(keys.filter((k) => k.startsWith(`${name}/learner/pending/`))).toEqual([]);
      const state = JSON.parse(new TextDecoder().decode(await store.get(`${name}/learner/state.json`)));
      expect(state).toMatchObject({ step: totalSteps, finished: true });
      const trained = (state.consumed as { step: number; keys: string[] }[]).flatMap((c) => c.keys);
      expect(new Set(trained).size).toBe(trained.length);
      expect(state.consumed.map((c: { step: number }) => c.step)).toEqual(
        Array.from({ length: totalSteps }, (_, i) => i + 1),
      );
    } finally {
      await bus.close();
      store.close();
    }
    process.stderr.write(`questa e2e drills: ${drills.join("; ")}\n`);
  }, 900_000);
});
