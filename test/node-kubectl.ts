import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { inject } from "vitest";

/**
 * kubectl and helm against the cluster of the projects with a real node (test/infra/kube-node-setup.ts,
 * torch-node-setup.ts), from the binaries and admin kubeconfig their global setup provides.
 */

const run = promisify(execFile);

/** runs `command` (kubectl, helm) with the admin kubeconfig; its stdout, or an error with its output */
export async function kubeTool(command: "kubectl" | "helm", args: string[], input?: string): Promise<string> {
  const child = run(join(inject("kubeBinDir"), command), ["--kubeconfig", inject("kubeconfig"), ...args], {
    maxBuffer: 32 * 1024 * 1024,
  });
  if (input !== undefined) child.child.stdin?.end(input);
  try {
    return (await child).stdout;
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    throw new Error(`${command} ${args.join(" ")}: ${e.stderr ?? ""}${e.stdout ?? ""}`);
  }
}

export const kubectl = (...args: string[]): Promise<string> => kubeTool("kubectl", args);

/**
 * `kubectl exec` in a pod's (first) container. A container just reported Ready may not be in the
 * kubelet's runtime cache yet (it relists every second; slower on a loaded node), and the exec is
 * then refused with "container not found": tried again for up to 30 s, any other error at once.
 */
export async function kubectlExec(
  namespace: string,
  pod: string,
  command: readonly string[],
): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await kubectl("-n", namespace, "exec", pod, "--", ...command);
    } catch (error) {
      if (!String(error).includes("container not found") || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
}

/**
 * `helm install` of the chart as release `questa` in `namespace`, with `image` (imported into the
 * node, never pulled) and the test's Kafka; `values` are more `--set` assignments. Waits for it.
 */
export async function installChart(options: {
  namespace: string;
  image: string;
  brokers: readonly string[];
  values?: readonly string[];
}): Promise<void> {
  const at = options.image.lastIndexOf(":");
  const [repository, tag] = [options.image.slice(0, at), options.image.slice(at + 1)];
  await kubeTool("helm", [
    "install",
    "questa",
    join(import.meta.dirname, "..", "charts", "questa"),
    "--namespace",
    options.namespace,
    "--create-namespace",
    "--set",
    `image.repository=${repository},image.tag=${tag},image.pullPolicy=Never`,
    "--set",
    `kafka.brokers={${options.brokers.join(",")}}`,
    ...(options.values ?? []).flatMap((value) => ["--set", value]),
    "--wait",
    "--timeout",
    "240s",
  ]);
}

/** every pod of `namespaces` with the tail of its log: what a failed test prints */
export async function podLogsReport(namespaces: readonly string[], tail = 60): Promise<string> {
  const report: string[] = [];
  for (const namespace of namespaces) {
    const listed = await kubectl("-n", namespace, "get", "pods", "-o", "name").catch(() => "");
    for (const pod of listed.split("\n").filter((line) => line !== "")) {
      const log = await kubectl("-n", namespace, "logs", pod, "--all-containers", `--tail=${tail}`).catch(
        (error) => `(no log: ${String(error)})`,
      );
      report.push(`--- ${namespace}/${pod}\n${log}`);
    }
  }
  return report.join("\n");
}
