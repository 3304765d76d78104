import { describe, expect, it } from "vitest";
import { repeatInBackground } from "./periodic-task.ts";

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("repeatInBackground", () => {
  it("never overlaps, says once that it fails and once that it works again, and stop() waits for the run in progress", async () => {
    const said: string[] = [];
    const logger = {
      info: (_: unknown, msg: string) => void said.push(`info ${msg}`),
      warn: (_: unknown, msg: string) => void said.push(`warn ${msg}`),
    } as unknown as Parameters<typeof repeatInBackground>[1]["logger"];
    let runs = 0;
    let inFlight = 0;
    let overlapped = false;
    let release: (() => void) | undefined;
    const task = async () => {
      runs++;
      inFlight++;
      overlapped ||= inFlight > 1;
      try {
        // runs 1-3 fail, run 4 works, run 5 waits to be released
        if (runs <= 3) throw new Error("store away");
        if (runs === 5) await new Promise<void>((resolve) => (release = resolve));
      } finally {
        inFlight--;
      }
    };
    const repeating = repeatInBackground(task, {
      intervalMs: 1,
      logger,
      failing: "failing",
      recovered: "back",
    });
    await until(() => release !== undefined);
    let stopped = false;
    const stopping = repeating.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    release?.();
    await stopping;
    expect({ runs, overlapped, said }).toEqual({
      runs: 5,
      overlapped: false,
      said: ["warn failing", "info back"],
    });
  });
});
