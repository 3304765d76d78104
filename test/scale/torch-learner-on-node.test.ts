/**
 * Issue #22's last proof: the operator's torch learner without Kubeflow Trainer (no Trainer CRDs on
 * this cluster, so the Indexed Job fallback: an Indexed Job of 2 pods and a headless Service) on the
 * real test node (test/infra/torch-node-setup.ts: containerd + kubelet with a pod network and
 * CoreDNS, the torch learner's image). The chart is installed with that image, a QuestATraining
 * with learner.engine torch on 2 nodes of 1 process each is applied, and:
 *   - both learner pods run on the node, each with its own pod IP, and their torchruns rendezvous
 *     (c10d on `<job>-0.<service>:29500`, PET_MASTER_ADDR, resolved by the cluster DNS) into one
 *     world of 2 ranks: pod 0's rank 0 drives the learner, pod 1 is a node agent, alive for the
 *     kubelet's liveness probe, and no learner pod fails;
 *   - the run trains its steps (each announced once) and reaches Succeeded;
 *   - every checkpoint after the start lists both ranks' torch.distributed.checkpoint files, each
 *     uploaded by its own pod.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it, onTestFailed } from "vitest";
import { stringify } from "yaml";
import { DeadLetter } from "../../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../../functions/runtime/s3-object-store.ts";
import { installChart, kubectl, kubeTool, podLogsReport } from "../node-kubectl.ts";
import { announcedSteps, readRunEvents } from "../questa-cli.ts";
import { TINY_LEARNER_FOLDER } from "./learner-batch.ts";

const image = inject("questaImage");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");

const suffix = randomBytes(3).toString("hex");
const system = `questa-torch-${suffix}`;
const runs = `runs-${suffix}`;
const bucket = `questa-torch-node-${suffix}`;
const name = "tl";
const job = `${name}-learn`;
const totalSteps = 4;

interface Pod {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { nodeName?: string; hostname?: string; subdomain?: string };
  status?: { phase?: string; podIP?: string };
}

async function learnerPods(): Promise<Pod[]> {
  const list = JSON.parse(
    await kubectl("-n", runs, "get", "pods", "-l", `batch.kubernetes.io/job-name=${job}`, "-o", "json"),
  ) as { items: Pod[] };
  return list.items;
}

async function qtStatus(): Promise<{ phase?: string; step?: number; message?: string }> {
  const qt = JSON.parse(await kubectl("-n", runs, "get", "qt", name, "-o", "json")) as { status?: object };
  return qt.status ?? {};
}

/** the learn process's "torch learner ready" line (functions/host/torch-learner-engine.ts), once logged */
async function torchReady(pod: string): Promise<Record<string, unknown> | undefined> {
  const log = await kubectl("-n", runs, "logs", pod).catch(() => "");
  for (const line of log.split("\n")) {
    if (!line.includes('"torch learner ready"')) continue;
    return JSON.parse(line) as Record<string, unknown>;
  }
  return undefined;
}

