import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { questaTrainingCrd } from "./crd.ts";
import { generatedFiles } from "./generated-files.ts";
import { OFFICIAL_HINT_TEMPLATE, QuestATrainingSpecSchema } from "./questatraining.ts";
import { ALL_EVENTS } from "./registry.ts";
import { validateQuestATraining, validateYaml } from "./validate.ts";

const root = join(import.meta.dirname, "..", "..");

function minimal(spec: Record<string, unknown> = {}) {
  return {
    apiVersion: "questa.dev/v1alpha1",
    kind: "QuestATraining",
    metadata: { name: "run-1" },
    spec: { datasets: { train: [{ name: "train", synthetic: {} }] }, ...spec },
  };
}

describe("generated files", () => {
  it("match what `npm run generate` produces (run it after changing a schema)", () => {
    for (const [path, expected] of generatedFiles()) {
      const actual = readFileSync(join(root, path), "utf8");
      expect(actual, `${path} is stale: run npm run generate`).toBe(expected);
    }
  });

  it("give every CRD property a description", () => {
    const missing: string[] = [];
    const walk = (schema: Record<string, unknown>, path: string) => {
      const props = (schema.properties ?? {}) as Record<string, Record<string, unknown>>;
      for (const [key, child] of Object.entries(props)) {
        // the API server allows nothing under the root's metadata, not even a description
        if (path === "" && key === "metadata") continue;
        if (typeof child.description !== "string" || child.description.length === 0)
          missing.push(`${path}.${key}`);
        walk(child, `${path}.${key}`);
      }
      if (schema.items && typeof schema.items === "object")
        walk(schema.items as Record<string, unknown>, `${path}[]`);
      if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        walk(schema.additionalProperties as Record<string, unknown>, `${path}{}`);
      }
    };
    const crd = questaTrainingCrd() as {
      spec: { versions: { schema: { openAPIV3Schema: Record<string, unknown> } }[] };
    };
    const version = crd.spec.versions[0];
    expect(version).toBeDefined();
    walk(version?.schema.openAPIV3Schema ?? {}, "");
    expect(missing).toEqual([]);
  });

  it("emit a structural schema: no additionalProperties:false, no const, no oneOf", () => {
    const text = JSON.stringify(questaTrainingCrd());
    expect(text).not.toContain('"additionalProperties":false');
    expect(text).not.toContain('"const"');
    expect(text).not.toContain('"oneOf"');
    expect(text).toContain('"x-kubernetes-validations"');
  });

  it("have printer columns Phase, Stage, Step, Pass@1, Age", () => {
    const crd = questaTrainingCrd() as {
      spec: { versions: { additionalPrinterColumns: { name: string }[] }[] };
    };
    expect(crd.spec.versions[0]?.additionalPrinterColumns.map((c) => c.name)).toEqual([
      "Phase",
      "Stage",
      "Step",
      "Pass@1",
      "Age",
    ]);
  });

  it("include a JSON Schema for every event type", () => {
    const files = generatedFiles();
    for (const definition of ALL_EVENTS) {
      expect(files.has(`manifests/schemas/${definition.type}.json`)).toBe(true);
    }
  });
});

describe("QuestATraining defaults", () => {
  it("are the official QuestA values", () => {
    const spec = QuestATrainingSpecSchema.parse({ datasets: { train: [{ name: "t", synthetic: {} }] } });
    expect(spec.augmentation.template).toBe(OFFICIAL_HINT_TEMPLATE);
    expect(OFFICIAL_HINT_TEMPLATE).toBe("{problem}\n\n## Hint.{hint}");
    expect(spec.augmentation.unit).toBe("chars");
    expect(spec.augmentation.minPrefixChars).toBe(10);
    expect(spec.augmentation.curriculum.map((s) => s.ratio)).toEqual([0.5, 0.25]);
    expect(spec.augmentation.curriculum[0]?.until?.steps).toBe(100);
    expect(spec.augmentation.hardFilter).toEqual({ enabled: true, samples: 8, minPasses: 0, maxPasses: 4 });
    expect(spec.rollout).toMatchObject({ groupSize: 16, temperature: 1, topP: 1, maxNewTokens: 24576 });
    expect(spec.learner).toMatchObject({
      advantage: "batch",
      rewardScale: 5,
      clipLow: 0.2,
      clipHigh: 0.2,
      importanceCap: 5,
      learningRate: 2e-5,
      weightDecay: 0.05,
      betas: [0.9, 0.95],
      eps: 1e-5,
      gradClip: 1,
      klCoef: 0,
      promptsPerStep: 128,
      maxStaleness: 4,
      groupFilter: { minSuccessRate: 0.05, maxSuccessRate: 0.95 },
    });
    expect(spec.evaluation).toMatchObject({ samples: 32, temperature: 0.6, topP: 0.95 });
    expect(spec.rollout.resources).toEqual({ cpu: "2", memory: "8Gi", gpus: 1, scratch: "10Gi" });
  });
});

