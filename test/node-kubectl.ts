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
