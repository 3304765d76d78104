import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";
import { freePort, type ServerProcess, startServer, waitUntil } from "./kafka-s3-process.ts";
import { kubeBinDir } from "./kube-server.ts";
import { kubectlApply, mustTool, repoRoot } from "./kube-test-helpers.ts";
import { makeServerCertificate } from "./tls-endpoints.ts";

/**
 * Kubeflow Trainer v2 and JobSet on a test API server: their CRDs, the torch-distributed
 * ClusterTrainingRuntime, and their controller managers built from the Go module proxy by
 * scripts/install-kube-test-servers.sh --trainer. The controllers run on this machine (not as pods):
 * their webhook servers listen on 127.0.0.1 with a throwaway CA's certificate, and the upstream
 * Validating/MutatingWebhookConfigurations are registered with a url client config instead of a
 * Service. Each controller runs under the watchdog of the other test servers.
 */

const TRAINER_VERSION = process.env.QUESTA_TRAINER_VERSION ?? "2.3.0";
const JOBSET_VERSION = process.env.QUESTA_JOBSET_VERSION ?? "0.12.0";

export interface TrainerInstall {
  trainerDir: string;
  jobsetDir: string;
  trainerController: string;
  jobsetController: string;
}

/** what scripts/install-kube-test-servers.sh --trainer leaves in the cache; runs it when something is missing */
export function trainerInstall(binDir = kubeBinDir()): TrainerInstall {
  const cache = dirname(binDir);
  const install: TrainerInstall = {
    trainerDir: join(cache, "crds", `trainer-v${TRAINER_VERSION}`),
    jobsetDir: join(cache, "crds", `jobset-v${JOBSET_VERSION}`),
    trainerController: join(binDir, `trainer-controller-manager-v${TRAINER_VERSION}`),
    jobsetController: join(binDir, `jobset-controller-manager-v${JOBSET_VERSION}`),
  };
  const needed = [
    install.trainerController,
    install.jobsetController,
    join(install.trainerDir, "manifests.yaml"),
    join(install.jobsetDir, "manifests.yaml"),
    join(install.jobsetDir, "validating-patch.yaml"),
  ];
  if (needed.some((path) => !existsSync(path))) {
    // from the Go module proxy on first use (a build of both controllers); a failed build fails the
    // test with the script's output, it is never skipped
    try {
      execFileSync("bash", [join(repoRoot, "scripts", "install-kube-test-servers.sh"), "--trainer"], {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, QUESTA_CACHE: cache },
      });
    } catch (error) {
      throw new Error(
        `Kubeflow Trainer v${TRAINER_VERSION} / JobSet v${JOBSET_VERSION} could not be installed by scripts/install-kube-test-servers.sh --trainer: ${String(error)}`,
      );
    }
  }
  return install;
}

/**
 * Installs Kubeflow Trainer's and JobSet's CRDs into a cluster, server-side (they are too large for
 * kubectl's last-applied annotation), and waits until they are served.
 */
export async function installTrainerCrds(binDir: string, kubeconfig: string): Promise<void> {
  const install = trainerInstall(binDir);
  const kubectl = (...args: string[]) => mustTool(binDir, "kubectl", ["--kubeconfig", kubeconfig, ...args]);
  for (const file of [
    join(install.jobsetDir, "jobset.x-k8s.io_jobsets.yaml"),
    join(install.trainerDir, "trainer.kubeflow.org_trainjobs.yaml"),
    join(install.trainerDir, "trainer.kubeflow.org_clustertrainingruntimes.yaml"),
    join(install.trainerDir, "trainer.kubeflow.org_trainingruntimes.yaml"),
  ]) {
    await kubectl("apply", "--server-side", "--field-manager=questa-test", "-f", file);
  }
  await kubectl(
    "wait",
    "--for=condition=Established",
    "--timeout=60s",
    "crd/jobsets.jobset.x-k8s.io",
    "crd/trainjobs.trainer.kubeflow.org",
    "crd/clustertrainingruntimes.trainer.kubeflow.org",
  );
}

type Json = Record<string, unknown>;
interface PatchOperation {
  op: "add" | "replace";
  path: string;
  value: unknown;
}

