import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, type ServerProcess, startServer, waitUntil } from "./kafka-s3-process.ts";

/**
 * A real node for the test API server: containerd + runc + the kubelet, registered as node
 * `127.0.0.1`, so the operator's pods actually start (image, user, read-only root, mounts, probes,
 * pod-to-pod traffic and cluster DNS). What it takes on the CI machine kind (Debian 12, cgroup v1, no systemd, a machine shared
 * with other runs) is in test/infra/README.md; in short:
 *   - containerd and the kubelet share one private mount and PID namespace (node-run.sh)
 *   - every directory they write is under the node's temp dir; pods' cgroups under a root of their own
 *   - containerd, the kubelet and the pods' network live in a network namespace of the node's own: a
 *     bridge with the pod network POD_NETWORK.subnet (each pod a veth on it, cni-pod-network.sh), so
 *     pods reach each other on any port and the kubelet reaches them; CoreDNS there (its kubernetes
 *     plugin, as on a real cluster) answers `<service>.<namespace>.svc.cluster.local` and the
 *     `<hostname>.<subdomain>.<namespace>.svc.cluster.local` names of pods (an Indexed Job's) from
 *     the API server's Services and EndpointSlices. Nothing is added to the machine's interfaces,
 *     routes, rules, sysctls or iptables: the test's servers (127.0.0.1) reach into the namespace,
 *     and the API server reaches the kubelet, over Unix sockets (socat)
 * No registry is reachable: the images (questa, pause) are OCI tars imported with `ctr`.
 */

export const NODE_NAME = "127.0.0.1";
/** the CoreDNS kubeadm deploys with Kubernetes 1.35; scripts/install-kube-test-servers.sh --node builds it */
const COREDNS_VERSION = process.env.QUESTA_COREDNS_VERSION ?? "1.13.1";
/**
 * The pod network inside the node's network namespace (the same on every node: each has its own
 * namespace). `dns` is the kubelet's clusterDNS, in the Service range of the test API server
 * (10.96.0.0/24) as kube-dns is on a real cluster.
 */
export const POD_NETWORK = {
  bridge: "cni0",
  subnet: "10.244.0",
  gateway: "10.244.0.1",
  dns: "10.96.0.10",
  domain: "cluster.local",
} as const;
const infraDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(infraDir, "..", "..");

export interface KubeNode {
  name: string;
  dir: string;
  logFile: string;
  /** `ctr` arguments for the node's containerd, namespace k8s.io */
  ctrArgs: string[];
  /** runs `ctr` against the node's containerd (namespace k8s.io) */
  ctr(args: readonly string[]): string;
  stop(): Promise<void>;
}

export interface KubeNodeOptions {
  binDir: string;
  /** admin kubeconfig of the API server the kubelet registers with */
  kubeconfig: string;
  /** the API server's port on 127.0.0.1, reachable in pods as the kubernetes Service (10.96.0.1:443) */
  apiPort: number;
  /** ports of other test servers on 127.0.0.1 (Kafka, MinIO) reachable in pods at the same address */
  forwardPorts: readonly number[];
  /** OCI image tars imported into containerd before the kubelet starts */
  images: readonly { tar: string; reference: string }[];
}

const nodeTools: [string, string][] = [
  ["containerd", "containerd"],
  ["ctr", "containerd"],
  ["runc", "runc"],
  ["socat", "socat"],
  ["umoci", "umoci"],
  ["nsenter", "util-linux"],
  ["unshare", "util-linux"],
  ["flock", "util-linux"],
  ["ip", "iproute2"],
];

/** Installs what the node needs (scripts/install-kube-test-servers.sh --node) when a piece is missing. */
export function ensureNodeBinaries(binDir: string): void {
  const missing = [
    ...[
      "kubelet",
      "kube-scheduler",
      "kube-controller-manager",
      "pause",
      `coredns-v${COREDNS_VERSION}`,
    ].filter((b) => !existsSync(join(binDir, b))),
    ...nodeTools.filter(([tool]) => !onPath(tool)).map(([tool]) => tool),
    ...(existsSync("/usr/lib/cni/loopback") ? [] : ["containernetworking-plugins"]),
  ];
  if (missing.length === 0) return;
  try {
    execFileSync("bash", [join(repoRoot, "scripts", "install-kube-test-servers.sh"), "--node"], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, QUESTA_CACHE: dirname(binDir), QUESTA_COREDNS_VERSION: COREDNS_VERSION },
    });
  } catch (error) {
    throw new Error(
      `the test node needs ${missing.join(", ")}; scripts/install-kube-test-servers.sh --node failed: ${String(error)}`,
    );
  }
  const still = nodeTools.filter(([tool]) => !onPath(tool));
  if (still.length > 0) {
    throw new Error(
      `the test node needs ${still.map(([t]) => t).join(", ")} (Debian: apt-get install ${[...new Set(still.map(([, p]) => p))].join(" ")})`,
    );
  }
}

