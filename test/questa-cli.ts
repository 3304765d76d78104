import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { expect } from "vitest";
import { eventDefinition } from "../functions/contracts/registry.ts";
import type { BusMessage } from "../functions/runtime/bus.ts";
import { parseBinaryMessage } from "../functions/runtime/cloudevents.ts";
import type { CloudEvent } from "../functions/runtime/event-definition.ts";
import type { KafkaBus } from "../functions/runtime/kafka-bus.ts";
import { logicalTopics } from "../operator/resources/topics.ts";

const root = join(import.meta.dirname, "..");

/** runs `questa ARGS` in `cwd` as a user would (bin/questa.js), with its stdout and stderr together */
export function runQuesta(
  args: string[],
  options: { cwd: string; cacheDir: string },
): Promise<{ code: number | null; output: string }> {
  const child: ChildProcess = spawn(process.execPath, [join(root, "bin", "questa.js"), ...args], {
    cwd: options.cwd,
    env: { ...process.env, QUESTA_CACHE_DIR: options.cacheDir },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
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