/** the `add`/`replace` operations of a kustomize JSON 6902 patch (all the upstream patches use) */
export function applyJsonPatch(document: Json, operations: readonly PatchOperation[]): Json {
  const result = structuredClone(document);
  for (const { op, path, value } of operations) {
    const keys = path.split("/").slice(1);
    const last = keys.pop();
    if (last === undefined) throw new Error(`JSON patch path ${path} names no field`);
    let parent: unknown = result;
    for (const key of keys) {
      parent = Array.isArray(parent) ? parent[Number(key)] : (parent as Json | undefined)?.[key];
      if (typeof parent !== "object" || parent === null) throw new Error(`JSON patch path ${path} not found`);
    }
    if (op === "replace" && !(last in (parent as object)))
      throw new Error(`JSON patch replaces missing ${path}`);
    if (Array.isArray(parent)) parent[Number(last)] = value;
    else (parent as Json)[last] = value;
  }
  return result;
}

interface WebhookConfiguration {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  webhooks: {
    name: string;
    clientConfig: { service?: { path?: string }; url?: string; caBundle?: string };
  }[];
}

/**
 * The upstream webhook configurations, renamed as the controllers' own deployments name them, with
 * every Service client config turned into `https://127.0.0.1:<port><path>` trusted through `ca`.
 */
export function localWebhookConfigurations(
  documents: readonly Json[],
  names: { mutating: string; validating: string },
  port: number,
  ca: string,
): WebhookConfiguration[] {
  return documents.map((document) => {
    const configuration = structuredClone(document) as unknown as WebhookConfiguration;
    configuration.metadata.name =
      configuration.kind === "MutatingWebhookConfiguration" ? names.mutating : names.validating;
    for (const webhook of configuration.webhooks) {
      const path = webhook.clientConfig.service?.path;
      if (path === undefined) throw new Error(`webhook ${webhook.name} has no service path`);
      webhook.clientConfig = {
        url: `https://127.0.0.1:${port}${path}`,
        caBundle: Buffer.from(ca).toString("base64"),
      };
    }
    return configuration;
  });
}

const yamlDocuments = (file: string): Json[] =>
  parseAllDocuments(readFileSync(file, "utf8"))
    .map((document) => document.toJS() as Json | null)
    .filter((document): document is Json => document !== null);

export interface TrainerControllers {
  /** the controllers' logs, for a failing test's message */
  logFiles: string[];
  stop(): Promise<void>;
}

async function healthy(port: number): Promise<boolean> {
  return await new Promise((resolveHealthy) => {
    const request = httpGet({ host: "127.0.0.1", port, path: "/readyz", timeout: 2_000 }, (response) => {
      response.resume();
      resolveHealthy(response.statusCode === 200);
    });
    request.on("error", () => resolveHealthy(false));
    request.on("timeout", () => {
      request.destroy();
      resolveHealthy(false);
    });
  });
}

/**
 * Starts JobSet's and Trainer's controller managers against the cluster (admin credentials), with
 * their webhooks registered, and installs Trainer's torch-distributed ClusterTrainingRuntime (which
 * Trainer's validating webhook then checks). The CRDs must be installed first (installTrainerCrds).
 */
