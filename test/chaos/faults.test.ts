/**
 * Faults without loss, tried from outside: `questa run FILE --kafka --s3` (the four functions as
 * processes) against a Kafka broker and a MinIO of its own, with faults injected from a seeded
 * schedule: MinIO killed -9 and restarted on the same data after a while, the broker restarted,
 * function processes killed -9, and poison messages of every kind (not JSON, failing the schema,
 * an unknown type, random bytes just under the broker's 1 MB limit, text that JSON-escapes sixfold).
 * The run must end with exit code 0, every step once, no training input lost (the only dead
 * letters are the poison messages, each for its own fault), no group trained twice, and the CLI
 * printing human lines, never a client's JSON. The figures (faults, when they fired, how long the
 * pipeline took to make progress again, dead letters by reason) are printed as JSON.
 *
 * QUESTA_CHAOS_SEED picks another schedule (default 7).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { eventDefinition } from "../../functions/contracts/registry.ts";
import { createRng } from "../../functions/model/rng.ts";
import type { OutgoingMessage } from "../../functions/runtime/bus.ts";
import { parseBinaryMessage, toBinaryMessage } from "../../functions/runtime/cloudevents.ts";
import { DeadLetter, type DeadLetterRecord } from "../../functions/runtime/dead-letter.ts";
import { KafkaBus } from "../../functions/runtime/kafka-bus.ts";
import { S3ObjectStore } from "../../functions/runtime/s3-object-store.ts";
import { type RunningKafka, startKafka } from "../infra/kafka-server.ts";
import { type RunningS3, startS3 } from "../infra/s3-server.ts";
import { readTopics } from "../questa-cli.ts";
import { testTempDir } from "../temp-dir.ts";

const root = join(import.meta.dirname, "..", "..");
const SEED = Number(process.env.QUESTA_CHAOS_SEED ?? 7);
const TOTAL_STEPS = 12;
const PROMPTS_PER_STEP = 4;

const servers: { stop(): Promise<void> }[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const server of servers.reverse()) await server.stop().catch(() => {});
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const seconds = (ms: number) => Math.round(ms / 100) / 10;

type Fault =
  | { kind: "minio-kill"; downMs: number }
  | { kind: "broker-restart"; downMs: number }
  | { kind: "kill"; fn: "rollout" | "learn" | "augment" | "evaluate" }
  | { kind: "poison"; name: PoisonName };

type PoisonName = "not-json" | "schema-invalid" | "unknown-type" | "near-limit-random" | "escaping-text";

/** the reason each poison message must be dead-lettered for */
const POISON_REASON: Record<PoisonName, string> = {
  "not-json": "invalid-cloudevent",
  "schema-invalid": "invalid-data",
  "unknown-type": "unknown-type",
  "near-limit-random": "invalid-cloudevent",
  "escaping-text": "invalid-cloudevent",
};

const POISON: readonly PoisonName[] = [
  "not-json",
  "schema-invalid",
  "unknown-type",
  "near-limit-random",
  "escaping-text",
];

/** a poison message; `phase` makes each one's bytes (and sha256) its own */
function poisonMessage(name: PoisonName, phase: string, run: string): OutgoingMessage {
  const id = `chaos-${phase}-${name}`;
  const cloudEvent = (type: string, data: unknown) =>
    toBinaryMessage({
      specversion: "1.0",
      id,
      source: "/questa/chaos/injector",
      type,
      subject: run,
      time: "2026-12-06T00:00:00.000Z",
      datacontenttype: "application/json",
      partitionkey: id,
      data,
    });
  const headers = { ce_id: id };
  switch (name) {
    case "not-json":
      return { key: id, headers, value: new TextEncoder().encode(`{not json at all (${phase})`) };
    case "schema-invalid":
      return cloudEvent("dev.questa.question.augmented.v1", { run, questionId: 7, phase });
    case "unknown-type":
      return cloudEvent("dev.questa.bogus.v1", { hello: "world", phase });
    case "near-limit-random":
      // the broker takes records up to ~1 MB; this one fits with its batch overhead
      return { key: id, headers, value: new Uint8Array(randomBytes(1_000_000)) };
    case "escaping-text":
      // every control character becomes six bytes (\u0001) in a JSON record
      return { key: id, headers, value: new TextEncoder().encode(`${phase}${"\u0001".repeat(300_000)}`) };
  }
}

