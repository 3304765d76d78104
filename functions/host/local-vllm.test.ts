import { describe, expect, it } from "vitest";
import { LocalVllm, LocalVllmFailed } from "./local-vllm.ts";
import type { ServerProcess } from "./server-process.ts";

/** a server process of our own making: it dies or is stopped when the test says so */
class FakeProcess implements ServerProcess {
  readonly name = "vLLM";
  readonly logFile: string;
  readonly exited: Promise<never>;
  stopped = false;
  #reject: (error: Error) => void = () => {};

  constructor(start: number) {
    this.logFile = `/run/vllm/server-${start}.log`;
    this.exited = new Promise<never>((_, reject) => {
      this.#reject = reject;
    });
    this.exited.catch(() => {});
  }

  die(code: number): void {
    this.#reject(new Error(`vLLM exited early (code ${code}); log: ${this.logFile}\n...`));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.#reject(new Error("vLLM stopped"));
  }
}

/** a clock that moves only when the code under test sleeps */
function harness(options: { healthyAfterMs?: number } = {}) {
  let now = 0;
  const processes: FakeProcess[] = [];
  const said: string[] = [];
  let startedAt = 0;
  const sleeps: number[] = [];
  return {
    processes,
    said,
    sleeps,
    options: {
      launch: (start: number) => {
        const process = new FakeProcess(start);
        processes.push(process);
        startedAt = now;
        return process;
      },
      healthy: async () => {
        const current = processes.at(-1);
        return (
          current !== undefined && !current.stopped && now - startedAt >= (options.healthyAfterMs ?? 1000)
        );
      },
      say: (text: string) => said.push(text),
      now: () => now,
      sleep: async (ms: number) => {
        sleeps.push(ms);
        now += ms;
        // let the other promise chains (the supervision) run
        await new Promise((resolve) => setImmediate(resolve));
      },
      progressEveryMs: 15_000,
      healthyRunMs: 60_000,
      maxRestarts: 2,
    },
    advance: async (ms: number) => {
      now += ms;
      for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

const settle = async () => {
  for (let i = 0; i < 200; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe("the local vLLM server", () => {
  it("is ready once /health answers, telling the user while it loads", async () => {
    const h = harness({ healthyAfterMs: 40_000 });
    const server = await LocalVllm.start(h.options);
    expect(server.stats).toEqual({ startSeconds: 40, restarts: 0 });
    expect(h.said).toEqual([
      "vLLM: still starting (15 s)",
      "vLLM: still starting (30 s)",
      "vLLM: the server is ready (40 s)",
    ]);
    await server.stop();
    expect(h.processes[0]?.stopped).toBe(true);
  });

  it("fails the start with the server's own words when it exits before answering", async () => {
    const h = harness({ healthyAfterMs: 1e12 });
    const starting = LocalVllm.start(h.options);
    await settle();
    h.processes[0]?.die(1);
    const error = await starting.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LocalVllmFailed);
    expect((error as Error).message).toMatch(
      /did not start: vLLM exited early \(code 1\); log: \/run\/vllm\/server-1.log/,
    );
  });

  it("stops a start that Ctrl-C interrupts", async () => {
    const h = harness({ healthyAfterMs: 1e12 });
    const abort = new AbortController();
    const starting = LocalVllm.start({ ...h.options, signal: abort.signal });
    await settle();
    abort.abort();
    await expect(starting).rejects.toThrow(/aborted/);
    expect(h.processes[0]?.stopped).toBe(true);
  });

  it("starts the server again when it dies mid-run, and stops the new one at the end", async () => {
    const h = harness();
    const server = await LocalVllm.start(h.options);
    h.processes[0]?.die(137);
    await settle();
    expect(h.processes).toHaveLength(2);
    expect(server.logFile).toBe("/run/vllm/server-2.log");
    expect(h.said).toContain(
      "vLLM: the server exited (vLLM exited early (code 137); log: /run/vllm/server-1.log); starting it again",
    );
    expect(h.said.at(-1)).toBe("vLLM: the server is back (start 2)");
    expect(server.stats.restarts).toBe(1);
    await server.stop();
    expect(h.processes[1]?.stopped).toBe(true);
    // a stopped server is not started again
    await settle();
    expect(h.processes).toHaveLength(2);
  });

  it("gives up on a server that keeps dying soon after its start, and fails the run", async () => {
    const h = harness();
    const server = await LocalVllm.start(h.options);
    for (let i = 0; i < 3; i++) {
      h.processes.at(-1)?.die(1);
      await settle();
    }
    const failure = await server.failed;
    expect(failure).toBeInstanceOf(LocalVllmFailed);
    expect(failure.message).toMatch(
      /keeps exiting .*gave up after 2 restart\(s\); log: \/run\/vllm\/server-3.log/,
    );
    expect(h.processes).toHaveLength(3);
    // the pauses grow as a crash-looping pod's do
    expect(h.sleeps.filter((ms) => ms >= 1000)).toEqual([1000, 2000]);
  });

  it("counts only quick deaths: a server that ran a while starts again however often it died before", async () => {
    const h = harness();
    const server = await LocalVllm.start(h.options);
    for (let i = 0; i < 4; i++) {
      await h.advance(120_000);
      h.processes.at(-1)?.die(1);
      await settle();
    }
    expect(h.processes).toHaveLength(5);
    expect(server.stats.restarts).toBe(4);
    await server.stop();
  });
});
