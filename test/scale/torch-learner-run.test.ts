/**
 * A run with learner.engine torch over the test Kafka and MinIO, its functions as processes
 * (`questa run FILE --kafka --s3`): the learn process drives PyTorch FSDP2 in 2 torchrun processes
 * (gloo on the CPU, bf16 compute, activation checkpointing) on the tiny Qwen2 of
 * test/fixtures/hf/tiny-learner, while rollout and evaluation sample from the checkpoints it writes.
 * The learn process is killed with SIGKILL mid-run: its torchrun stops (end of input), the
 * supervisor starts learn again, which restores the model and optimiser from the last step's
 * torch.distributed.checkpoint, and the run ends with every step exactly once. The published
 * Hugging Face folders load in transformers with the same logits as questa's engine
 * (scripts/reference/check_hf_export.py). A KL penalty is on, so the frozen reference (step 0) is
 * loaded beside the policy by each learn process.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { stringify } from "yaml";
import { DeadLetter } from "../../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../../functions/runtime/s3-object-store.ts";
import { livingProcesses } from "../living-processes.ts";
import { announcedSteps, readRunEvents, startQuesta } from "../questa-cli.ts";
import { testTempDir } from "../temp-dir.ts";
import { TINY_LEARNER_FOLDER } from "./learner-batch.ts";

const root = join(import.meta.dirname, "..", "..");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");
const python = inject("torchLearnerPython");

/** processes whose command line names `text` (torchrun and its workers, by their work folder) */
function processesNaming(text: string): number[] {
  return livingProcesses()
    .filter((p) => p.cmdline.includes(text))
    .map((p) => p.pid);
}

function learnLog(dir: string): string {
  try {
    return readFileSync(join(dir, ".questa", "runs", "torch-run", "logs", "learn.log"), "utf8");
  } catch {
    return "(no learn.log)";
  }
}

