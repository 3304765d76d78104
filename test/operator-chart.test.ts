import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
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
    // installChart waits until the CRD is established
    await installChart(bin, kubeconfig, operatorNamespace);
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
    // least privilege: no wildcards, no secrets, no deletes (owner references clean up) but of the
    // torch learner's jobs, whose pod template is immutable: a spec change replaces the run's own job
    for (const rule of role.rules) {
      expect(rule.verbs).not.toContain("*");
      if (!(rule.resources.join() === "jobs" || rule.resources.join() === "trainjobs")) {
        expect(rule.verbs).not.toContain("delete");
      }
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

  it("renders the user roles, the admission policy and, when asked, the NetworkPolicy and image allow-list", async () => {
    const render = async (...set: string[]) =>
      parseAllDocuments(
        await mustTool(bin, "helm", [
          "template",
          "questa",
          join(repoRoot, "charts", "questa"),
          "--namespace",
          "questa-system",
          "--api-versions",
          "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
          ...set.flatMap((value) => ["--set", value]),
        ]),
      )
        .map(
          (d) => d.toJS() as { kind?: string; metadata?: { name?: string; labels?: Record<string, string> } },
        )
        .filter((d) => d?.kind !== undefined);
    const plain = await render();
    const named = (docs: typeof plain, kind: string, name: string) =>
      docs.find((d) => d.kind === kind && d.metadata?.name === name) as Record<string, unknown> | undefined;
    expect(named(plain, "ClusterRole", "questa-edit")?.metadata).toMatchObject({
      labels: { "rbac.authorization.k8s.io/aggregate-to-edit": "true" },
    });
    expect(named(plain, "ClusterRole", "questa-view")?.metadata).toMatchObject({
      labels: { "rbac.authorization.k8s.io/aggregate-to-view": "true" },
    });
    const policy = named(plain, "ValidatingAdmissionPolicy", "questa-tenancy") as {
      spec: { validations: { expression: string }[] };
    };
    expect(policy.spec.validations.map((v) => v.expression).join("\n")).toContain("variables.own + '.'");
    expect(named(plain, "ValidatingAdmissionPolicyBinding", "questa-tenancy")).toBeDefined();
    expect(plain.some((d) => d.kind === "NetworkPolicy")).toBe(false);
    const operator = named(plain, "Deployment", "questa") as {
      spec: { template: { spec: { volumes: { name: string; emptyDir?: { sizeLimit?: string } }[] } } };
    };
    expect(operator.spec.template.spec.volumes.find((v) => v.name === "tmp")?.emptyDir?.sizeLimit).toBe(
      "128Mi",
    );

    const strict = await render(
      "networkPolicy.enabled=true",
      "images.allowed={registry.example/questa@sha256:}",
      "artifactCleanup.allowedStores[0].bucket=runs",
      "artifactCleanup.allowedStores[0].endpoint=http://minio.storage:9000",
    );
    expect(named(strict, "NetworkPolicy", "questa")).toMatchObject({
      spec: { policyTypes: ["Ingress"], ingress: [] },
    });
    const strictPolicy = named(strict, "ValidatingAdmissionPolicy", "questa-tenancy") as typeof policy;
    expect(strictPolicy.spec.validations[1]?.expression).toContain('["registry.example/questa@sha256:"]');
    const env = (
      named(strict, "Deployment", "questa") as {
        spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
      }
    ).spec.template.spec.containers[0]!.env;
    expect(env).toContainEqual({ name: "QUESTA_ALLOWED_IMAGES", value: "registry.example/questa@sha256:" });
    expect(env).toContainEqual({ name: "QUESTA_ARTIFACT_STORES", value: "runs@http://minio.storage:9000" });
    expect(env).toContainEqual({ name: "QUESTA_NETWORK_POLICY", value: "true" });
    const role = named(strict, "ClusterRole", "questa") as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    expect(role.rules.find((r) => r.resources.includes("networkpolicies"))?.verbs).toEqual([
      "get",
      "create",
      "patch",
    ]);
    // SASL PLAIN would send the operator's password in clear text
    const plainSasl = await tool(bin, "helm", [
      "template",
      "questa",
      join(repoRoot, "charts", "questa"),
      "--set",
      "kafka.sasl.mechanism=plain",
      "--set",
      "kafka.sasl.secretName=kafka-user",
    ]);
    expect(plainSasl.code).not.toBe(0);
    expect(plainSasl.stderr).toContain("/kafka/tls/enabled");
  });

  it("questa-edit lets a namespace's users run trainings but not write their status or read secrets", async () => {
    const namespace = await createNamespace(bin, kubeconfig, "users");
    await kubectl(
      "-n",
      namespace,
      "create",
      "rolebinding",
      "alice-questa",
      "--clusterrole=questa-edit",
      "--user=alice",
    );
    await kubectl(
      "-n",
      namespace,
      "create",
      "rolebinding",
      "bob-questa",
      "--clusterrole=questa-view",
      "--user=bob",
    );
    const can = async (user: string, ...args: string[]) =>
      (
        await tool(bin, "kubectl", [
          "--kubeconfig",
          kubeconfig,
          "auth",
          "can-i",
          `--as=${user}`,
          "-n",
          namespace,
          ...args,
        ])
      ).stdout.trim();
    expect(await can("alice", "create", "questatrainings.questa.dev")).toBe("yes");
    expect(await can("alice", "delete", "questatrainings.questa.dev")).toBe("yes");
    expect(await can("alice", "patch", "questatrainings.questa.dev", "--subresource=status")).toBe("no");
    expect(await can("alice", "get", "secrets")).toBe("no");
    expect(await can("bob", "list", "questatrainings.questa.dev")).toBe("yes");
    expect(await can("bob", "create", "questatrainings.questa.dev")).toBe("no");
  });

  it("refuses a climbing storage prefix and SASL plain without TLS (CRD), and an image outside the allow-list (policy)", async () => {
    const namespace = await createNamespace(bin, kubeconfig, "rules");
    const climbing = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(
        namespace,
        "climb",
        `${minimalSpec}
storage:
  prefix: ../../x`,
      ),
    );
    expect(climbing.code).not.toBe(0);
    expect(climbing.stderr).toContain("storage.prefix must not have . or .. segments (climbing out)");
    const plain = await kubectlApply(
      bin,
      kubeconfig,
      trainingYaml(
        namespace,
        "plain",
        `${minimalSpec}
kafka:
  sasl: { mechanism: plain, secretRef: { name: kafka-user } }`,
      ),
    );
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toContain("SASL plain sends the password in clear text");

    // the image rule from a release of its own (so the shared release stays as other files expect),
    // bound to this namespace only
    const rendered = await mustTool(bin, "helm", [
      "template",
      "images-test",
      join(repoRoot, "charts", "questa"),
      "--show-only",
      "templates/admission-policy.yaml",
      "--api-versions",
      "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy",
      "--set",
      "images.allowed={registry.example/questa@sha256:}",
    ]);
    const scoped = rendered.replace(
      'validationActions: ["Deny"]',
      `validationActions: ["Deny"]\n  matchResources:\n    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: ${namespace}`,
    );
    const applied = await kubectlApply(bin, kubeconfig, scoped);
    expect(applied.code, applied.stderr).toBe(0);
    try {
      const refused = await eventually("the image policy is active", async () => {
        const result = await kubectlApply(
          bin,
          kubeconfig,
          trainingYaml(
            namespace,
            "miner",
            `${minimalSpec}
image: docker.io/evil/miner:latest`,
          ),
        );
        return result.code !== 0 ? result : undefined;
      });
      expect(refused.stderr).toContain("spec.image docker.io/evil/miner:latest is not allowed here");
      const allowed = await kubectlApply(
        bin,
        kubeconfig,
        trainingYaml(
          namespace,
          "pinned",
          `${minimalSpec}
image: registry.example/questa@sha256:${"a".repeat(64)}`,
        ),
      );
      expect(allowed.stderr).toBe("");
    } finally {
      await kubectl(
        "delete",
        "validatingadmissionpolicybinding,validatingadmissionpolicy",
        "images-test-questa-tenancy",
      );
    }
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
    expect(await can("delete", "jobs.batch", "-n", "questa")).toBe("yes");
    expect(await can("create", "services", "-n", "questa")).toBe("yes");
    expect(await can("create", "networkpolicies.networking.k8s.io", "-n", "questa")).toBe("yes");
    expect(await can("delete", "services", "-n", "questa")).toBe("no");
  });
});