function onPath(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function containerdConfig(dir: string): string {
  const cri = '[plugins."io.containerd.grpc.v1.cri"';
  return `version = 2
root = "${dir}/containerd/root"
state = "${dir}/containerd/state"
# /opt/containerd of the "opt" plugin and the snapshotters the node does not use stay unloaded
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${dir}/containerd.sock"

[metrics]
  address = ""

${cri}]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # root without CAP_SYS_RESOURCE: containers may raise no oom_score_adj above the runtime's own
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

${cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

${cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

${cri}.containerd.runtimes.runc.options]
  # no systemd on the machine: the kubelet's cgroupfs driver, and runc's state in the node's dir
  SystemdCgroup = false
  Root = "${dir}/runc"

${cri}.cni]
  bin_dir = "${dir}/cni/bin"
  conf_dir = "${dir}/cni/conf"
`;
}

/**
 * CoreDNS's configuration: the cluster's zone from the API server (the admin kubeconfig, through
 * the node's forward of its port), authoritative (a missing name is NXDOMAIN); any other name is
 * NXDOMAIN at once, as the node reaches no other resolver.
 */
function corefile(kubeconfig: string): string {
  return `${POD_NETWORK.domain}:53 {
    bind ${POD_NETWORK.dns}
    errors
    kubernetes ${POD_NETWORK.domain} {
        kubeconfig ${kubeconfig} test
        pods disabled
        ttl 5
    }
}
.:53 {
    bind ${POD_NETWORK.dns}
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`;
}

function kubeletConfig(dir: string, cgroupRoot: string, port: number, healthzPort: number): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# the CI machine has cgroup v1 and no systemd
failCgroupV1: false
cgroupDriver: cgroupfs
# pods' cgroups under a root of this node's own, removed when it stops
cgroupRoot: ${cgroupRoot}
containerRuntimeEndpoint: unix://${dir}/containerd.sock
address: 127.0.0.1
port: ${port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: ${healthzPort}
# the API server is the only client (loopback): it connects without a client certificate
authentication:
  anonymous: { enabled: true }
  webhook: { enabled: false }
authorization: { mode: AlwaysAllow }
# never write the machine's global sysctls (node-run.sh shows the kubelet the values it wants)
protectKernelDefaults: true
podLogsDir: ${dir}/var-log/pods
volumePluginDir: ${dir}/volume-plugins
# pods resolve through the node's cluster DNS only (the machine's resolvers are not theirs)
resolvConf: ""
clusterDNS: ["${POD_NETWORK.dns}"]
clusterDomain: ${POD_NETWORK.domain}
failSwapOn: false
# two cores shared with other runs: limits are honoured for scheduling, not throttled by CFS
cpuCFSQuota: false
# a shared disk and memory: neither image garbage collection nor evictions on others' usage
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
serializeImagePulls: false
syncFrequency: 10s
`;
}

export async function startKubeNode(options: KubeNodeOptions): Promise<KubeNode> {
  ensureNodeBinaries(options.binDir);
  // a short path: containerd's and the forwarders' Unix sockets live under it (108-byte limit)
  const dir = mkdtempSync(join(tmpdir(), "qnode-"));
  const id = randomBytes(4).toString("hex");
  const cgroupRoot = `/questa-node-${id}`;
  for (const sub of ["cni/bin", "cni/conf", "var-log/pods", "kubelet", "volume-plugins"])
    mkdirSync(join(dir, sub), { recursive: true });
  writeFileSync(join(dir, "containerd.toml"), containerdConfig(dir));
  // the kubelet's port: on 127.0.0.1 in the node's network namespace, and on the machine's for the
  // API server (node-run.sh forwards it)
  const kubeletPort = await freePort();
  writeFileSync(join(dir, "kubelet.yaml"), kubeletConfig(dir, cgroupRoot, kubeletPort, await freePort()));
  execFileSync("cp", [options.kubeconfig, join(dir, "kubelet.kubeconfig")]);
  writeFileSync(join(dir, "Corefile"), corefile(join(dir, "kubelet.kubeconfig")));
  // the CNI plugin, with this node's settings; the runtime also needs the standard loopback plugin
  const forwards = [
    `10.96.0.1:443:${options.apiPort}`,
    ...options.forwardPorts.map((p) => `127.0.0.1:${p}:${p}`),
  ];
  const plugin = join(dir, "cni/bin/questa-pod-network");
  writeFileSync(
    plugin,
    [
      "#!/bin/sh",
      `export QUESTA_CNI_STATE='${dir}/cni' QUESTA_CNI_FORWARD='${forwards.join(" ")}'`,
      `export QUESTA_POD_BRIDGE=${POD_NETWORK.bridge} QUESTA_POD_SUBNET=${POD_NETWORK.subnet} QUESTA_POD_GATEWAY=${POD_NETWORK.gateway}`,
      `exec bash '${join(infraDir, "cni-pod-network.sh")}' "$@"`,
      "",
    ].join("\n"),
  );
  chmodSync(plugin, 0o755);
  execFileSync("ln", ["-s", "/usr/lib/cni/loopback", join(dir, "cni/bin/loopback")]);
  writeFileSync(
    join(dir, "cni/conf/10-questa.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: "questa-pod-network",
      plugins: [{ type: "questa-pod-network" }],
    }),
  );

  const logFile = join(dir, "node.log");
  const server: ServerProcess = startServer({
    name: "test node (containerd + kubelet)",
    command: "bash",
    args: [join(infraDir, "node-run.sh"), dir, cgroupRoot],
    env: {
      ...process.env,
      QUESTA_KUBELET: join(options.binDir, "kubelet"),
      QUESTA_KUBELET_PORT: String(kubeletPort),
      QUESTA_CNI_TARGETS: [options.apiPort, ...options.forwardPorts].join(" "),
      QUESTA_POD_BRIDGE: POD_NETWORK.bridge,
      QUESTA_POD_GATEWAY: POD_NETWORK.gateway,
      QUESTA_CLUSTER_DNS: POD_NETWORK.dns,
      QUESTA_COREDNS: join(options.binDir, `coredns-v${COREDNS_VERSION}`),
    },
    cwd: dir,
    logFile,
    cleanupDir: dir,
  });
  const ctrArgs = ["--address", join(dir, "containerd.sock"), "--namespace", "k8s.io"];
  const ctr = (args: readonly string[]) =>
    execFileSync("ctr", [...ctrArgs, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 16 * 1024 * 1024,
    });
  const kubectl = (...args: string[]) =>
    execFileSync(join(options.binDir, "kubectl"), ["--kubeconfig", options.kubeconfig, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  try {
    await waitUntil(
      "containerd of the test node",
      async () => existsSync(join(dir, "containerd.sock")) && ctr(["version"]) !== "",
      {
        timeoutMs: 60_000,
        server,
      },
    );
    for (const image of options.images) {
      // the layout's tag (ref.name) is appended to the base name: questa:dev, pause:3.10
      const base = image.reference.slice(0, image.reference.lastIndexOf(":"));
      ctr(["images", "import", "--base-name", base, image.tar]);
      if (!ctr(["images", "list", "--quiet"]).split("\n").includes(image.reference))
        throw new Error(
          `${image.tar} did not import as ${image.reference}: ${ctr(["images", "list", "--quiet"])}`,
        );
    }
    await waitUntil(
      `node ${NODE_NAME} Ready`,
      async () =>
        kubectl(
          "get",
          "node",
          NODE_NAME,
          "-o",
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ) === "True",
      { timeoutMs: 120_000, server },
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return {
    name: NODE_NAME,
    dir,
    logFile,
    ctrArgs,
    ctr,
    stop: async () => {
      await server.stop();
      // the watchdog removes it too, but in the background: a test run that ends now leaves none
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