describe("a run with learner.engine torch (2 torchrun processes, gloo)", () => {
  it("trains, publishes Hugging Face checkpoints, and resumes a killed learner with no step repeated or skipped", async () => {
    const suffix = randomBytes(4).toString("hex");
    const dir = testTempDir("questa-torch-run-");
    const topicPrefix = `questa.default.torch-run.t-${suffix}`;
    const resource = {
      apiVersion: "questa.dev/v1alpha1",
      kind: "QuestATraining",
      metadata: { name: "torch-run" },
      spec: {
        model: { source: "huggingface", uri: TINY_LEARNER_FOLDER, prompt: { format: "chat" } },
        datasets: {
          train: [{ name: "train", synthetic: { split: "train", difficulty: "hard", count: 32, seed: 1 } }],
        },
        augmentation: {
          minPrefixChars: 4,
          curriculum: [{ ratio: 0.5, until: { steps: 2 } }, { ratio: 0.25 }],
          hardFilter: { samples: 2, minPasses: 0, maxPasses: 2 },
          decontamination: { enabled: false },
        },
        rollout: { groupSize: 4, maxNewTokens: 16, resources: { gpus: 0 } },
        learner: {
          engine: "torch",
          torch: { processesPerNode: 2, microBatchSize: 4 },
          promptsPerStep: 2,
          totalSteps: 6,
          checkpointInterval: 2,
          learningRate: 1e-4,
          // a KL penalty: the reference (step 0) is loaded beside the policy at start and on resume
          klCoef: 0.05,
          groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 },
          resources: { gpus: 0 },
        },
        evaluation: {
          benchmarks: [{ name: "eval", synthetic: { split: "eval", difficulty: "hard", count: 4, seed: 2 } }],
          samples: 2,
          k: [1, 2],
          interval: 6,
          maxNewTokens: 16,
          resources: { gpus: 0 },
        },
        kafka: { topicPrefix, partitions: 2 },
      },
    };
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const bucket = `questa-torch-${suffix}`;
    const env = {
      QUESTA_CACHE_DIR: join(dir, "cache"),
      QUESTA_TORCH_PYTHON: python,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
      QUESTA_KAFKA_SESSION_TIMEOUT_MS: "6000",
    };
    const args = ["run", "run.yaml", "--kafka", brokers.join(","), "--s3", `${s3.endpoint}/${bucket}/runs`];
    const run = startQuesta(args, dir, env);
    await expect.poll(() => run.output(), { timeout: 400_000, interval: 500 }).toMatch(/step 3 stage/);
    const learnPid = Number(run.output().match(/started learn \(pid (\d+)\)/)?.[1]);
    expect(learnPid).toBeGreaterThan(0);
    process.kill(learnPid, "SIGKILL");
    // its torchrun reads the end of its input and stops every rank
    await expect
      .poll(() => processesNaming(`questa-torch-learner-${learnPid}`), { timeout: 120_000, interval: 500 })
      .toEqual([]);
    const code = await run.exited;
    const output = run.output();
    expect(output, `${output}\n${learnLog(dir).slice(-6000)}`).toContain(
      `learn (pid ${learnPid}) exited (signal SIGKILL); restarting`,
    );
    expect(output, `${output}\n${learnLog(dir).slice(-6000)}`).toContain("finished 6 steps");
    expect(code, output).toBe(0);
    expect(output).toMatch(/eval step 6 eval: pass@1/);
    expect(output).toMatch(/training [\d.]+K? tok\/s, log-prob gap [\d.]+/);
    // the restarted learner took the model and optimiser of its last step from the DCP files
    const loads = learnLog(dir)
      .split("\n")
      .filter((line) => line.includes("torch learner loaded a checkpoint"))
      .map(
        (line) =>
          JSON.parse(line) as { prefix: string; role: string; weights: string; optimizerStep: number },
      );
    const resumed = loads.filter((l) => l.role === "policy");
    expect(resumed[0]).toMatchObject({ prefix: "torch-run/checkpoints/step-000000", weights: "huggingface" });
    // the KL reference, step 0, by both learn processes
    const references = loads.filter((l) => l.role === "reference");
    expect(references.map((l) => l.prefix)).toEqual(Array(2).fill("torch-run/checkpoints/step-000000"));
    expect(resumed.at(-1)?.weights).toBe("dcp");
    expect(resumed.at(-1)?.prefix).toMatch(/^torch-run\/learner\/resume\/step-00000[3-5]$/);
    expect(resumed.at(-1)?.optimizerStep).toBe(Number(resumed.at(-1)?.prefix.slice(-1)));
    // what the killed process left in its work folder
    rmSync(join(tmpdir(), `questa-torch-learner-${learnPid}`), { recursive: true, force: true });

    const bus = new KafkaBus(
      { brokers, clientId: "questa-torch-run-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    const store = new S3ObjectStore({
      bucket,
      prefix: "runs/namespaces/default/",
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    try {
      const events = await readRunEvents(bus, topicPrefix);
      expect(events.filter((e) => e.type === DeadLetter.type)).toEqual([]);
      expect(announcedSteps(events)).toEqual([1, 2, 3, 4, 5, 6]);
      const stepMetrics = events.filter(
        (e) => e.type === "dev.questa.run.status.v1" && (e.data as { kind: string }).kind === "step",
      );
      const kl: number[] = [];
      for (const e of stepMetrics) {
        const metrics = (e.data as { metrics: { logProbGap: number; klToReference?: number } }).metrics;
        expect(metrics.logProbGap).toBeGreaterThanOrEqual(0);
        kl.push(metrics.klToReference ?? Number.NaN);
      }
      // every step reports its KL to the reference, which grows once the policy has moved
      expect(
        kl.every((v) => v >= 0),
        String(kl),
      ).toBe(true);
      expect(Math.max(...kl), String(kl)).toBeGreaterThan(0);

      // checkpoints of the start, the stage end and interval (2), 4 and the end, each once
      const checkpoints = (await store.list("torch-run/checkpoints/"))
        .filter((o) => o.key.endsWith("/manifest.json"))
        .map((o) => o.key);
      expect(checkpoints).toEqual(
        [0, 2, 4, 6].map((s) => `torch-run/checkpoints/step-${String(s).padStart(6, "0")}/manifest.json`),
      );
      const state = JSON.parse(new TextDecoder().decode(await store.get("torch-run/learner/state.json")));
      expect(state).toMatchObject({ step: 6, finished: true });
      const trained = (state.consumed as { step: number; keys: string[] }[]).flatMap((c) => c.keys);
      expect(new Set(trained).size).toBe(trained.length);
      expect(state.consumed.map((c: { step: number }) => c.step)).toEqual([1, 2, 3, 4, 5, 6]);

      // a full checkpoint: the Hugging Face folder and the DCP state of both ranks
      const final = JSON.parse(
        new TextDecoder().decode(await store.get("torch-run/checkpoints/step-000006/manifest.json")),
      ) as { files: Record<string, unknown>; metadata: Record<string, string> };
      expect(final.metadata).toMatchObject({ engine: "torch" });
      expect(
        Object.keys(final.files)
          .filter((f) => f.startsWith("dcp/"))
          .sort(),
      ).toEqual(["dcp/.metadata", "dcp/__0_0.distcp", "dcp/__1_0.distcp"]);

      // the published folders load in transformers, with questa's logits
      const folders: string[] = [];
      for (const step of ["000002", "000006"]) {
        const local = join(dir, "export", step);
        for (const o of await store.list(`torch-run/checkpoints/step-${step}/hf/`)) {
          const target = join(local, o.key.slice(`torch-run/checkpoints/step-${step}/hf/`.length));
          mkdirSync(dirname(target), { recursive: true });
          writeFileSync(target, (await store.get(o.key))!);
        }
        folders.push(local);
      }
      const check = await new Promise<{ code: number; output: string }>((resolve) => {
        execFile(
          python,
          [join(root, "scripts", "reference", "check_hf_export.py"), ...folders],
          { cwd: root },
          (error, stdout, stderr) =>
            resolve({
              code: error ? ((error as { code?: number }).code ?? 1) : 0,
              output: `${stdout}${stderr}`,
            }),
        );
      });
      expect(check.output, check.output).toContain(`${folders[1]}: OK`);
      expect(check.code, check.output).toBe(0);
    } finally {
      await bus.close();
      store.close();
    }
  }, 600_000);
});
