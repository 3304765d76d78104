import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { expect } from "vitest";
import type { BusMessage } from "../functions/runtime/bus.ts";
import type { KafkaBus } from "../functions/runtime/kafka-bus.ts";

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
