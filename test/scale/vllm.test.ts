import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { clusterSpec, functionProcessEnv, parseS3Location } from "../../cli/process-run.ts";
import { QuestATrainingSchema } from "../../functions/contracts/questatraining.ts";
import { VllmHttpServer } from "../../functions/host/vllm-api.ts";
import { VllmPolicySampler } from "../../functions/host/vllm-policy-sampler.ts";
import { TINY_VLLM_FOLDER, tinyVllmRun } from "../../functions/host/vllm-test-support.ts";
import { servedStep } from "../../functions/host/vllm-weight-sync.ts";
import { createEngine } from "../../functions/model/engine.ts";
import { readTextIfPresent } from "../../functions/runtime/atomic-file.ts";
import { parseBinaryMessage } from "../../functions/runtime/cloudevents.ts";
import { DeadLetter } from "../../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { renderTrainingConfig } from "../../operator/resources/config-map.ts";
import type { RunningVllm } from "../infra/vllm-server.ts";
import { startVllm } from "../infra/vllm-server.ts";
import { announcedSteps, readRunEvents, readTopics, startQuesta } from "../questa-cli.ts";
import { testTempDir } from "../temp-dir.ts";

const root = join(import.meta.dirname, "..", "..");

const python = inject("vllmPython");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");

/** |vLLM - transformers| per token: both compute in float32 on the same bf16 weights */
const LOG_PROB_TOLERANCE = 1e-4;

interface Reference {
  stopTokens: number[];
  maxNewTokens: number;
  prompts: { problem: string; promptTokens: number[]; tokens: number[]; logProbs: number[] }[];
}
const reference = JSON.parse(
  readFileSync(join(root, "test", "fixtures", "hf", "tiny-qwen2-vllm.reference.json"), "utf8"),
) as Reference;

let server: RunningVllm | undefined;
beforeAll(async () => {
  server = await startVllm({
    python,
    model: TINY_VLLM_FOLDER,
    servedModelName: "tiny-vllm",
    maxModelLength: 256,
    dtype: "float32",
  });
}, 15 * 60_000);
afterAll(async () => {
  await server?.stop();
});

function running(): RunningVllm {
  if (!server) throw new Error("the vLLM server did not start");
  return server;
}

async function sampler() {
  const run = await tinyVllmRun();
  const vllm = new VllmPolicySampler({
    endpoints: async () => [new VllmHttpServer(running().url)],
    prompt: { format: "chat", enableThinking: true },
  });
  await vllm.load(run.store, run.keys.checkpoint(0), 0);
  return { vllm, model: run.model };
}

describe("the vLLM sampler on the tiny Qwen2", () => {
  it("samples transformers' greedy tokens at top-k 1 with transformers' log-probs (raw, not top-k's 0)", async () => {
    const { vllm } = await sampler();
    let worst = 0;
    for (const [i, p] of reference.prompts.entries()) {
      // questa's chat template renders the prompt as transformers does
      expect(vllm.encodePrompt(p.problem)).toEqual(p.promptTokens);
      const group = await vllm.sample(
        p.promptTokens,
        2,
        { temperature: 1, topP: 1, topK: 1, maxNewTokens: reference.maxNewTokens },
        i,
      );
      expect(group.policyVersion).toBe(0);
      for (const response of group.responses) {
        expect(response.tokens).toEqual(p.tokens);
        for (const [t, logProb] of response.logProbs.entries())
          worst = Math.max(worst, Math.abs(logProb - p.logProbs[t]!));
      }
    }
    expect(worst).toBeLessThan(LOG_PROB_TOLERANCE);
  });

  it("gives sampled tokens the log-probs questa's engine computes (before temperature and top-p), and the same seed the same group", async () => {
    const { vllm, model } = await sampler();
    const engine = await createEngine({ config: model.config, params: model.params, threads: 1 });
    try {
      const prompt = reference.prompts[1]!.promptTokens;
      const settings = { temperature: 0.8, topP: 0.9, topK: 0, maxNewTokens: 32 };
      const group = await vllm.sample(prompt, 4, settings, 11);
      const scored = await engine.forwardLogProbs(group.responses.map((r) => [...prompt, ...r.tokens]));
      let worst = 0;
      for (const [i, response] of group.responses.entries()) {
        const expected = scored[i]!.logProbs.slice(prompt.length);
        for (const [t, logProb] of response.logProbs.entries())
          worst = Math.max(worst, Math.abs(logProb - expected[t]!));
      }
      // questa's engine matches transformers within 1.3e-5 (functions/model/hf-parity.test.ts)
      expect(worst).toBeLessThan(LOG_PROB_TOLERANCE);
      expect((await vllm.sample(prompt, 4, settings, 11)).responses).toEqual(group.responses);
      const other = await vllm.sample(prompt, 4, settings, 12);
      expect(other.responses.map((r) => r.tokens)).not.toEqual(group.responses.map((r) => r.tokens));
    } finally {
      await engine.dispose();
    }
  });
});

