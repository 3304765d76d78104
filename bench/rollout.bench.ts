/**
 * Rollout benchmark: the rollout function's handler, through its real services (OnnxPolicySampler,
 * grader, staleness gate) bound to an in-memory bus and store, on a fixed set of questions (the
 * quickstart's synthetic hard problems with stage-0 hints, as hard-filter probes), in one process:
 *
 *   before:    one question at a time (a questions topic of one partition, as embedded runs had,
 *              and as pods consumed) and one engine call per question (sampler coalescing off):
 *              a decode batch of at most groupSize rows;
 *   after-pod: spec.kafka.partitions (8) consumed at once, as a single rollout pod now does, and
 *              the sampler's continuous batching: every question in flight decodes in one batch;
 *   after:     as after-pod with the partitions embedded runs now create (EMBEDDED_QUESTION_PARTITIONS).
 *
 * The policy is the quickstart's built-in model after a short warm start (so answers end at EOS at
 * varied lengths, as in a run). Every mode samples the same questions with the same seeds (the
 * response token counts agree). Prints a table and one JSON document.
 * Env: QUESTA_BENCH_QUESTIONS (default 256), QUESTA_BENCH_WARM_STEPS (default 150; 0 = random
 * weights, every response runs to maxNewTokens). Flags: --before or --after (both after modes).
 *
 * Then rollout tokens/s of questa's onnxruntime engine and of a vLLM server on the same tiny
 * Hugging Face model and prompts, and the ratio (bench/rollout-vllm.ts; BENCH_VLLM=0 skips it,
 * QUESTA_BENCH_ENGINE_QUESTIONS sets its groups, default 64).
 */
