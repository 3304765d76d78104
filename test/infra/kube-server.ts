import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type ServerProcess, startServer, waitUntil } from "./kafka-s3-process.ts";
import { ensureNodeBinaries } from "./kube-node.ts";

/**
 * A real etcd + kube-apiserver pair on 127.0.0.1 for integration tests: random free ports, a temp
 * directory, self-generated service-account keys, static bearer tokens (an admin in system:masters
 * and the operator's service account, so RBAC from the chart is exercised for real). By default no
 * kubelet, scheduler or controller-manager: workloads never get pods, and garbage collection does not
 * run. With `workloads: true` (the end-to-end test) kube-controller-manager and kube-scheduler run
 * too, the ServiceAccount admission plugin is on (pods get their tokens), and a node can join
 * (test/infra/kube-node.ts).
 */
export interface KubeTestCluster {
  server: string;
  /** kubeconfig for the cluster admin (system:masters) */
  kubeconfig: string;
  /** kubeconfig authenticating as system:serviceaccount:<operatorNamespace>:<operatorServiceAccount> */
  operatorKubeconfig: string;
  operatorNamespace: string;
  operatorServiceAccount: string;
  binDir: string;
  etcdEndpoint: string;
  /** the API server's port on 127.0.0.1 */
  apiPort: number;
  /** stops kube-apiserver only (etcd keeps the data) */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export const kubeBinDir = (): string =>
  process.env.QUESTA_KUBE_BIN ?? join(process.env.QUESTA_CACHE ?? join(homedir(), ".cache", "questa"), "bin");

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Runs scripts/install-kube-test-servers.sh when a binary is missing (first run on a clean machine). */
export function ensureKubeBinaries(binDir = kubeBinDir()): void {
  const missing = ["etcd", "kube-apiserver", "kubectl", "helm"].filter((b) => !existsSync(join(binDir, b)));
  if (missing.length === 0) return;
  try {
    execFileSync("bash", [join(repoRoot, "scripts", "install-kube-test-servers.sh")], {
      stdio: ["ignore", "inherit", "inherit"],
      env: { ...process.env, QUESTA_CACHE: dirname(binDir) },
    });
  } catch (error) {
    throw new Error(
      `kube test servers missing (${missing.join(", ")}) and scripts/install-kube-test-servers.sh failed: ${String(error)}`,
    );
  }
}

export async function freePort(): Promise<number> {
  return await new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, child: ChildProcess) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode} while starting`);
    if (await probe().catch(() => false)) return;
    await delay(200);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

function kubeconfigYaml(server: string, user: string, token: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: test",
    "  cluster:",
    `    server: ${server}`,
    "    insecure-skip-tls-verify: true",
    "users:",
    `- name: ${user}`,
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: test",
    "  context:",
    "    cluster: test",
    `    user: ${user}`,
    "    namespace: default",
    "current-context: test",
    "",
  ].join("\n");
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const killed = await Promise.race([exited.then(() => true), delay(10_000).then(() => false)]);
  if (!killed) {
    child.kill("SIGKILL");
    await exited;
  }
}

export async function startKubeTestCluster(
  options: { operatorNamespace?: string; operatorServiceAccount?: string; workloads?: boolean } = {},
): Promise<KubeTestCluster> {
  const binDir = kubeBinDir();
  ensureKubeBinaries(binDir);
  if (options.workloads) ensureNodeBinaries(binDir);
  const dir = mkdtempSync(join(tmpdir(), "questa-kube-"));
  const operatorNamespace = options.operatorNamespace ?? "questa-system";
  const operatorServiceAccount = options.operatorServiceAccount ?? "questa";
  const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdEndpoint = `http://127.0.0.1:${etcdClientPort}`;
  const server = `https://127.0.0.1:${apiPort}`;

  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(join(dir, "sa.pub"), publicKey.export({ type: "spki", format: "pem" }));
  writeFileSync(join(dir, "sa.key"), privateKey.export({ type: "pkcs8", format: "pem" }));
  const adminToken = randomBytes(24).toString("hex");
  const operatorToken = randomBytes(24).toString("hex");
  const operatorUser = `system:serviceaccount:${operatorNamespace}:${operatorServiceAccount}`;
  writeFileSync(
    join(dir, "tokens.csv"),
    `${adminToken},admin,admin,"system:masters"\n${operatorToken},${operatorUser},operator,"system:serviceaccounts,system:serviceaccounts:${operatorNamespace},system:authenticated"\n`,
  );
  const kubeconfig = join(dir, "admin.kubeconfig");
  const operatorKubeconfig = join(dir, "operator.kubeconfig");
  writeFileSync(kubeconfig, kubeconfigYaml(server, "admin", adminToken));
  writeFileSync(operatorKubeconfig, kubeconfigYaml(server, "operator", operatorToken));

  const log = createWriteStream(join(dir, "servers.log"));
  const etcd = spawn(
    join(binDir, "etcd"),
    [
      "--name=questa-test",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdEndpoint}`,
      `--advertise-client-urls=${etcdEndpoint}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=questa-test=http://127.0.0.1:${etcdPeerPort}`,
      "--log-level=error",
      "--quota-backend-bytes=536870912",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  etcd.stdout?.pipe(log, { end: false });
  etcd.stderr?.pipe(log, { end: false });
  // if the test process dies without teardown, take the servers with it (no orphans)
  const killOnExit = () => {
    apiServer?.kill("SIGKILL");
    etcd.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  let apiServer: ChildProcess | undefined;
  const startApiServer = async () => {
    const child = spawn(
      join(binDir, "kube-apiserver"),
      [
        `--etcd-servers=${etcdEndpoint}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, "certs")}`,
        `--token-auth-file=${join(dir, "tokens.csv")}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        `--service-account-key-file=${join(dir, "sa.pub")}`,
        `--service-account-signing-key-file=${join(dir, "sa.key")}`,
        "--service-cluster-ip-range=10.96.0.0/24",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        // without a controller-manager no namespace has its default service account, which the
        // ServiceAccount plugin requires of every pod; with one, pods get their tokens through it
        ...(options.workloads
          ? // logs and exec reach the kubelet at its node name (127.0.0.1), on loopback
            ["--kubelet-preferred-address-types=Hostname"]
          : ["--disable-admission-plugins=ServiceAccount"]),
        "--v=0",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    apiServer = child;
    await waitFor("kube-apiserver", () => readyz(server, adminToken), 90_000, child).catch((error) => {
      throw new Error(`${String(error)}; logs in ${join(dir, "servers.log")}`);
    });
  };

  const controllers: ServerProcess[] = [];
  try {
    await waitFor("etcd", async () => (await fetch(`${etcdEndpoint}/health`)).ok, 30_000, etcd);
    await startApiServer();
    if (options.workloads) controllers.push(...(await startControllers(binDir, dir, kubeconfig)));
  } catch (error) {
    process.removeListener("exit", killOnExit);
    await Promise.all(controllers.map((c) => c.stop()));
    await stopChild(apiServer);
    await stopChild(etcd);
    log.end();
    throw error;
  }

  return {
    server,
    kubeconfig,
    operatorKubeconfig,
    operatorNamespace,
    operatorServiceAccount,
    binDir,
    etcdEndpoint,
    apiPort,
    stopApiServer: async () => stopChild(apiServer),
    startApiServer,
    stop: async () => {
      process.removeListener("exit", killOnExit);
      await Promise.all(controllers.map((c) => c.stop()));
      await stopChild(apiServer);
      await stopChild(etcd);
      log.end();
      if (!process.env.QUESTA_KEEP_KUBE_DIR) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * kube-controller-manager (Deployments → ReplicaSets → pods, garbage collection, namespaces' default
 * service account and kube-root-ca.crt) and kube-scheduler, under the watchdog of the other servers.
 */
async function startControllers(binDir: string, dir: string, kubeconfig: string): Promise<ServerProcess[]> {
  const common = [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    "--bind-address=127.0.0.1",
    "--leader-elect=false",
    "--v=0",
  ];
  const start = async (name: string, args: string[]) => {
    const port = await freePort();
    const server = startServer({
      name,
      command: join(binDir, name),
      args: [...common, `--secure-port=${port}`, ...args],
      env: process.env,
      cwd: dir,
      logFile: join(dir, `${name}.log`),
    });
    await waitUntil(name, () => readyz(`https://127.0.0.1:${port}`, "", "/healthz"), {
      timeoutMs: 60_000,
      server,
    });
    return server;
  };
  const started = await Promise.allSettled([
    start("kube-controller-manager", [
      `--service-account-private-key-file=${join(dir, "sa.key")}`,
      // the API server's self-signed serving certificate and its CA: pods trust it (kube-root-ca.crt)
      `--root-ca-file=${join(dir, "certs", "apiserver.crt")}`,
      "--use-service-account-credentials=false",
      "--controllers=*,-nodeipam,-csrsigning,-csrapproving,-bootstrapsigner,-tokencleaner",
    ]),
    start("kube-scheduler", []),
  ]);
  const servers = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.flatMap((r) => (r.status === "rejected" ? [String(r.reason)] : []));
  if (failed.length > 0) {
    await Promise.all(servers.map((s) => s.stop()));
    throw new Error(failed.join("\n"));
  }
  return servers;
}

async function readyz(server: string, token: string, path = "/readyz"): Promise<boolean> {
  // the test server's certificate is self-signed by kube-apiserver: skip verification for this probe only
  return await new Promise((resolveReady) => {
    const request = httpsGet(
      `${server}${path}`,
      {
        headers: token ? { Authorization: `Bearer ${token}` } : {},
        rejectUnauthorized: false,
        timeout: 2_000,
      },
      (response) => {
        response.resume();
        resolveReady(response.statusCode === 200);
      },
    );
    request.on("error", () => resolveReady(false));
    request.on("timeout", () => {
      request.destroy();
      resolveReady(false);
    });
  });
}