/** a shuffled schedule of faults, each with the step after which it fires */
function schedule(seed: number): { atStep: number; fault: Fault }[] {
  const rng = createRng(seed);
  const faults: Fault[] = [
    { kind: "minio-kill", downMs: 15_000 + Math.floor(rng.next() * 10_000) },
    { kind: "broker-restart", downMs: 5_000 + Math.floor(rng.next() * 5_000) },
    { kind: "kill", fn: "rollout" },
    { kind: "kill", fn: "learn" },
    ...POISON.map((name): Fault => ({ kind: "poison", name })),
  ];
  for (let i = faults.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [faults[i], faults[j]] = [faults[j]!, faults[i]!];
  }
  // spread over steps 1 .. TOTAL_STEPS - 3, so the run is still going when the last one fires
  return faults
    .map((fault) => ({ atStep: 1 + Math.floor(rng.next() * (TOTAL_STEPS - 3)), fault }))
    .sort((a, b) => a.atStep - b.atStep);
}

describe("faults without loss (processes mode, own Kafka and MinIO)", () => {
  it(`finishes every step once through MinIO and broker outages, kills and poison (seed ${SEED})`, async () => {
    const [kafka, s3] = (await Promise.all([
      startKafka({ restartable: true }),
      startS3({ restartable: true }),
    ])) as [RunningKafka, RunningS3];
    servers.push(kafka, s3);
    const dir = testTempDir("questa-chaos-");
    const resource = parse(readFileSync(join(root, "test", "fixtures", "tiny-run.yaml"), "utf8"));
    resource.metadata.name = "chaos";
    resource.spec.kafka = { partitions: 2 };
    resource.spec.learner.totalSteps = TOTAL_STEPS;
    resource.spec.learner.promptsPerStep = PROMPTS_PER_STEP;
    resource.spec.learner.checkpointInterval = 2;
    resource.spec.evaluation.interval = 4;
    writeFileSync(join(dir, "run.yaml"), stringify(resource));
    const bucket = `questa-chaos-${randomBytes(3).toString("hex")}`;
    const env = {
      QUESTA_CACHE_DIR: join(dir, "cache"),
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_REGION: s3.region,
    };
    const started = Date.now();
    const cli = spawn(
      process.execPath,
      [
        join(root, "bin", "questa.js"),
        "run",
        "run.yaml",
        "--kafka",
        kafka.brokers.join(","),
        "--s3",
        `${s3.endpoint}/${bucket}/runs`,
      ],
      { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    children.push(cli);
    let output = "";
    cli.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    cli.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolveExit) => cli.once("exit", (code) => resolveExit(code)));
    const latestStep = () =>
      Math.max(0, ...[...output.matchAll(/^step (\d+) stage/gm)].map((m) => Number(m[1])));
    const pidOf = (fn: string) => {
      const pids = [...output.matchAll(new RegExp(`started ${fn} \\(pid (\\d+)\\)`, "g"))].map((m) =>
        Number(m[1]),
      );
      return pids[pids.length - 1];
    };

    const injector = new KafkaBus(
      { brokers: kafka.brokers, clientId: "questa-chaos-injector" },
      { logLevel: "nothing", maxWaitTimeMs: 100 },
    );
    // poison by sha256 of its bytes: `early` ones sit before every question (so the rollout
    // function must reach them), `mid` ones arrive at scheduled steps (possibly behind questions
    // the run never needs: those must still be there, uncommitted, when it ends)
    const injected = new Map<string, { name: PoisonName; phase: "early" | "mid"; id: string }>();
    const inject = async (name: PoisonName, phase: "early" | "mid") => {
      const topics = await injector.admin.listTopics();
      const questions = topics.find((t) => t.endsWith(".questions"));
      if (!questions) throw new Error(`no questions topic among ${topics.join(", ")}`);
      const message = poisonMessage(name, phase, "chaos");
      injected.set(sha256(message.value), { name, phase, id: `chaos-${phase}-${name}` });
      await injector.publish(questions, [message]);
    };
    const figures: {
      fault: string;
      atStep: number;
      firedAfterS: number;
      tookS: number;
      progressAfterS?: number;
    }[] = [];
    try {
      // the CLI creates the run's topics before it starts the functions
      await expect
        .poll(async () => (await injector.admin.listTopics()).some((t) => t.endsWith(".questions")), {
          timeout: 120_000,
          interval: 100,
        })
        .toBe(true);
      for (const name of POISON) await inject(name, "early");
      for (const { atStep, fault } of schedule(SEED)) {
        await expect
          .poll(() => latestStep(), { timeout: 300_000, interval: 200, message: output })
          .toBeGreaterThanOrEqual(atStep);
        const stepAtFault = latestStep();
        const t0 = Date.now();
        let label: string;
        switch (fault.kind) {
          case "minio-kill":
            label = `MinIO kill -9, down ${seconds(fault.downMs)} s`;
            await s3.restart({ hard: true, downMs: fault.downMs });
            break;
          case "broker-restart":
            label = `Kafka broker restart, down ${seconds(fault.downMs)} s`;
            await kafka.restart({ downMs: fault.downMs });
            break;
          case "kill": {
            label = `kill -9 ${fault.fn}`;
            const pid = pidOf(fault.fn);
            if (pid === undefined) throw new Error(`no ${fault.fn} pid in\n${output}`);
            try {
              process.kill(pid, "SIGKILL");
            } catch (error) {
              // the run may have ended meanwhile (its processes are stopped then); anything else is a failure
              if (!output.includes(`finished ${TOTAL_STEPS} steps`) && !/finished: step/.test(output)) {
                throw new Error(`kill -9 ${fault.fn} (pid ${pid}) failed: ${String(error)}\n${output}`);
              }
              label = `kill -9 ${fault.fn}: not applied, the run had ended`;
            }
            break;
          }
          case "poison": {
            label = `poison ${fault.name}`;
            await inject(fault.name, "mid");
            break;
          }
        }
        const tookMs = Date.now() - t0;
        // recovery: the pipeline makes a step again (none may be left when the fault came late)
        let progressAfterS: number | undefined;
        if (stepAtFault < TOTAL_STEPS) {
          await expect
            .poll(() => latestStep(), { timeout: 300_000, interval: 200, message: output })
            .toBeGreaterThan(stepAtFault);
          progressAfterS = seconds(Date.now() - t0);
        }
        figures.push({
          fault: label,
          atStep: stepAtFault,
          firedAfterS: seconds(t0 - started),
          tookS: seconds(tookMs),
          // the pipeline's own recovery: from the server being back (or the kill) to the next step
          ...(progressAfterS === undefined
            ? {}
            : { progressAfterS, recoveryS: Math.round((progressAfterS - seconds(tookMs)) * 10) / 10 }),
        });
      }
      const code = await exited;
      expect(output, output).toContain(`finished ${TOTAL_STEPS} steps`);
      expect(code, output).toBe(0);
      // human lines only: no client's JSON on the terminal; the summary counts the dead letters
      expect(output).not.toMatch(/^\{"level"/m);
      expect(output).toMatch(
        /\d+ message\(s\) were dead-lettered \(.*invalid-cloudevent \d.*\); see the topic questa\.\S+\.dead-letter/,
      );

      // ---- Kafka: every step once; dead letters only for the poison, each for its own fault
      const topics = (await injector.admin.listTopics()).filter(
        (t) => t.startsWith("questa.") && !t.includes("cli-"),
      );
      const messages = await readTopics(injector, topics);
      const events = messages.map((m) => {
        const parsed = parseBinaryMessage(m);
        return parsed.ok ? parsed.value : undefined;
      });
      const steps = new Map<string, number>();
      for (const event of events) {
        if (event?.type !== "dev.questa.run.status.v1") continue;
        const data = event.data as { kind: string; step: number };
        if (data.kind === "step") steps.set(event.id, data.step);
      }
      expect([...steps.values()].sort((a, b) => a - b)).toEqual(
        Array.from({ length: TOTAL_STEPS }, (_, i) => i + 1),
      );
      const deadLetters = new Map<string, DeadLetterRecord>();
      for (const event of events) {
        if (event?.type === DeadLetter.type) deadLetters.set(event.id, event.data as DeadLetterRecord);
        // every event but the injected poison is one of the system's
        else if (event && !event.id.startsWith("chaos-"))
          expect(eventDefinition(event.type), event.type).toBeDefined();
      }
      const byPoison = [...deadLetters.values()].map((record) => ({
        poison: injected.get(record.message.value.sha256 ?? ""),
        reason: record.reason,
        record,
      }));
      // nothing but the poison was dead-lettered (no outage, kill or restart lost a message)
      expect(
        byPoison.filter((d) => d.poison === undefined).map((d) => [d.reason, d.record.error.message]),
      ).toEqual([]);
      // each poison message dead-lettered once, for its own fault
      for (const d of byPoison)
        expect([d.poison?.id, d.reason]).toEqual([d.poison?.id, POISON_REASON[d.poison!.name]]);
      expect(new Set(byPoison.map((d) => d.poison!.id)).size).toBe(byPoison.length);
      const early = byPoison.filter((d) => d.poison!.phase === "early").map((d) => d.poison!.name);
      expect(early.sort()).toEqual([...POISON].sort());
      // a mid-run poison message not dead-lettered was not reached: still there, uncommitted
      const questionsTopic = topics.find((t) => t.endsWith(".questions"))!;
      const rolloutGroup = `${questionsTopic.slice(0, -".questions".length)}.rollout`;
      const committed = await injector.admin.groupLag(rolloutGroup, [questionsTopic]);
      const reached = new Set(byPoison.map((d) => d.poison!.id));
      const unreached: string[] = [];
      for (const m of messages) {
        const id = m.headers.ce_id;
        if (m.topic !== questionsTopic || id === undefined || !id.startsWith("chaos-mid-") || reached.has(id))
          continue;
        const partition = committed.find((p) => p.partition === m.partition);
        expect(
          BigInt(partition?.committed ?? "-1") <= BigInt(m.offset),
          `${id} committed without a dead letter`,
        ).toBe(true);
        unreached.push(id);
      }
      // the near-limit value: a bounded record, the whole value in the object store
      const big = byPoison.find((d) => d.poison?.name === "near-limit-random")!.record;
      expect(big.message.value).toMatchObject({ size: 1_000_000, truncated: true });
      const store = new S3ObjectStore({
        bucket,
        prefix: "runs/",
        endpoint: s3.endpoint,
        region: s3.region,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      });
      try {
        // the record names the object by URI: s3://<bucket>/<the store's prefix and key>
        const storedUri = big.message.value.stored!.uri;
        expect(storedUri.startsWith(`s3://${bucket}/runs/`), storedUri).toBe(true);
        const whole = await store.get(storedUri.slice(`s3://${bucket}/runs/`.length));
        expect(injected.get(whole ? sha256(whole) : "")?.name).toBe("near-limit-random");

        // ---- S3: the learner finished, trained each step on distinct groups, nothing left pending
        const objects = await store.list("");
        const stateKey = objects.find((o) => o.key.endsWith("learner/state.json"))?.key;
        expect(stateKey).toBeDefined();
        const state = JSON.parse(new TextDecoder().decode(await store.get(stateKey!)));
        expect(state).toMatchObject({ step: TOTAL_STEPS, finished: true });
        const trained = (state.consumed as { keys: string[] }[]).flatMap((c) => c.keys);
        expect(new Set(trained).size).toBe(trained.length);
        expect(objects.filter((o) => o.key.includes("learner/pending/"))).toEqual([]);
      } finally {
        store.close();
      }

      const reasons: Record<string, number> = {};
      for (const d of byPoison) reasons[d.reason] = (reasons[d.reason] ?? 0) + 1;
      console.log(
        JSON.stringify(
          {
            chaos: { seed: SEED, steps: TOTAL_STEPS, wallS: seconds(Date.now() - started) },
            faults: figures,
            deadLettersByReason: reasons,
            midRunPoisonNotReachedBeforeTheEnd: unreached,
            restartsSeen: [...output.matchAll(/exited \((?:code|signal) [^)]*\); restarting/g)].length,
          },
          null,
          2,
        ),
      );
    } finally {
      await injector.close();
    }
  }, 900_000);
});