describe("a run with rollout.engine vllm over Kafka and MinIO", () => {
  it("follows the learner's checkpoints into the server and survives the server's restart without losing or repeating a group", async () => {
    const vllm = running();
    const suffix = randomBytes(4).toString("hex");
    const dir = testTempDir("questa-vllm-run-");
    const name = "tiny-vllm-run";
    const resource = QuestATrainingSchema.parse(
      parse(`
apiVersion: questa.dev/v1alpha1
kind: QuestATraining
metadata: { name: ${name} }
spec:
  model: { source: huggingface, uri: ${TINY_VLLM_FOLDER}, prompt: { format: chat } }
  datasets:
    train:
      - name: train
        synthetic: { split: train, difficulty: hard, count: 24, seed: 1 }
  augmentation:
    minPrefixChars: 4
    curriculum: [{ ratio: 0.5, until: { steps: 3 } }, { ratio: 0.25 }]
    hardFilter: { samples: 2, minPasses: 0, maxPasses: 2 }
    decontamination: { enabled: false }
  rollout: { engine: vllm, groupSize: 4, maxNewTokens: 16, resources: { gpus: 0 }, vllm: { resources: { gpus: 0 } } }
  learner:
    promptsPerStep: 2
    totalSteps: 12
    checkpointInterval: 4
    learningRate: 0.001
    groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 }
    resources: { gpus: 0 }
  evaluation:
    benchmarks:
      - name: hard-eval
        synthetic: { split: eval, difficulty: hard, count: 4, seed: 2 }
    samples: 2
    k: [1, 2]
    interval: 4
    maxNewTokens: 16
    resources: { gpus: 0 }
  kafka: { topicPrefix: questa.default.${name}.vllm-${suffix}, partitions: 2 }
`),
    );
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const bucket = `questa-vllm-${suffix}`;
    const s3Url = `${s3.endpoint}/${bucket}/runs`;
    const credentials = {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
      QUESTA_CACHE_DIR: join(dir, "cache"),
      QUESTA_KAFKA_SESSION_TIMEOUT_MS: "6000",
    };
    const start = (args: string[], env: Record<string, string>) => startQuesta(args, dir, env);

    // the sidecar beside the server: what the operator runs in the server's pod, here by hand
    const runRef = { name, namespace: "default", uid: "" };
    const spec = clusterSpec(resource.spec, brokers, parseS3Location(s3Url));
    const configPath = join(dir, "sync-training.yaml");
    writeFileSync(configPath, renderTrainingConfig(runRef, spec));
    const syncEnv = functionProcessEnv(runRef, spec, "rollout", configPath, {
      ...process.env,
      ...credentials,
    });
    const rolloutGroup = syncEnv.QUESTA_CONSUMER_GROUP!;
    delete syncEnv.QUESTA_CONSUMER_GROUP;
    const sync = start(["function", "vllm-sync", "--config", configPath], {
      ...syncEnv,
      QUESTA_VLLM_URL: vllm.url,
      QUESTA_VLLM_MODEL_DIR: vllm.modelDir,
      QUESTA_VLLM_SYNC_INTERVAL_MS: "500",
    });

    const run = start(["run", "run.yaml", "--kafka", brokers.join(","), "--s3", s3Url], {
      ...credentials,
      QUESTA_VLLM_ENDPOINTS: vllm.url,
    });
    await expect.poll(() => run.output(), { timeout: 300_000, interval: 500 }).toMatch(/step 2 stage/);
    // the server goes away mid-run (a pod restart: SIGTERM) and stays away until rollout has found
    // it gone and waits for it, keeping its questions; then it comes back on its initial model.
    // Which wait rollout is in is timing: a group's sampling (the runtime's outage wait) or, while
    // the staleness gate holds its questions, the load of the learner's newest policy
    const rolloutLog = join(dir, ".questa", "runs", name, "logs", "rollout.log");
    await vllm.restart({
      whileDown: () =>
        expect
          .poll(async () => (await readTextIfPresent(rolloutLog)) ?? "", { timeout: 300_000, interval: 500 })
          .toMatch(/vllm_unavailable: (waiting for the dependency|no vLLM server answers; policy \d+ loads)/),
    });
    const code = await run.exited;
    const output = run.output();
    expect(output, output).toContain("finished 12 steps");
    expect(code, output).toBe(0);
    expect(output).toMatch(/eval step 12 hard-eval: pass@1/);
    // the sync gave the restarted server the learner's policies again, up to the final one, each
    // from a folder written for it
    await expect
      .poll(async () => servedStep(await new VllmHttpServer(vllm.url).weightVersion()), { timeout: 60_000 })
      .toBe(12);
    expect(readdirSync(vllm.modelDir).filter((f) => f.startsWith("step-000012-"))).toHaveLength(1);
    sync.child.kill("SIGTERM");
    expect(await sync.exited, sync.output()).toBe(0);

    const bus = new KafkaBus(
      { brokers, clientId: "questa-vllm-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    try {
      const events = await readRunEvents(bus, resource.spec.kafka.topicPrefix!);
      expect(events.filter((e) => e.type === DeadLetter.type)).toEqual([]);
      expect(announcedSteps(events)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      type Question = { questionId: string; stage: number; epoch: number; purpose: string };
      const keyOf = (q: Question) => `${q.purpose}/${q.stage}/${q.epoch}/${q.questionId}`;
      const groups = events.filter((e) => e.type === "dev.questa.rollout.group.v1");
      // one group per question: a group published again (after a redelivery) is the same event
      const byKey = new Map<string, unknown>();
      for (const g of groups) {
        const key = keyOf(g.data as Question);
        if (byKey.has(key)) expect(g.data).toEqual(byKey.get(key));
        byKey.set(key, g.data);
      }
      // none lost: every question rollout committed has its group (training questions of a stage
      // the curriculum had left are skipped, as with the onnx engine); questions augment published
      // for epochs the run did not need stay uncommitted
      const questionsTopic = `${resource.spec.kafka.topicPrefix!}.questions`;
      const committed = new Map(
        (await bus.admin.groupLag(rolloutGroup, [questionsTopic])).map((p) => [
          p.partition,
          BigInt(p.committed),
        ]),
      );
      const taken = (await readTopics(bus, [questionsTopic]))
        .filter((m) => BigInt(m.offset) < (committed.get(m.partition) ?? 0n))
        .map((m) => {
          const parsed = parseBinaryMessage(m);
          if (!parsed.ok) throw parsed.error;
          return parsed.value.data as Question;
        });
      const lastStage = Math.max(...taken.map((q) => q.stage));
      const missing = taken
        .filter((q) => q.purpose !== "train" || q.stage === lastStage)
        .map(keyOf)
        .filter((k) => !byKey.has(k));
      expect(taken.length).toBeGreaterThan(24);
      expect(missing).toEqual([]);
      // the groups carry the versions the server served: reload after reload, up to the learner's
      const versions = [...byKey.values()].map((g) => (g as { policyVersion: number }).policyVersion);
      expect(new Set(versions).size).toBeGreaterThanOrEqual(3);
      expect(Math.max(...versions)).toBeGreaterThanOrEqual(4);
      expect(events.filter((e) => e.type === "dev.questa.evaluation.result.v1").length).toBeGreaterThan(0);
    } finally {
      await bus.close();
    }
  });
});
