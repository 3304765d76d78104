import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { learnerVenvDir, resolveTorchPython, startTorchrun } from "./torch-process.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the torch learner's Python", () => {
  it("is QUESTA_TORCH_PYTHON when set", async () => {
    await expect(
      resolveTorchPython({ env: { QUESTA_TORCH_PYTHON: "/opt/py/bin/python" }, install: false }),
    ).resolves.toBe("/opt/py/bin/python");
  });

  it("lives where install-reference-venv.sh puts it: keyed by the lock file's hash", () => {
    expect(learnerVenvDir("/cache", new TextEncoder().encode("torch==2.13.0\n"))).toMatch(
      /^\/cache\/venv-learner-[0-9a-f]{12}$/,
    );
  });

  it("names the script that installs it when a process finds no venv", async () => {
    const cache = mkdtempSync(join(tmpdir(), "questa-torch-python-"));
    dirs.push(cache);
    const error = await resolveTorchPython({ env: { QUESTA_CACHE_DIR: cache }, install: false }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).message).toContain("scripts/install-reference-venv.sh --kind learner");
    expect((error as InputError).issues[0]?.path).toBe("spec.learner.engine");
  });
});

describe("a torchrun process", () => {
  it("has read what its workers wrote to stderr by the time it has exited", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "questa-torchrun-"));
    dirs.push(cwd);
    // torchrun exits while a worker it started still writes its traceback (same stderr)
    const script =
      "(sleep 0.3; echo 'Traceback: rank 1 failed' >&2) & echo 'torchrun: a worker failed' >&2; exit 1";
    const torchrun = startTorchrun({
      python: "sh",
      args: ["-c", script],
      env: { PATH: process.env.PATH ?? "" },
      cwd,
      onLine: () => {},
      onLog: () => {},
    });
    expect(await torchrun.exited).toEqual({ code: 1, signal: null });
    expect(torchrun.recentLog()).toEqual(["torchrun: a worker failed", "Traceback: rank 1 failed"]);
  });
});
