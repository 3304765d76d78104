import { randomBytes } from "node:crypto";
import { describe, expect, inject, it, onTestFailed } from "vitest";
import { stringify } from "yaml";
import { kubectl, kubectlExec, kubeTool } from "../node-kubectl.ts";

// The test node's pod network and cluster DNS (test/infra/kube-node.ts): two pods named the way an
// Indexed Job names its pods (spec.hostname + spec.subdomain under a headless Service), each
// serving its name on an arbitrary port. From inside one pod, the other's
// `<hostname>.<subdomain>` (through the search path, as torchrun's PET_MASTER_ADDR) and the
// Service's name resolve with the C library's resolver, and a TCP connection to the other pod's IP
// gets its answer; a name outside the cluster is NXDOMAIN. The kubelet's readiness probes reach
// both pods on their IPs.

const image = inject("questaImage");
const namespace = `net-${randomBytes(3).toString("hex")}`;
/** an unprivileged port no configuration names: pod-to-pod traffic is not limited to known ports */
const port = 41_234;

/** a server answering every connection with its host name, ready once listening */
const serveName = `require("node:net").createServer((s) => s.end(require("node:os").hostname() + "\\n")).listen(${port});`;

function peer(index: number) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: `peer-${index}`, namespace, labels: { app: "peer" } },
    spec: {
      hostname: `peer-${index}`,
      subdomain: "peers",
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: "peer",
          image,
          imagePullPolicy: "Never",
          command: ["node", "-e", serveName],
          readinessProbe: { tcpSocket: { port }, periodSeconds: 1 },
          resources: { requests: { cpu: "10m", memory: "32Mi" } },
        },
      ],
    },
  };
}

/** run in a pod: resolve with getaddrinfo (the C library, as Python and torch do), then connect */
const resolveAndConnect = `
const dns = require("node:dns/promises"), net = require("node:net");
(async () => {
  const lookup = async (name) => (await dns.lookup(name, { all: true, family: 4 })).map((a) => a.address).sort();
  const peer = await lookup("peer-0.peers");
  const ask = () => new Promise((resolve, reject) => {
    const socket = net.connect(${port}, peer[0]);
    let data = "";
    socket.on("data", (d) => (data += d)).on("end", () => resolve(data.trim())).on("error", reject);
  });
  // once a run saw one refusal right after both pods were Ready; a few are allowed (and shown)
  let refused = 0, reply;
  for (;;) {
    try { reply = await ask(); break; } catch (error) {
      if (error.code !== "ECONNREFUSED" || ++refused >= 20) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  console.log(JSON.stringify({
    peer, reply, refused,
    fqdn: await lookup("peer-0.peers.${namespace}.svc.cluster.local"),
    service: await lookup("peers"),
    kubernetes: await lookup("kubernetes.default"),
    outside: await lookup("huggingface.co").then(() => "resolved", (error) => error.code),
    resolvConf: require("node:fs").readFileSync("/etc/resolv.conf", "utf8"),
  }));
})().catch((error) => { console.error(String(error)); process.exit(1); });`;

describe("the test node's pod network", () => {
  it("pods reach each other by IP on any port and by their Indexed-Job-style names", async () => {
    onTestFailed(async () => {
      const described = await kubectl("-n", namespace, "describe", "pods").catch((e) => String(e));
      console.error(described);
    });
    await kubectl("create", "namespace", namespace);
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "peers", namespace },
      spec: {
        clusterIP: "None",
        publishNotReadyAddresses: true,
        selector: { app: "peer" },
        ports: [{ name: "peer", port }],
      },
    };
    await kubeTool(
      "kubectl",
      ["apply", "-f", "-"],
      [service, peer(0), peer(1)].map((o) => stringify(o)).join("---\n"),
    );
    // Ready: the kubelet's probe reached each pod's IP from the node
    await kubectl(
      "-n",
      namespace,
      "wait",
      "--for=condition=Ready",
      "pod/peer-0",
      "pod/peer-1",
      "--timeout=120s",
    );
    const ips = JSON.parse(await kubectl("-n", namespace, "get", "pods", "-o", "json")) as {
      items: { metadata: { name: string }; status: { podIP: string } }[];
    };
    const ip = Object.fromEntries(ips.items.map((p) => [p.metadata.name, p.status.podIP]));
    expect(ip["peer-0"]).toMatch(/^10\.244\.0\.\d+$/);
    expect(ip["peer-1"]).toMatch(/^10\.244\.0\.\d+$/);
    expect(ip["peer-0"]).not.toBe(ip["peer-1"]);

    const seen = JSON.parse(
      await kubectlExec(namespace, "peer-1", ["node", "-e", resolveAndConnect]),
    ) as Record<string, unknown>;
    if (seen.refused !== 0)
      console.warn(`peer-1's connection to peer-0 was refused ${seen.refused} time(s) first`);
    expect(seen).toMatchObject({
      peer: [ip["peer-0"]],
      reply: "peer-0",
      fqdn: [ip["peer-0"]],
      service: [ip["peer-0"], ip["peer-1"]].sort(),
      kubernetes: ["10.96.0.1"],
      // no resolver outside the cluster: a name out there does not exist, at once
      outside: "ENOTFOUND",
    });
    // the kubelet's clusterDNS and the cluster's search path, as on a real cluster
    expect(seen.resolvConf).toContain("nameserver 10.96.0.10");
    expect(seen.resolvConf).toContain(
      `search ${namespace}.svc.cluster.local svc.cluster.local cluster.local`,
    );

    await kubectl("delete", "namespace", namespace, "--wait=false");
  }, 240_000);
});