describe("the torch learner's Indexed Job on the real node", () => {
  it("two learner pods rendezvous through the cluster DNS and train; each checkpoint has both ranks' DCP files", async () => {
    onTestFailed(async () => {
      const status = await qtStatus().catch((error) => String(error));
      console.error(`run status: ${JSON.stringify(status)}\n${await podLogsReport([system, runs], 80)}`);
    });
    // one operator replica (the standby's failover is the end-to-end test's): the torch image for
    // the operator and the functions alike, as it is questa's image plus the learner's venv
    await installChart({ namespace: system, image, brokers, values: ["replicaCount=1"] });
    // the fallback is what this cluster gets: no Kubeflow Trainer
    expect(await kubectl("get", "crd", "-o", "name")).not.toContain("trainjobs.trainer.kubeflow.org");

    await kubectl("create", "namespace", runs);
    await kubectl(
      "-n",
      runs,
      "create",
      "secret",
      "generic",
      "s3",
      `--from-literal=AWS_ACCESS_KEY_ID=${s3.accessKeyId}`,
      `--from-literal=AWS_SECRET_ACCESS_KEY=${s3.secretAccessKey}`,
    );
    const s3Config = {
      bucket,
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    };
    const store = new S3ObjectStore({ ...s3Config, prefix: `runs/namespaces/${runs}/` });
    await store.ensureBucket();
    // the starting model, where pods read it: the tiny Qwen2 of test/fixtures/hf/tiny-learner in S3
    const models = new S3ObjectStore({ ...s3Config, prefix: "models/tiny-learner/" });
    for (const file of readdirSync(TINY_LEARNER_FOLDER)) {
      await models.put(file, new Uint8Array(readFileSync(join(TINY_LEARNER_FOLDER, file))));
    }
    models.close();

    const small = { cpu: "150m", memory: "1Gi", gpus: 0, scratch: "1Gi" };
    const topicPrefix = `questa.${runs}.${name}`;
    const resource = {
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: { name, namespace: runs },
      spec: {
        model: {
          source: "huggingface",
          uri: `s3://${bucket}/models/tiny-learner/`,
          prompt: { format: "chat" },
        },
        datasets: {
          train: [{ name: "train", synthetic: { split: "train", difficulty: "hard", count: 32, seed: 1 } }],
        },
        augmentation: {
          minPrefixChars: 4,
          curriculum: [{ ratio: 0.5, until: { steps: 2 } }, { ratio: 0.25 }],
          hardFilter: { samples: 2, minPasses: 0, maxPasses: 2 },
          decontamination: { enabled: false },
        },
        rollout: { groupSize: 4, maxNewTokens: 16, replicas: { min: 1, max: 1 }, resources: small },
        learner: {
          engine: "torch",
          torch: { nodes: 2, processesPerNode: 1, microBatchSize: 4 },
          promptsPerStep: 2,
          totalSteps,
          checkpointInterval: 2,
          learningRate: 1e-4,
          groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 },
          // torch and the node process per pod; /dev/shm (memory-backed) counts here too
          resources: { cpu: "150m", memory: "3Gi", gpus: 0, scratch: "2Gi" },
        },
        evaluation: {
          benchmarks: [{ name: "eval", synthetic: { split: "eval", difficulty: "hard", count: 4, seed: 2 } }],
          samples: 2,
          k: [1, 2],
          interval: totalSteps,
          maxNewTokens: 16,
          resources: small,
        },
        kafka: { brokers, topicPrefix, partitions: 2, replicationFactor: 1 },
        storage: {
          bucket,
          prefix: "runs",
          region: s3.region,
          endpoint: s3.endpoint,
          forcePathStyle: true,
          credentialsSecretRef: { name: "s3" },
        },
      },
    };
    await kubeTool("kubectl", ["apply", "-f", "-"], stringify(resource));

    // the operator's fallback: an Indexed Job of 2 pods under a headless Service of the same name
    await expect
      .poll(() => kubectl("-n", runs, "get", "job", job, "-o", "name").catch(() => ""), { timeout: 120_000 })
      .toBe(`job.batch/${job}\n`);
    const rendered = JSON.parse(await kubectl("-n", runs, "get", "job", job, "-o", "json")).spec;
    expect(rendered).toMatchObject({ completionMode: "Indexed", completions: 2, parallelism: 2 });
    const env = Object.fromEntries(
      (rendered.template.spec.containers[0].env as { name: string; value?: string }[]).map((e) => [
        e.name,
        e.value,
      ]),
    );
    expect(env).toMatchObject({
      PET_NNODES: "2",
      PET_NPROC_PER_NODE: "1",
      PET_MASTER_ADDR: `${job}-0.${job}`,
    });
    expect(JSON.parse(await kubectl("-n", runs, "get", "service", job, "-o", "json")).spec.clusterIP).toBe(
      "None",
    );

    // both torchruns joined one world: rank 0 in pod 0 (the driver), rank 1 in pod 1 (a node agent).
    // Read while they run: the operator stops the learner's Job once the run is over
    const ready = new Map<string, Record<string, unknown>>();
    await expect
      .poll(
        async () => {
          const status = await qtStatus();
          if (status.phase === "Failed") throw new Error(`run failed: ${JSON.stringify(status)}`);
          for (const pod of await learnerPods()) {
            if (ready.has(pod.metadata.name)) continue;
            const line = await torchReady(pod.metadata.name);
            if (line) ready.set(pod.metadata.name, line);
          }
          return ready.size;
        },
        { timeout: 600_000, interval: 2000 },
      )
      .toBe(2);
    const pods = (await learnerPods()).filter((p) => ready.has(p.metadata.name));
    const byIndex = (index: number) =>
      pods.find((p) => p.metadata.labels?.["batch.kubernetes.io/job-completion-index"] === String(index));
    const [first, second] = [byIndex(0), byIndex(1)];
    // on the real node, each pod with its own address on the pod network, named as PET_MASTER_ADDR says
    for (const [index, pod] of [first, second].entries()) {
      expect(pod?.spec).toMatchObject({ nodeName: "127.0.0.1", hostname: `${job}-${index}`, subdomain: job });
      expect(pod?.status?.podIP).toMatch(/^10\.244\.0\.\d+$/);
    }
    expect(first?.status?.podIP).not.toBe(second?.status?.podIP);
    expect(ready.get(first?.metadata.name ?? "")).toMatchObject({ rank: 0, node: 0, nodes: 2, worldSize: 2 });
    expect(ready.get(second?.metadata.name ?? "")).toMatchObject({
      rank: 1,
      node: 1,
      nodes: 2,
      worldSize: 2,
    });
    // the node agent answers the kubelet's liveness probe (else the kubelet kills it a minute in,
    // and the whole torchrun world with it)
    const healthz = `fetch("http://127.0.0.1:9090/healthz").then((r) => console.log(r.status), () => console.log("down"))`;
    await expect
      .poll(() => kubectl("-n", runs, "exec", second?.metadata.name ?? "", "--", "node", "-e", healthz), {
        timeout: 60_000,
        interval: 1000,
      })
      .toBe("200\n");

    await expect
      .poll(
        async () => {
          const status = await qtStatus();
          if (status.phase === "Failed") throw new Error(`run failed: ${JSON.stringify(status)}`);
          return status.phase;
        },
        { timeout: 600_000, interval: 2000 },
      )
      .toBe("Succeeded");
    expect((await qtStatus()).step).toBe(totalSteps);
    // no learner pod failed along the way (a failed one would have been replaced: a second world)
    const jobStatus = JSON.parse(await kubectl("-n", runs, "get", "job", job, "-o", "json")).status;
    expect(jobStatus.failed ?? 0).toBe(0);

    const bus = new KafkaBus(
      { brokers, clientId: "questa-torch-node-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    try {
      const events = await readRunEvents(bus, topicPrefix);
      expect(events.filter((e) => e.type === DeadLetter.type)).toEqual([]);
      expect(announcedSteps(events)).toEqual(Array.from({ length: totalSteps }, (_, i) => i + 1));

      // every checkpoint the learner wrote (the interval's and the last) holds both ranks' DCP state
      const manifests = (await store.list(`${name}/checkpoints/`))
        .map((o) => o.key)
        .filter((k) => k.endsWith("/manifest.json"));
      expect(manifests).toEqual(
        [0, 2, 4].map((s) => `${name}/checkpoints/step-${String(s).padStart(6, "0")}/manifest.json`),
      );
      for (const key of manifests.slice(1)) {
        const manifest = JSON.parse(new TextDecoder().decode(await store.get(key))) as {
          files: Record<string, unknown>;
          metadata: Record<string, string>;
        };
        expect(manifest.metadata, key).toMatchObject({ engine: "torch" });
        expect(
          Object.keys(manifest.files)
            .filter((f) => f.startsWith("dcp/"))
            .sort(),
          key,
        ).toEqual(["dcp/.metadata", "dcp/__0_0.distcp", "dcp/__1_0.distcp"]);
      }
      const state = JSON.parse(new TextDecoder().decode(await store.get(`${name}/learner/state.json`)));
      expect(state).toMatchObject({ step: totalSteps, finished: true });
    } finally {
      await bus.close();
      store.close();
    }
  }, 1_200_000);
});
