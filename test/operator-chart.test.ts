import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  mustTool,
  repoRoot,
  tool,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";

const kube = await kubeContext();
afterAll(async () => await kube.stop());
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const operatorNamespace = kube.operatorNamespace;
const kubectl = (...args: string[]) => mustTool(bin, "kubectl", ["--kubeconfig", kubeconfig, ...args]);

const minimalSpec = `
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
`;

describe("helm chart and CRD against a real kube-apiserver", () => {
  it("lints clean", async () => {
    const lint = await tool(bin, "helm", ["lint", "--strict", join(repoRoot, "charts", "questa")]);
    expect(lint.stderr + lint.stdout).toContain("0 chart(s) failed");
    expect(lint.code).toBe(0);
  });

  it("installs with helm; the CRD is established and structural; kubectl explain works", async () => {
    await installChart(bin, kubeconfig, operatorNamespace);
    await kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/questatrainings.questa.dev");
    const crd = JSON.parse(await kubectl("get", "crd", "questatrainings.questa.dev", "-o", "json")) as {
      status: { conditions: { type: string; status: string; reason: string }[] };
    };
    const condition = (type: string) => crd.status.conditions.find((c) => c.type === type);
    expect(condition("Established")?.status).toBe("True");
    expect(condition("NamesAccepted")?.status).toBe("True");
    // a non-structural schema would show up as NonStructuralSchema=True
    expect(condition("NonStructuralSchema")).toBeUndefined();

    // the API server publishes a new CRD's OpenAPI a moment after it is established
    const explain = await eventually("kubectl explain", () =>
      kubectl("explain", "questatraining.spec.augmentation"),
    );
    expect(explain).toContain("curriculum");
    expect(explain).toContain("hardFilter");
    const explainRollout = await kubectl("explain", "qt.spec.rollout.replicas");
    expect(explainRollout).toContain("min");

    const objects = await kubectl(
      "-n",
      operatorNamespace,
      "get",
      "deployment,serviceaccount,service",
      "-o",
      "name",
    );
    expect(objects).toContain("deployment.apps/questa");
    expect(objects).toContain("serviceaccount/questa");
    expect(objects).toContain("service/questa-metrics");
    const role = JSON.parse(await kubectl("get", "clusterrole", "questa", "-o", "json")) as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    // least privilege: no wildcards, no secrets, no deletes (owner references clean up)
    for (const rule of role.rules) {
      expect(rule.verbs).not.toContain("*");
      expect(rule.verbs).not.toContain("delete");
      expect(rule.resources).not.toContain("secrets");
    }
  });

  it("rejects invalid resources with field paths from the schema and the CEL rules", async () => {
    const namespace = await createNamespace(bin, kubeconfig, "reject");
    const schemaInvalid = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(namespace, "bad-schema", `${minimalSpec}\nrollout:\n  temperature: -1\n  groupSize: 0`),
    );
    expect(schemaInvalid.code).not.toBe(0);
    expect(schemaInvalid.stderr).toContain("spec.rollout.temperature");
    expect(schemaInvalid.stderr).toContain("spec.rollout.groupSize");

    const celInvalid = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(namespace, "bad-cel", `${minimalSpec}\nrollout:\n  replicas: { min: 5, max: 2 }`),
    );
    expect(celInvalid.code).not.toBe(0);
    expect(celInvalid.stderr).toContain("spec.rollout.replicas.min");
    expect(celInvalid.stderr).toContain("min must be <= max");

    const missing = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(namespace, "bad-missing", "suspend: false"),
    );
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("spec.datasets");

    const unknownField = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(namespace, "bad-unknown", `${minimalSpec}\nrollout:\n  temprature: 1`),
    );
    expect(unknownField.code).not.toBe(0);
    expect(unknownField.stderr).toContain("temprature");

    const valid = await kubectlApply(bin, kubeconfig, trainingYaml(namespace, "good", minimalSpec));
    expect(valid.stderr).toBe("");
    expect(valid.code).toBe(0);
    const listed = await kubectl("-n", namespace, "get", "qt", "good", "-o", "jsonpath={.metadata.name}");
    expect(listed).toBe("good");
  });

  it("manifests/rbac grants the namespaced operator what it needs there and nothing elsewhere", async () => {
    const exists = await tool(bin, "kubectl", ["--kubeconfig", kubeconfig, "get", "namespace", "questa"]);
    if (exists.code !== 0) await kubectl("create", "namespace", "questa");
    await kubectl("apply", "-f", join(repoRoot, "manifests", "rbac", "namespaced.yaml"));
    const as = "--as=system:serviceaccount:questa:questa-operator";
    const can = async (...args: string[]) =>
      (await tool(bin, "kubectl", ["--kubeconfig", kubeconfig, "auth", "can-i", as, ...args])).stdout.trim();
    expect(await can("watch", "questatrainings.questa.dev", "-n", "questa")).toBe("yes");
    expect(await can("patch", "questatrainings.questa.dev", "--subresource=status", "-n", "questa")).toBe(
      "yes",
    );
    expect(await can("patch", "deployments.apps", "-n", "questa")).toBe("yes");
    expect(await can("create", "events.events.k8s.io", "-n", "questa")).toBe("yes");
    expect(await can("update", "leases.coordination.k8s.io/questa-operator", "-n", "questa")).toBe("yes");
    expect(await can("update", "leases.coordination.k8s.io/someone-else", "-n", "questa")).toBe("no");
    expect(await can("list", "questatrainings.questa.dev", "-n", "default")).toBe("no");
    expect(await can("get", "secrets", "-n", "questa")).toBe("no");
    expect(await can("delete", "deployments.apps", "-n", "questa")).toBe("no");
  });
});
