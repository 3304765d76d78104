import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { defineFunction } from "./define-function.ts";
import { defineEvent } from "./event-definition.ts";
import { silentLogger } from "./logger.ts";
import { MemoryBus } from "./memory-bus.ts";
import { MemoryObjectStore } from "./memory-object-store.ts";
import { bindFunction } from "./runner.ts";
import { serveFunction } from "./serve.ts";

const Ping = defineEvent({
  type: "dev.questa.test.ping.v1",
  topic: "pings",
  data: z.object({}),
  description: "a ping",
});

describe("serveFunction", () => {
  it("serves health while running and exits 0 after draining on shutdown", async () => {
    const fn = defineFunction({ name: "pinger", consumes: [Ping], emits: [], handle: () => [] });
    const runner = bindFunction(fn, {
      bus: new MemoryBus(),
      store: new MemoryObjectStore(),
      run: "s",
      topicPrefix: "questa.s",
      logger: silentLogger(),
    });
    let shutdown!: () => void;
    let url!: string;
    const exit = serveFunction(runner, {
      shutdown: new Promise<void>((resolve) => (shutdown = resolve)),
      onListening: (u) => (url = u),
    });
    await vi.waitFor(() => expect(runner.ready()).toBe(true), { timeout: 10_000, interval: 1 });
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    shutdown();
    expect(await exit).toBe(0);
    expect(runner.ready()).toBe(false);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
  });
});
