import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { RunKeys } from "../functions/contracts/run-keys.ts";
import { S3ObjectStore, s3StoreConfigFromEnv } from "../functions/runtime/s3-object-store.ts";
import { ClientNodeKubeApi, loadKubeConfig } from "../operator/kube-client.ts";
import { artifactStores } from "../operator/main.ts";
import { DEPLOYMENT, QUESTA_TRAINING } from "../operator/questatraining-controller.ts";
import {
  createNamespace,
  eventually,
  installChart,
  kubeContext,
  kubectlApply,
  mustTool,
  startTestOperator,
  type TestOperator,
  trainingYaml,
} from "./infra/kube-test-helpers.ts";

// The finalizer's artifact deletion over the real key layout, against the real kube-apiserver and
// MinIO: each run's objects are written as its functions write them (the store prefix the operator
// puts in the pod's environment, then RunKeys), never as hand-made keys, for storage prefixes with
// and without slashes. Deleting a run removes exactly its objects: not a neighbour whose name it
// prefixes, not a run of another prefix that lands in the same folder, not strays beside them.

const kube = await kubeContext();
afterAll(async () => await kube.stop());
const bin = kube.binDir;
const kubeconfig = kube.kubeconfig;
const admin = new ClientNodeKubeApi(loadKubeConfig({ kubeconfigPath: kubeconfig }));
const s3 = inject("s3");
const credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
const bucket = `questa-artifacts-${randomBytes(4).toString("hex")}`;
const PREFIXES = ["", "questa", "questa/", "a/b/"];

const stores: S3ObjectStore[] = [];
let namespace: string;
let test: TestOperator;
/** the whole bucket, as an admin sees it */
let bucketStore: S3ObjectStore;

const specYaml = (prefix: string) => `
datasets:
  train:
    - name: synthetic-hard
      synthetic: { count: 16 }
storage:
  bucket: ${bucket}
  endpoint: ${s3.endpoint}
  forcePathStyle: true
  prefix: ${JSON.stringify(prefix)}`;

/** the object store as the run's functions open it: from their pod's environment */
async function podStore(run: string): Promise<S3ObjectStore> {
  const deployment = (await eventually(`${run} deployment`, () =>
    admin.get(DEPLOYMENT, `${run}-learn`, namespace),
  )) as unknown as {
    spec: { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
  };
  const env = Object.fromEntries(
    deployment.spec.template.spec.containers[0]!.env.map((e) => [e.name, e.value]),
  );
  expect(env.QUESTA_RUN).toBe(run);
  const store = new S3ObjectStore({ ...s3StoreConfigFromEnv(env), credentials });
  stores.push(store);
  return store;
}

/** writes what a run's functions write, through its keys; returns the bucket keys */
async function writeRunObjects(run: string): Promise<string[]> {
  const store = await podStore(run);
  const keys = new RunKeys(run);
  const written = [
    `${keys.checkpoint(10)}/manifest.json`,
    `${keys.policy(10)}/weights.safetensors`,
    keys.key("rollouts", "shard-0.json"),
    keys.key("dead-letters", "dl-1.json"),
  ];
  for (const key of written) await store.put(key, `${run} ${key}`);
  return written.map((key) => `${store.config.prefix}${key}`);
}

beforeAll(async () => {
  await installChart(bin, kubeconfig, kube.operatorNamespace);
  namespace = await createNamespace(bin, kubeconfig, "artifacts");
  bucketStore = new S3ObjectStore({ bucket, endpoint: s3.endpoint, region: s3.region, credentials });
  stores.push(bucketStore);
  await bucketStore.ensureBucket();
  // the operator's own S3 deletion (what main.ts wires), allowed on this bucket only
  test = startTestOperator(
    kube.operatorKubeconfig,
    { instance: "artifacts-test", namespace },
    undefined,
    artifactStores([{ bucket, endpoint: s3.endpoint }], { credentials }),
  );
  await test.operator.start();
});

afterAll(async () => {
  await test?.operator.stop();
  for (const store of stores) store.close();
});

describe("artifact deletion over the real key layout", () => {
  it("deletes exactly the run's objects, for every shape of storage prefix", async () => {
    // per prefix: a run to delete and a neighbour whose name it prefixes ("d0" and "d0x")
    const runs = PREFIXES.flatMap((prefix, i) => [
      { name: `d${i}`, prefix, deleted: true },
      { name: `d${i}x`, prefix, deleted: false },
    ]);
    for (const run of runs) {
      const yaml = trainingYaml(namespace, run.name, specYaml(run.prefix));
      const annotated = run.deleted
        ? yaml.replace("metadata:\n", 'metadata:\n  annotations: { questa.dev/delete-artifacts: "true" }\n')
        : yaml;
      expect((await kubectlApply(bin, kubeconfig, annotated)).stderr).toBe("");
    }
    const objects = new Map<string, string[]>();
    for (const run of runs) objects.set(run.name, await writeRunObjects(run.name));
    // strays beside the runs: at each storage prefix, and where the pre-namespace layout put a run
    const strays = [
      "stray.json",
      "questa/stray.json",
      "a/b/stray.json",
      "d0/legacy.json",
      "questa/d1/legacy.json",
    ];
    for (const key of strays) await bucketStore.put(key, "not a run's");

    // what the operator recorded as each run's root is where its functions wrote
    for (const run of runs) {
      const owned = await eventually(`${run.name} owned`, async () => {
        const status = (await admin.get(QUESTA_TRAINING, run.name, namespace))?.status as
          | { owned?: { objectStores: { root: string }[] } }
          | undefined;
        return status?.owned?.objectStores.length ? status.owned : undefined;
      });
      const roots = owned.objectStores.map((o) => o.root);
      expect(roots).toHaveLength(1);
      for (const key of objects.get(run.name) ?? []) expect(key.startsWith(roots[0]!)).toBe(true);
    }

    for (const run of runs.filter((r) => r.deleted)) {
      await mustTool(bin, "kubectl", [
        "--kubeconfig",
        kubeconfig,
        "-n",
        namespace,
        "delete",
        "qt",
        run.name,
        "--wait=false",
      ]);
    }
    for (const run of runs.filter((r) => r.deleted)) {
      await eventually(
        `${run.name} deleted`,
        async () => ((await admin.get(QUESTA_TRAINING, run.name, namespace)) ? undefined : true),
        60_000,
      );
    }

    const kept = [...runs.filter((r) => !r.deleted).flatMap((r) => objects.get(r.name) ?? []), ...strays];
    expect((await bucketStore.list("")).map((o) => o.key)).toEqual([...kept].sort());
  });
});
