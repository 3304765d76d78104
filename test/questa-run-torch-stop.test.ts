/**
 * `questa run` with learner.engine torch when the torch learner's processes die on their own (a
 * rank crashes, is OOM-killed): the run stops with torchrun's last log lines (the reason) and how
 * to resume, not as an internal error. A stand-in for torchrun (QUESTA_TORCH_PYTHON, a shell
 * script speaking the learner's protocol) dies at the request the test names; the real torchrun's
 * runs are the scale project's.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { writeStandInTorchrun } from "../functions/host/torch-test-support.ts";
import { startQuesta } from "./questa-cli.ts";
import { testTempDir } from "./temp-dir.ts";

const tinyModel = join(import.meta.dirname, "fixtures", "hf", "tiny-qwen2-vllm");

function writeRun(dir: string): void {
  const resource = {
    apiVersion: "questa.dev/v1alpha1",
    kind: "QuestATraining",
    metadata: { name: "torch-stop" },
    spec: {
      model: { source: "huggingface", uri: tinyModel, prompt: { format: "chat" } },
      datasets: {
        train: [{ name: "train", synthetic: { split: "train", difficulty: "hard", count: 8, seed: 1 } }],
      },
      augmentation: {
        minPrefixChars: 4,
        hardFilter: { samples: 2, minPasses: 0, maxPasses: 2 },
        decontamination: { enabled: false },
      },
      rollout: { groupSize: 2, maxNewTokens: 8 },
      learner: {
        engine: "torch",
        promptsPerStep: 2,
        totalSteps: 2,
        checkpointInterval: 1,
        groupFilter: { minSuccessRate: 0, maxSuccessRate: 1 },
      },
      evaluation: {
        benchmarks: [{ name: "eval", synthetic: { split: "eval", difficulty: "hard", count: 2, seed: 2 } }],
        samples: 1,
        k: [1],
        interval: 2,
        maxNewTokens: 8,
      },
    },
  };
  writeFileSync(join(dir, "run.yaml"), stringify(resource));
}

describe("questa run when the torch learner's processes die", () => {
  for (const dieAt of ["load", "train"] as const) {
    it(`stops saying why and how to resume (torchrun dies at its first ${dieAt})`, async () => {
      const dir = testTempDir("questa-torch-stop-");
      writeRun(dir);
      const run = startQuesta(["run", "run.yaml"], dir, {
        QUESTA_CACHE_DIR: join(dir, "cache"),
        QUESTA_TORCH_PYTHON: writeStandInTorchrun(dir, dieAt),
      });
      const code = await run.exited;
      const output = run.output();
      expect(code, output).toBe(1);
      expect(output).toContain(
        [
          "questa run: the torch learner stopped: torchrun exited (code 1); its last log lines:",
          "  Traceback (most recent call last):",
          `  RuntimeError: rank 1 ran out of memory at ${dieAt}`,
          "the run stopped with its state kept: run the same command again to resume it",
        ].join("\n"),
      );
      expect(output).not.toContain("internal error");
    }, 120_000);
  }
});
