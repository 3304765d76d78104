import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import { LEASE } from "../operator/leader-election.ts";
import { DEPLOYMENT } from "../operator/questatraining-controller.ts";
import { MemoryTopicAdmin } from "../operator/topic-admin.ts";
import { type KubeTestCluster, startKubeTestCluster } from "./infra/kube-server.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  MemoryLagReader,
  mustTool,
  startTestOperator,
  type TestOperator,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";

const kube = await kubeContext();
afterAll(async () => await kube.stop());
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const operatorKubeconfig = kube.operatorKubeconfig;
const operatorNamespace = kube.operatorNamespace;
const admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }));

const spec = `
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
`;

let namespace: string;
const running: TestOperator[] = [];

async function reconciled(name: string): Promise<boolean> {
  return await eventually(`${name} reconciled`, async () =>
    (await admin.get(DEPLOYMENT, `${name}-learn`, namespace)) ? true : undefined,
  );
}

async function leaseHolder(): Promise<string | undefined> {
  const lease = await admin.get(LEASE, "questa-operator", operatorNamespace);
  return (lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
}

beforeAll(async () => {
  await installChart(bin, kubeconfig, operatorNamespace);
  namespace = await createNamespace(bin, kubeconfig, "resilience");
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((t) => t.operator.stop()));
});

describe("operator resilience against a real kube-apiserver", () => {
  it("two replicas elect one leader through a Lease and fail over when it stops", async () => {
    const shared = { bus: new MemoryBus(), topics: new MemoryTopicAdmin(), lag: new MemoryLagReader() };
    const election = {
      enabled: true,
      namespace: operatorNamespace,
      leaseName: "questa-operator",
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 300,
    };
    const first = startTestOperator(
      operatorKubeconfig,
      { instance: "replica-a", namespace, leaderElection: election },
      shared,
    );
    const second = startTestOperator(
      operatorKubeconfig,
      { instance: "replica-b", namespace, leaderElection: election },
      shared,
    );
    running.push(first, second);
    await first.operator.start();
    await second.operator.start();
    const leader = await eventually("a leader", async () =>
      first.operator.isLeader ? first : second.operator.isLeader ? second : undefined,
    );
    const standby = leader === first ? second : first;
    // the standby tries as often as the leader renews (every retry period): while the lease is
    // renewed several times, every try of the standby's must find it live and leave it alone
    const holders = new Set<string | undefined>();
    const renewals = new Set<string>();
    await eventually(
      "the leader to renew the lease several times",
      async () => {
        const lease = await admin.get(LEASE, "questa-operator", operatorNamespace);
        const spec = lease?.spec as { holderIdentity?: string; renewTime?: string } | undefined;
        holders.add(spec?.holderIdentity);
        if (spec?.renewTime) renewals.add(spec.renewTime);
        return renewals.size > 3 ? true : undefined;
      },
      20_000,
      50,
    );
    expect([...holders]).toEqual([leader === first ? "replica-a" : "replica-b"]);
    expect(standby.operator.isLeader).toBe(false);
    expect(await leaseHolder()).toBe(leader === first ? "replica-a" : "replica-b");
    expect(await leader.metrics.value("questa_operator_leader")).toBe(1);

    await kubectlApply(bin, kubeconfig, trainingYaml(namespace, "led-one", spec));
    await reconciled("led-one");

    // the leader dies without releasing the lease: the standby takes over once the lease expires
    await leader.operator.stop({ release: false });
    await eventually("the standby leads", async () => (standby.operator.isLeader ? true : undefined), 20_000);
    expect(await leaseHolder()).toBe(standby === first ? "replica-a" : "replica-b");
    await kubectlApply(bin, kubeconfig, trainingYaml(namespace, "led-two", spec));
    await reconciled("led-two");

    // a graceful stop releases the lease at once
    await standby.operator.stop();
    expect(await leaseHolder()).toBe("");
  });
});

describe("operator resilience to its API server going away", () => {
  // a private etcd + kube-apiserver: restarting the shared one would disturb the other test files
  let cluster: KubeTestCluster;
  let privateAdmin: ClientNodeKubeApi;

  beforeAll(async () => {
    cluster = await startKubeTestCluster({ operatorNamespace: "questa-system" });
    privateAdmin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: cluster.kubeconfig }));
    await installChart(cluster.binDir, cluster.kubeconfig, "questa-system");
    await mustTool(cluster.binDir, "kubectl", [
      "--kubeconfig",
      cluster.kubeconfig,
      "create",
      "namespace",
      "restart",
    ]);
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  const reconciledHere = async (name: string) =>
    await eventually(`${name} reconciled`, async () =>
      (await privateAdmin.get(DEPLOYMENT, `${name}-learn`, "restart")) ? true : undefined,
    );

  it("survives a kube-apiserver restart and relists after 410 Gone on its watch", async () => {
    const test = startTestOperator(cluster.operatorKubeconfig, { instance: "restart", namespace: "restart" });
    running.push(test);
    await test.operator.start();
    await kubectlApply(cluster.binDir, cluster.kubeconfig, trainingYaml("restart", "before-restart", spec));
    await reconciledHere("before-restart");
    const expiredBefore = await test.metrics.value("questa_operator_watch_relists_total", {
      reason: "expired",
    });

    await cluster.stopApiServer();
    // while the API server is down, move etcd's revision on: the operator's last resourceVersion is then
    // older than anything the restarted API server's watch cache holds, so resuming the watch gets 410 Gone
    for (let i = 0; i < 3; i += 1) {
      const put = await fetch(`${cluster.etcdEndpoint}/v3/kv/put`, {
        method: "POST",
        body: JSON.stringify({ key: Buffer.from(`/questa-test/bump-${i}`).toString("base64"), value: "" }),
      });
      expect(put.ok).toBe(true);
    }
    await cluster.startApiServer();

    await kubectlApply(cluster.binDir, cluster.kubeconfig, trainingYaml("restart", "after-restart", spec));
    await reconciledHere("after-restart");
    expect(await test.metrics.value("questa_operator_watch_errors_total")).toBeGreaterThan(0);
    expect(
      await test.metrics.value("questa_operator_watch_relists_total", { reason: "expired" }),
    ).toBeGreaterThan(expiredBefore);
  });
});