import { availableParallelism, cpus, loadavg } from "node:os";
import { join } from "node:path";
import {
  QuestionAugmented,
  type QuestionAugmentedData,
  RolloutGroupSchema,
} from "../functions/contracts/events.ts";
import { RunKeys } from "../functions/contracts/run-keys.ts";
import { EMBEDDED_QUESTION_PARTITIONS } from "../functions/host/embedded-run.ts";
import { readTrainingConfig } from "../functions/host/function-process.ts";
import { engineSettings, rolloutServices } from "../functions/host/function-services.ts";
import { OnnxPolicySampler } from "../functions/host/onnx-adapters.ts";
import { warmStart } from "../functions/host/warm-start.ts";
import { loadCheckpoint, saveCheckpoint } from "../functions/model/checkpoint.ts";
import { Augmenter } from "../functions/questa/augmentation.ts";
import { generateSyntheticProblems } from "../functions/questa/synthetic-task.ts";
import { rolloutFunction } from "../functions/rollout/handler.ts";
import { parseBinaryMessage, toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import { silentLogger } from "../functions/runtime/logger.ts";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { MemoryObjectStore } from "../functions/runtime/memory-object-store.ts";
import { bindFunction } from "../functions/runtime/runner.ts";
import { compareRolloutEngines } from "./rollout-vllm.ts";

const questionCount = Number(process.env.QUESTA_BENCH_QUESTIONS ?? 256);
const warmSteps = Number(process.env.QUESTA_BENCH_WARM_STEPS ?? 150);
const only = process.argv.includes("--before")
  ? "before"
  : process.argv.includes("--after")
    ? "after"
    : undefined;

const resource = await readTrainingConfig(
  join(import.meta.dirname, "..", "manifests", "examples", "quickstart.yaml"),
);
const spec = resource.spec;

interface Mode {
  readonly name: "before" | "after-pod" | "after";
  readonly partitions: number;
  readonly coalesce: boolean;
}
const modes: Mode[] = (
  [
    { name: "before", partitions: 1, coalesce: false },
    // a rollout pod consumes the partitions it owns at once: spec.kafka.partitions with one replica
    { name: "after-pod", partitions: spec.kafka.partitions, coalesce: true },
    // what embedded runs create now
    {
      name: "after",
      partitions: Math.max(spec.kafka.partitions, EMBEDDED_QUESTION_PARTITIONS),
      coalesce: true,
    },
  ] as const
).filter((m) => only === undefined || (only === "before") === (m.name === "before"));

// the policy, once: a short warm start of the quickstart's architecture
const store = new MemoryObjectStore();
const policyFolder = "bench/policy";
const warmStarted = performance.now();
await warmStart({
  spec: { ...spec, model: { ...spec.model, warmStart: { ...spec.model.warmStart, steps: warmSteps } } },
  store,
  folder: policyFolder,
  engine: engineSettings(spec),
});
const warmStartSeconds = (performance.now() - warmStarted) / 1000;
const policy = await loadCheckpoint(store, policyFolder);

// the questions: hard training problems with the first stage's hint, as the augment function makes them
const augmenter = new Augmenter({
  template: spec.augmentation.template,
  unit: "chars",
  minPrefixChars: spec.augmentation.minPrefixChars,
  ratio: spec.augmentation.curriculum[0]?.ratio ?? 0.5,
  requireAnswerInSolution: false,
});
const problems = generateSyntheticProblems({
  seed: 1,
  count: questionCount,
  split: "train",
  difficulty: "hard",
});
const questionsOf = (run: string): QuestionAugmentedData[] =>
  problems.map((record) => {
    const outcome = augmenter.augment(record);
    if (outcome.kind !== "augmented") throw new Error(`problem ${record.id} was not augmented`);
    const q = outcome.question;
    return {
      run,
      questionId: q.id,
      source: q.source,
      stage: 0,
      ratio: q.ratio,
      purpose: "probe",
      prompt: q.prompt,
      hinted: q.hinted,
      hintChars: q.hintChars,
      answer: q.answer,
      samples: spec.rollout.groupSize,
      epoch: 0,
    };
  });

interface ModeResult {
  mode: Mode["name"];
  partitions: number;
  coalesce: boolean;
  questions: number;
  samples: number;
  responseTokens: number;
  seconds: number;
  questionsPerSecond: number;
  sampledTokensPerSecond: number;
  meanDecodeBatch: number;
  peakDecodeBatch: number;
  decodeSteps: number;
  prefillRuns: number;
  /** wall time inside the decode and prefill graph runs (the rest: sampling, grading, storing, the bus) */
  decodeSeconds: number;
  prefillSeconds: number;
  passRate: number;
}

async function runMode(mode: Mode): Promise<ModeResult> {
  const run = `bench-${mode.name}`;
  const keys = new RunKeys(run);
  await saveCheckpoint(store, keys.checkpoint(0), {
    config: policy.config,
    params: policy.params,
    ...(policy.tokenizerJson === undefined ? {} : { tokenizerJson: policy.tokenizerJson }),
    step: 0,
  });
  const bus = new MemoryBus();
  await bus.ensureTopics([{ name: `${run}.${QuestionAugmented.topic}`, partitions: mode.partitions }]);
  const sampler = new OnnxPolicySampler(engineSettings(spec), { coalesce: mode.coalesce });
  const services = await rolloutServices({
    spec,
    store,
    keys,
    sampler,
    progress: { step: 0, stage: 0, finished: false, pendingCount: 0 },
  });
  // compile the prefill and decode graphs outside the timed part
  const warmPrompt = sampler.encodePrompt(questionsOf(run)[0]!.prompt);
  await sampler.sample(warmPrompt, spec.rollout.groupSize, { ...spec.rollout }, 1);
  const before = sampler.generationStats!;
  const runner = bindFunction(rolloutFunction, {
    bus,
    store,
    run,
    topicPrefix: run,
    logger: silentLogger(),
    seed: `${run}:0`,
    services,
  });
  await runner.start();
  try {
    const questions = questionsOf(run);
    const started = performance.now();
    await bus.publish(
      `${run}.${QuestionAugmented.topic}`,
      questions.map((data, i) =>
        toBinaryMessage({
          specversion: "1.0",
          // the same event ids in both modes: every question draws from the same seed
          id: `bench-question-${i}`,
          source: "/questa/bench/augment",
          type: QuestionAugmented.type,
          subject: run,
          time: new Date(0).toISOString(),
          datacontenttype: "application/json",
          partitionkey: `${data.questionId}:${data.stage}`,
          data,
        }),
      ),
    );
    const topic = `${run}.rollouts`;
    while (bus.messages(topic).length < questions.length) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seconds = (performance.now() - started) / 1000;
    const groups = bus.messages(topic).map((m) => {
      const parsed = parseBinaryMessage(m);
      if (!parsed.ok) throw parsed.error;
      return RolloutGroupSchema.parse(parsed.value.data);
    });
    const after = sampler.generationStats!;
    const responseTokens = groups.reduce((n, g) => n + g.responseTokens, 0);
    const samples = groups.reduce((n, g) => n + g.rewards.length, 0);
    const steps = after.decodeSteps - before.decodeSteps;
    return {
      mode: mode.name,
      partitions: mode.partitions,
      coalesce: mode.coalesce,
      questions: groups.length,
      samples,
      responseTokens,
      seconds: round(seconds, 2),
      questionsPerSecond: round(groups.length / seconds, 2),
      sampledTokensPerSecond: Math.round(responseTokens / seconds),
      meanDecodeBatch: round((after.decodedRows - before.decodedRows) / Math.max(1, steps), 1),
      peakDecodeBatch: after.peakRows,
      decodeSteps: steps,
      prefillRuns: after.prefillRuns - before.prefillRuns,
      decodeSeconds: round(after.decodeSeconds - before.decodeSeconds, 3),
      prefillSeconds: round(after.prefillSeconds - before.prefillSeconds, 3),
      passRate: round(groups.reduce((n, g) => n + g.passCount, 0) / Math.max(1, samples), 3),
    };
  } finally {
    await runner.stop();
    await bus.close();
    await sampler.dispose();
  }
}

function round(value: number, digits: number): number {
  return Math.round(value * 10 ** digits) / 10 ** digits;
}

const loadBefore = loadavg()[0]!;
const results: ModeResult[] = [];
for (const mode of modes) results.push(await runMode(mode));
const base = results.find((r) => r.mode === "before");

// the engines side by side on one Hugging Face model: onnxruntime here, vLLM's CPU build
const engines =
  process.env.BENCH_VLLM === "0"
    ? undefined
    : await compareRolloutEngines({
        prompts: questionsOf("bench-engines")
          .slice(0, Number(process.env.QUESTA_BENCH_ENGINE_QUESTIONS ?? 64))
          .map((q) => q.prompt),
        groupSize: spec.rollout.groupSize,
        // the tiny model's context is 256 positions
        maxNewTokens: Math.min(spec.rollout.maxNewTokens, 128),
        inFlight: EMBEDDED_QUESTION_PARTITIONS,
        threads: spec.model.threads,
      });

console.log(
  "mode       partitions  coalesce  questions  seconds  questions/s  sampled tok/s  mean batch  peak batch",
);
for (const r of results) {
  console.log(
    `${r.mode.padEnd(11)}${String(r.partitions).padStart(10)}  ${String(r.coalesce).padStart(8)}  ${String(r.questions).padStart(9)}  ${r.seconds.toFixed(2).padStart(7)}  ${r.questionsPerSecond.toFixed(2).padStart(11)}  ${String(r.sampledTokensPerSecond).padStart(13)}  ${r.meanDecodeBatch.toFixed(1).padStart(10)}  ${String(r.peakDecodeBatch).padStart(10)}`,
  );
}
const speedup = Object.fromEntries(
  results
    .filter((r) => base !== undefined && r !== base)
    .map((r) => [r.mode, round(r.sampledTokensPerSecond / base!.sampledTokensPerSecond, 2)]),
);
for (const [mode, factor] of Object.entries(speedup)) {
  console.log(`speed-up of ${mode} over before (sampled tokens/s): ${factor}x`);
}
if (engines) {
  console.log(
    `\nrollout engines on ${engines.model} (float32), ${engines.groups} groups of ${engines.groupSize}, ${engines.maxNewTokens} new tokens, ${engines.inFlight} in flight:`,
  );
  console.log("engine  responses  generated tokens  seconds  tokens/s");
  for (const r of engines.results) {
    console.log(
      `${r.engine.padEnd(6)}${String(r.responses).padStart(11)}${String(r.generatedTokens).padStart(18)}${r.seconds.toFixed(2).padStart(9)}${String(r.tokensPerSecond).padStart(10)}`,
    );
  }
  console.log(`vLLM over onnxruntime (tokens/s): ${engines.vllmOverOnnx}x`);
}
console.log(
  JSON.stringify(
    {
      bench: "rollout",
      questions: questionCount,
      groupSize: spec.rollout.groupSize,
      maxNewTokens: spec.rollout.maxNewTokens,
      warmStartSteps: warmSteps,
      warmStartSeconds: round(warmStartSeconds, 1),
      results,
      ...(base ? { speedup } : {}),
      ...(engines ? { engines } : {}),
      machine: {
        cpu: cpus()[0]?.model ?? "unknown",
        cores: availableParallelism(),
        node: process.version,
        loadAverage: { before: round(loadBefore, 2), after: round(loadavg()[0]!, 2) },
      },
    },
    null,
    2,
  ),
);
