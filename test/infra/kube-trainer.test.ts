import { describe, expect, it } from "vitest";
import { applyJsonPatch, localWebhookConfigurations } from "./kube-trainer.ts";

// the pure parts of the Trainer/JobSet test setup: upstream webhook manifests made to reach webhook
// servers on 127.0.0.1

const mutating = {
  apiVersion: "admissionregistration.k8s.io/v1",
  kind: "MutatingWebhookConfiguration",
  metadata: { name: "mutating-webhook-configuration" },
  webhooks: [
    { name: "mjobset.kb.io", clientConfig: { service: { name: "webhook-service", path: "/mutate-jobset" } } },
    { name: "mpod.kb.io", clientConfig: { service: { name: "webhook-service", path: "/mutate--v1-pod" } } },
  ],
};

describe("applyJsonPatch", () => {
  it("replaces an array element and adds a field, leaving the input alone", () => {
    const selector = { matchExpressions: [{ key: "jobset.sigs.k8s.io/jobset-name", operator: "Exists" }] };
    const patched = applyJsonPatch(mutating, [
      { op: "replace", path: "/webhooks/1", value: { ...mutating.webhooks[1], objectSelector: selector } },
      { op: "add", path: "/webhooks/0/objectSelector", value: selector },
      { op: "replace", path: "/metadata/name", value: "renamed" },
    ]);
    expect(patched).toMatchObject({
      metadata: { name: "renamed" },
      webhooks: [{ objectSelector: selector }, { name: "mpod.kb.io", objectSelector: selector }],
    });
    expect(mutating.metadata.name).toBe("mutating-webhook-configuration");
  });

  it("refuses a path that is not there", () => {
    expect(() => applyJsonPatch(mutating, [{ op: "replace", path: "/webhooks/5/name", value: "x" }])).toThrow(
      "/webhooks/5/name not found",
    );
    expect(() => applyJsonPatch(mutating, [{ op: "replace", path: "/metadata/labels", value: {} }])).toThrow(
      "replaces missing /metadata/labels",
    );
  });
});

describe("localWebhookConfigurations", () => {
  it("names the configurations and points every webhook at 127.0.0.1 with the CA", () => {
    const [configuration] = localWebhookConfigurations(
      [mutating],
      { mutating: "jobset-mutating", validating: "jobset-validating" },
      9443,
      "PEM",
    );
    expect(configuration?.metadata.name).toBe("jobset-mutating");
    expect(configuration?.webhooks.map((w) => w.clientConfig)).toEqual([
      { url: "https://127.0.0.1:9443/mutate-jobset", caBundle: Buffer.from("PEM").toString("base64") },
      { url: "https://127.0.0.1:9443/mutate--v1-pod", caBundle: Buffer.from("PEM").toString("base64") },
    ]);
  });
});
