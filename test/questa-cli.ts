import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { expect, onTestFinished } from "vitest";
import { eventDefinition } from "../functions/contracts/registry.ts";
import type { BusMessage } from "../functions/runtime/bus.ts";
import { parseBinaryMessage } from "../functions/runtime/cloudevents.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import type { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { logicalTopics } from "../operator/resources/topics.ts";

const root = join(import.meta.dirname, "..");

export interface StartedQuesta {
  child: ChildProcess;
  /** stdout and stderr together, so far */
  output: () => string;
  /** the exit code (null when a signal ended it) */
  exited: Promise<number | null>;
}

/**
 * starts `questa ARGS` in `cwd` as a user would (bin/questa.js) with `env` over this process's;
 * killed when the test ends if it is still running
 */
export function startQuesta(args: string[], cwd: string, env: Record<string, string> = {}): StartedQuesta {
  const child = spawn(process.execPath, [join(root, "bin", "questa.js"), ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return { child, output: () => output, exited };
}

/** runs `questa ARGS` in `cwd` to its end, with its stdout and stderr together */
export async function runQuesta(
  args: string[],
  options: { cwd: string; cacheDir: string },
): Promise<{ code: number | null; output: string }> {
  const started = startQuesta(args, options.cwd, { QUESTA_CACHE_DIR: options.cacheDir });
  const code = await started.exited;
  return { code, output: started.output() };
}

/** every message of the topics, read from the beginning by a fresh consumer group */
export async function readTopics(bus: KafkaBus, topics: string[]): Promise<BusMessage[]> {
  const groupId = `reader-${randomBytes(4).toString("hex")}`;
  const expected = (await bus.admin.groupLag(groupId, topics)).reduce((n, p) => n + Number(p.high), 0);
  const messages: BusMessage[] = [];
  const reader = bus.consumer({ groupId, topics });
  await reader.run(async (message) => {
    messages.push(message);
  });
  await expect.poll(() => messages.length, { timeout: 60_000, interval: 100 }).toBe(expected);
  await reader.stop();
  return messages;
}

/** every event on a run's topics (dead letters included), each checked as a valid CloudEvent of a known type */
export async function readRunEvents(bus: KafkaBus, topicPrefix: string): Promise<CloudEvent<unknown>[]> {
  const messages = await readTopics(
    bus,
    [...logicalTopics(), "dead-letter"].map((t) => `${topicPrefix}.${t}`),
  );
  const events = messages.map((m) => {
    const parsed = parseBinaryMessage(m);
    if (!parsed.ok) throw parsed.error;
    return parsed.value;
  });
  for (const event of events) {
    const definition = eventDefinition(event.type);
    expect(definition, event.type).toBeDefined();
    expect(definition?.data.safeParse(event.data).success, `${event.type} ${event.id}`).toBe(true);
  }
  return events;
}

/**
 * The steps the run's step events announce, sorted; an event published again (a redelivery after
 * a kill) must carry the same id and the same data, so each step counts once.
 */
export function announcedSteps(
  events: readonly Pick<CloudEvent<unknown>, "type" | "id" | "data">[],
): number[] {
  const steps = new Map<string, unknown>();
  for (const event of events) {
    if (event.type !== "dev.questa.run.status.v1") continue;
    const data = event.data as { kind: string; step: number };
    if (data.kind !== "step") continue;
    const seen = steps.get(event.id);
    if (seen !== undefined) expect(event.data).toEqual(seen);
    steps.set(event.id, event.data);
  }
  return [...steps.values()].map((d) => (d as { step: number }).step).sort((a, b) => a - b);
}