export async function startTrainerControllers(
  binDir: string,
  kubeconfig: string,
): Promise<TrainerControllers> {
  const install = trainerInstall(binDir);
  const dir = mkdtempSync(join(tmpdir(), "questa-trainer-"));
  const pems = await makeServerCertificate(join(dir, "ca"));
  // controller-runtime's webhook server reads tls.crt/tls.key from $TMPDIR/k8s-webhook-server/serving-certs
  // (Trainer's configuration has no cert dir; JobSet's is pointed at the same place)
  const certDir = join(dir, "k8s-webhook-server", "serving-certs");
  mkdirSync(certDir, { recursive: true });
  writeFileSync(join(certDir, "tls.crt"), pems.cert);
  writeFileSync(join(certDir, "tls.key"), pems.key);

  const controllers: {
    name: string;
    command: string;
    config: Json;
    webhooks: WebhookConfiguration[];
    health: number;
  }[] = [];
  {
    const [webhook, health] = [await freePort(), await freePort()];
    const patches = ["mutating-patch.yaml", "validating-patch.yaml"].map(
      (file) => yamlDocuments(join(install.jobsetDir, file))[0] as unknown as PatchOperation[],
    );
    const [mutating, validating] = yamlDocuments(join(install.jobsetDir, "manifests.yaml"));
    if (!mutating || !validating || !patches[0] || !patches[1])
      throw new Error(`JobSet webhook manifests incomplete in ${install.jobsetDir}`);
    controllers.push({
      name: "jobset-controller-manager",
      command: install.jobsetController,
      health,
      config: {
        apiVersion: "config.jobset.x-k8s.io/v1alpha1",
        kind: "Configuration",
        leaderElection: { leaderElect: false },
        internalCertManagement: { enable: false },
        webhook: { port: webhook, host: "127.0.0.1", certDir },
        metrics: { bindAddress: "0" },
        health: { healthProbeBindAddress: `127.0.0.1:${health}` },
      },
      // the pod webhooks' patches add the objectSelector that keeps them off pods of no JobSet
      webhooks: localWebhookConfigurations(
        [applyJsonPatch(mutating, patches[0]), applyJsonPatch(validating, patches[1])],
        {
          mutating: "jobset-mutating-webhook-configuration",
          validating: "jobset-validating-webhook-configuration",
        },
        webhook,
        pems.ca,
      ),
    });
  }
  {
    const [webhook, health] = [await freePort(), await freePort()];
    controllers.push({
      name: "trainer-controller-manager",
      command: install.trainerController,
      health,
      config: {
        apiVersion: "config.trainer.kubeflow.org/v1alpha1",
        kind: "Configuration",
        leaderElection: { leaderElect: false },
        certManagement: { enable: false },
        webhook: { port: webhook, host: "127.0.0.1" },
        metrics: { bindAddress: "0" },
        health: { healthProbeBindAddress: `127.0.0.1:${health}` },
      },
      // the names Trainer's kustomization (patch_mutating.yaml, patch_validating.yaml) gives them
      webhooks: localWebhookConfigurations(
        yamlDocuments(join(install.trainerDir, "manifests.yaml")),
        { mutating: "defaulter.trainer.kubeflow.org", validating: "validator.trainer.kubeflow.org" },
        webhook,
        pems.ca,
      ),
    });
  }

  const servers: ServerProcess[] = [];
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
    if (!process.env.QUESTA_KEEP_KUBE_DIR) rmSync(dir, { recursive: true, force: true });
  };
  try {
    // registered before the servers start: JobSet's controller expects its defaulting webhook in place
    const applied = await kubectlApply(
      binDir,
      kubeconfig,
      controllers.flatMap((c) => c.webhooks.map((w) => `---\n${stringify(w)}`)).join(""),
    );
    if (applied.code !== 0) throw new Error(`registering the webhooks failed: ${applied.stderr}`);
    for (const controller of controllers) {
      const configFile = join(dir, `${controller.name}.yaml`);
      writeFileSync(configFile, stringify(controller.config));
      const server = startServer({
        name: controller.name,
        command: controller.command,
        args: [`--config=${configFile}`, `--kubeconfig=${kubeconfig}`],
        env: { ...process.env, TMPDIR: dir },
        cwd: dir,
        logFile: join(dir, `${controller.name}.log`),
        // when the test process dies without teardown, the watchdogs take the directory with them
        cleanupDir: dir,
      });
      servers.push(server);
    }
    await Promise.all(
      controllers.map((controller, i) =>
        waitUntil(controller.name, () => healthy(controller.health), {
          timeoutMs: 120_000,
          server: servers[i]!,
        }),
      ),
    );
    await mustTool(binDir, "kubectl", [
      "--kubeconfig",
      kubeconfig,
      "apply",
      "--server-side",
      "--field-manager=questa-test",
      "-f",
      join(install.trainerDir, "torch_distributed.yaml"),
    ]);
  } catch (error) {
    await stop();
    throw error;
  }
  return { logFiles: servers.map((server) => server.logFile), stop };
}
