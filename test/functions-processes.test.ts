import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { DeadLetter } from "../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../functions/runtime/s3-object-store.ts";
import { announcedSteps, readRunEvents, startQuesta } from "./questa-cli.ts";
import { testTempDir } from "./temp-dir.ts";

// `questa run FILE --kafka --s3`: the four functions as separate processes against the real Kafka
// and MinIO. Ctrl-C stops the run and its processes; the same command resumes it. The learn process
// is then killed with SIGKILL mid-run; the supervisor starts it again and the run completes with
// every step exactly once, in Kafka and in S3.

const root = join(import.meta.dirname, "..");
const brokers = inject("kafkaBrokers");
const s3 = inject("s3");

describe("questa run --kafka --s3 (functions as processes)", () => {
  it("stops on Ctrl-C, resumes, and loses or repeats no step when learn is killed -9", async () => {
    const suffix = randomBytes(4).toString("hex");
    const dir = testTempDir("questa-processes-");
    const resource = parse(readFileSync(join(root, "test", "fixtures", "tiny-run.yaml"), "utf8"));
    // a topic prefix of the run's own (questa.<namespace>.<name>), unique to this test
    const topicPrefix = `questa.default.${resource.metadata.name}.procs-${suffix}`;
    resource.spec.kafka = { topicPrefix, partitions: 2 };
    // evaluations run on checkpoints: every 4 steps, checkpoints every 2
    resource.spec.learner.checkpointInterval = 2;
    resource.spec.evaluation.interval = 4;
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const bucket = `questa-procs-${suffix}`;
    const env = {
      QUESTA_CACHE_DIR: join(dir, "cache"),
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
      // a killed process's partitions move to its replacement after this long
      QUESTA_KAFKA_SESSION_TIMEOUT_MS: "6000",
    };
    const args = ["run", "run.yaml", "--kafka", brokers.join(","), "--s3", `${s3.endpoint}/${bucket}/runs`];
    const pids = (output: string, fn: string) =>
      [...output.matchAll(new RegExp(`started ${fn} \\(pid (\\d+)\\)`, "g"))].map((m) => Number(m[1]));
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };

    // Ctrl-C: the run stops, and so do its function processes
    const first = startQuesta(args, dir, env);
    await expect.poll(() => first.output(), { timeout: 120_000, interval: 200 }).toMatch(/step 2 stage/);
    first.child.kill("SIGINT");
    expect(await first.exited, first.output()).toBe(130);
    expect(first.output()).toMatch(/stopped at step \d; run the same command again to resume/);
    const firstPids = ["augment", "rollout", "learn", "evaluate"].flatMap((fn) => pids(first.output(), fn));
    expect(firstPids).toHaveLength(4);
    expect(firstPids.filter(alive)).toEqual([]);

    // the same command resumes; the learn process is killed mid-run and started again
    const second = startQuesta(args, dir, env);
    await expect.poll(() => second.output(), { timeout: 120_000, interval: 200 }).toMatch(/step 5 stage/);
    const [learnPid] = pids(second.output(), "learn");
    if (learnPid === undefined) throw new Error(second.output());
    process.kill(learnPid, "SIGKILL");
    const code = await second.exited;
    const output = second.output();
    expect(output, output).toContain(`learn (pid ${learnPid}) exited (signal SIGKILL); restarting`);
    expect(output, output).toContain("finished 8 steps");
    expect(output, output).toMatch(
      /tokens sampled; sampling [\d.]+K? tok\/s per rollout engine, training [\d.]+K? tok\/s/,
    );
    expect(code, output).toBe(0);
    expect(output).toMatch(/eval step 8 hard-eval: pass@1/);

    // every event on the run's topics is a valid CloudEvent of a known type
    const bus = new KafkaBus(
      { brokers, clientId: "questa-processes-test" },
      { logLevel: "error", maxWaitTimeMs: 100 },
    );
    const store = new S3ObjectStore({
      bucket,
      // the run's keys sit under its namespace: <prefix>/namespaces/<namespace>/<name>/
      prefix: "runs/namespaces/default/",
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    try {
      const events = await readRunEvents(bus, topicPrefix);
      expect(events.filter((e) => e.type === DeadLetter.type)).toEqual([]);
      // one step per step 1..8: an event published again (redelivery after the kill) has the same id and data
      expect(announcedSteps(events)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

      // S3: the checkpoints of the start, the interval, the stage end (3) and the end, each once; nothing pending
      const checkpoints = (await store.list("tiny-run/checkpoints/"))
        .filter((o) => o.key.endsWith("/manifest.json"))
        .map((o) => o.key);
      expect(checkpoints).toEqual(
        [0, 2, 3, 4, 6, 8].map(
          (s) => `tiny-run/checkpoints/step-${String(s).padStart(6, "0")}/manifest.json`,
        ),
      );
      expect(await store.list("tiny-run/learner/pending/")).toEqual([]);
      const state = JSON.parse(new TextDecoder().decode(await store.get("tiny-run/learner/state.json")));
      expect(state).toMatchObject({ step: 8, finished: true });
      // every step trained on distinct groups: none trained twice across the kill
      const trained = (state.consumed as { step: number; keys: string[] }[]).flatMap((c) => c.keys);
      expect(new Set(trained).size).toBe(trained.length);
      expect(state.consumed.map((c: { step: number }) => c.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      await bus.close();
      store.close();
    }
  }, 240_000);
});