describe("validation", () => {
  it("accepts the examples", () => {
    const names = readdirSync(join(root, "manifests", "examples")).filter((n) => n.endsWith(".yaml"));
    expect(names).toEqual(
      expect.arrayContaining(["quickstart.yaml", "nemotron-aime.yaml", "tiny-qwen2.yaml"]),
    );
    for (const name of names) {
      const text = readFileSync(join(root, "manifests", "examples", name), "utf8");
      const results = validateYaml(text);
      expect(results).toHaveLength(1);
      expect(results[0]?.result.ok, name).toBe(true);
    }
  });

  it("keeps the bench's settings the quickstart's but for the evaluation interval, as the README says", () => {
    const spec = (path: string) => {
      const [doc] = validateYaml(readFileSync(join(root, path), "utf8"));
      if (!doc?.result.ok) throw new Error(`${path} is not valid`);
      return doc.result.value.spec;
    };
    const quickstart = spec("manifests/examples/quickstart.yaml");
    const bench = spec("bench/questa-bench.yaml");
    // evaluation reads checkpoints and never feeds training: a sparser one trains the same runs
    expect(bench.evaluation.interval).toBe(50);
    expect({
      ...bench,
      evaluation: { ...bench.evaluation, interval: quickstart.evaluation.interval },
    }).toEqual(quickstart);
  });

  it("names the path of every mistake, not just the first", () => {
    const result = validateQuestATraining(
      minimal({
        rollout: { groupSize: "sixteen" },
        learner: { learningRatee: 0.1 },
        augmentation: { curriculum: [{ ratio: 1.5 }] },
      }),
    );
    expect(result.ok).toBe(false);
    const paths = result.ok ? [] : result.issues.map((i) => i.path).sort();
    expect(paths).toEqual([
      "spec.augmentation.curriculum[0].ratio",
      "spec.learner.learningRatee",
      "spec.rollout.groupSize",
    ]);
    if (!result.ok) for (const issue of result.issues) expect(issue.hint).toBeTruthy();
  });

  it("a Hugging Face or checkpoint model needs its uri; the built-in policy has no chat template", () => {
    const noUri = validateQuestATraining(minimal({ model: { source: "huggingface" } }));
    expect(noUri.ok ? [] : noUri.issues.map((i) => i.path)).toEqual(["spec.model.uri"]);
    const chat = validateQuestATraining(minimal({ model: { prompt: { format: "chat" } } }));
    expect(chat.ok ? [] : chat.issues.map((i) => [i.path, i.message])).toEqual([
      [
        "spec.model.prompt.format",
        "the built-in synthetic policy has no chat template; use prompt.format auto or raw",
      ],
    ]);
    const hf = validateQuestATraining(
      minimal({ model: { source: "huggingface", uri: "s3://models/qwen/", prompt: { format: "chat" } } }),
    );
    expect(hf.ok && hf.value.spec.model.prompt).toEqual({ format: "chat", enableThinking: true });
  });

  it("the scale engines (vllm rollouts, torch learner) need a Hugging Face model and consistent GPU counts", () => {
    const synthetic = validateQuestATraining(
      minimal({ rollout: { engine: "vllm" }, learner: { engine: "torch" } }),
    );
    expect(synthetic.ok ? [] : synthetic.issues.map((i) => [i.path, i.message])).toEqual([
      [
        "spec.learner.engine",
        "learner.engine torch trains a Hugging Face model: set model.source huggingface (or learner.engine onnx)",
      ],
      [
        "spec.rollout.engine",
        "rollout.engine vllm serves a Hugging Face model: set model.source huggingface (or rollout.engine onnx)",
      ],
    ]);
    const klWithTorch = validateQuestATraining(
      minimal({
        model: { source: "huggingface", uri: "s3://models/qwen/" },
        learner: { engine: "torch", klCoef: 0.1 },
      }),
    );
    // the torch learner loads the reference policy beside the policy
    expect(klWithTorch.ok ? [] : klWithTorch.issues.map((i) => i.path)).toEqual([]);
    const tensorParallel = validateQuestATraining(
      minimal({
        model: { source: "huggingface", uri: "s3://models/qwen/" },
        rollout: { engine: "vllm", vllm: { tensorParallelSize: 4, resources: { gpus: 2 } } },
      }),
    );
    expect(tensorParallel.ok ? [] : tensorParallel.issues.map((i) => i.path)).toEqual([
      "spec.rollout.vllm.tensorParallelSize",
    ]);
    const hot = validateQuestATraining(
      minimal({
        model: { source: "huggingface", uri: "s3://models/qwen/" },
        rollout: { engine: "vllm", temperature: 3 },
      }),
    );
    expect(hot.ok ? [] : hot.issues.map((i) => i.path)).toEqual(["spec.rollout.temperature"]);
    const scale = validateQuestATraining(
      minimal({
        model: { source: "huggingface", uri: "s3://models/qwen/" },
        rollout: { engine: "vllm", vllm: { replicas: 2 } },
        learner: { engine: "torch", torch: { nodes: 2, processesPerNode: 8 } },
      }),
    );
    expect(
      scale.ok && [scale.value.spec.rollout.vllm.dtype, scale.value.spec.learner.torch.sharding],
    ).toEqual(["auto", "full-shard"]);
  });
  it("checks cross-field rules", () => {
    const bad = validateQuestATraining(
      minimal({
        augmentation: {
          curriculum: [{ ratio: 0.25, until: { steps: 10 } }, { ratio: 0.5 }],
          hardFilter: { samples: 8, minPasses: 5, maxPasses: 4 },
        },
        rollout: { replicas: { min: 5, max: 2 } },
        evaluation: { samples: 4, k: [1, 8] },
        model: { source: "checkpoint" },
      }),
    );
    expect(bad.ok).toBe(false);
    const paths = bad.ok ? [] : bad.issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "spec.augmentation.curriculum[1].ratio",
        "spec.augmentation.hardFilter.minPasses",
        "spec.rollout.replicas.min",
        "spec.evaluation.k",
        "spec.model.uri",
      ]),
    );
  });

  it("where selects rows of a file, not of the synthetic task", () => {
    const bad = validateQuestATraining(
      minimal({ datasets: { train: [{ name: "t", synthetic: {}, where: { level: ["1"] } }] } }),
    );
    expect(bad.ok ? [] : bad.issues.map((i) => i.path)).toEqual(["spec.datasets.train[0].where"]);
    const good = validateQuestATraining(
      minimal({
        datasets: { train: [{ name: "t", uri: "s3://b/math.jsonl", where: { level: ["1", "2"] } }] },
      }),
    );
    expect(good.ok).toBe(true);
  });

  it("an evaluation-only run (learner.totalSteps 0) may leave datasets.train empty, but needs benchmarks", () => {
    const benchmarks = [{ name: "b", synthetic: { split: "eval", count: 4 } }];
    const evalOnly = validateQuestATraining(
      minimal({ datasets: { train: [] }, learner: { totalSteps: 0 }, evaluation: { benchmarks } }),
    );
    expect(evalOnly.ok).toBe(true);
    const noTrain = validateQuestATraining(minimal({ datasets: { train: [] } }));
    expect(noTrain.ok ? [] : noTrain.issues.map((i) => [i.path, i.message])).toEqual([
      ["spec.datasets.train", expect.stringContaining("learner.totalSteps: 0 to only evaluate")],
    ]);
    const nothing = validateQuestATraining(minimal({ learner: { totalSteps: 0 } }));
    expect(nothing.ok ? [] : nothing.issues.map((i) => i.path)).toEqual(["spec.evaluation.benchmarks"]);
  });

  it("refuses a storage prefix or local directory that climbs out, and a reserved namespaces segment", () => {
    for (const [storage, path, words] of [
      [{ prefix: "../../x" }, "spec.storage.prefix", "climbs out"],
      [{ prefix: "runs/./x" }, "spec.storage.prefix", ". segment"],
      [{ prefix: "/abs" }, "spec.storage.prefix", "starts with /"],
      [{ prefix: "team/namespaces" }, "spec.storage.prefix", "reserved"],
      [{ localDir: "../elsewhere" }, "spec.storage.localDir", "climbs out"],
      [{ localDir: "/etc" }, "spec.storage.localDir", "is absolute"],
    ] as const) {
      const result = validateQuestATraining(minimal({ storage: storage }));
      const issues = result.ok ? [] : result.issues;
      expect(
        issues.map((i) => i.path),
        JSON.stringify(storage),
      ).toEqual([path]);
      expect(issues[0]?.message).toContain(words);
    }
    for (const prefix of ["questa", "teams/ml/questa/", ""]) {
      expect(validateQuestATraining(minimal({ storage: { prefix } })).ok, prefix).toBe(true);
    }
    expect(validateQuestATraining(minimal({ storage: { localDir: "out/.questa" } })).ok).toBe(true);
  });

  it("a topic prefix must be the run's own; SASL plain needs TLS", () => {
    const withPrefix = (topicPrefix: string, namespace?: string) =>
      validateQuestATraining({
        ...minimal({ kafka: { topicPrefix } }),
        metadata: namespace === undefined ? { name: "run-1" } : { name: "run-1", namespace },
      });
    expect(withPrefix("questa.ml.run-1", "ml").ok).toBe(true);
    expect(withPrefix("questa.ml.run-1.v2", "ml").ok).toBe(true);
    const foreign = withPrefix("questa.other.victim", "ml");
    expect(foreign.ok ? [] : foreign.issues.map((i) => [i.path, i.message])).toEqual([
      [
        "spec.kafka.topicPrefix",
        '"questa.other.victim" is not this run\'s: topic prefixes must be questa.ml.run-1 or begin with questa.ml.run-1.',
      ],
    ]);
    // a prefix that merely starts with the run's prefix text is another run's (run-10's)
    expect(withPrefix("questa.ml.run-10", "ml").ok).toBe(false);
    expect(withPrefix("questa.ml.run-1").ok).toBe(false);
    const plain = validateQuestATraining(
      minimal({ kafka: { sasl: { mechanism: "plain", secretRef: { name: "user" } } } }),
    );
    expect(plain.ok ? [] : plain.issues.map((i) => i.path)).toEqual(["spec.kafka.sasl.mechanism"]);
    const plainTls = validateQuestATraining(
      minimal({
        kafka: {
          sasl: { mechanism: "plain", secretRef: { name: "user" } },
          tls: { secretRef: { name: "ca" }, clientCertificate: true },
        },
      }),
    );
    expect(plainTls.ok).toBe(true);
  });

  it("rejects a wrong kind or apiVersion with the fix", () => {
    const wrongKind = validateQuestATraining({ ...minimal(), kind: "Job" });
    expect(wrongKind.ok ? [] : wrongKind.issues[0]?.hint).toBe("set kind: QuestATraining");
    const wrongVersion = validateQuestATraining({ ...minimal(), apiVersion: "questa.dev/v1" });
    expect(wrongVersion.ok ? [] : wrongVersion.issues[0]?.path).toBe("apiVersion");
  });

  it("reports YAML syntax errors and validates every document of a file", () => {
    const results = validateYaml("a: [1, 2\n---\nkind: QuestATraining\n");
    expect(results.length).toBeGreaterThanOrEqual(1);
    expect(results.every((r) => !r.result.ok)).toBe(true);
    const first = results[0]?.result;
    expect(first && !first.ok ? first.issues[0]?.path : undefined).toBe("(yaml)");
  });
});
