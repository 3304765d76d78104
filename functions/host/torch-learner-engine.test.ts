import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { RetryableError } from "../runtime/errors.ts";
import { silentLogger } from "../runtime/logger.ts";
import { TorchLearnerStopped, TorchNode } from "./torch-learner-engine.ts";
import { writeStandInTorchrun } from "./torch-test-support.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function options(dir: string) {
  return {
    plan: { nodes: 1, processesPerNode: 2, rendezvous: "127.0.0.1:1", rendezvousId: "t", threads: 1 },
    workDir: join(dir, "work"),
    env: { PATH: process.env.PATH ?? "" },
    logger: silentLogger(),
  };
}

describe("TorchNode", () => {
  it("says why torchrun exited before the learner was ready", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-torch-node-"));
    dirs.push(dir);
    const python = join(dir, "python");
    writeFileSync(python, "#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n");
    chmodSync(python, 0o755);
    const started = TorchNode.start({ ...options(dir), python });
    await expect(started).rejects.toBeInstanceOf(TorchLearnerStopped);
    await expect(started).rejects.toThrow(
      "the torch learner did not start: torchrun exited (code 1) before the learner was ready; its last log lines:\n  ModuleNotFoundError: No module named torch",
    );
  });

  it("fails the requests in flight and reports the stop with torchrun's last log lines when it exits on its own", async () => {
    const dir = mkdtempSync(join(tmpdir(), "questa-torch-node-"));
    dirs.push(dir);
    const node = await TorchNode.start({ ...options(dir), python: writeStandInTorchrun(dir, "shutdown") });
    expect(node.isDriver).toBe(true);
    const lines =
      "its last log lines:\n  Traceback (most recent call last):\n  RuntimeError: rank 1 ran out of memory at shutdown";
    const request = node.request({ type: "shutdown" });
    await expect(request).rejects.toBeInstanceOf(RetryableError);
    await expect(request).rejects.toThrow(`torchrun exited (code 1); ${lines}`);
    const stopped = await node.unexpectedExit;
    expect(stopped).toBeInstanceOf(TorchLearnerStopped);
    expect(stopped.message).toBe(`the torch learner stopped: torchrun exited (code 1); ${lines}`);
    // later requests fail the same way, at once
    await expect(node.request({ type: "shutdown" })).rejects.toBe(node.failure);
    await node.close();
  });
});
