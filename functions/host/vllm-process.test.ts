import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { referenceVenvDir } from "./torch-process.ts";
import { resolveVllmPython } from "./vllm-process.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const lock = readFileSync(
  join(import.meta.dirname, "..", "..", "scripts", "reference", "requirements-vllm.lock"),
);

describe("the local vLLM server's Python", () => {
  it("is QUESTA_VLLM_PYTHON when set", () => {
    expect(resolveVllmPython({ QUESTA_VLLM_PYTHON: "/opt/vllm/bin/python" })).toBe("/opt/vllm/bin/python");
  });

  it("is the venv install-reference-venv.sh --kind vllm completed, keyed by the lock's hash", () => {
    const cache = mkdtempSync(join(tmpdir(), "questa-vllm-python-"));
    dirs.push(cache);
    const venv = referenceVenvDir(cache, "vllm", lock);
    expect(venv).toMatch(/\/venv-vllm-[0-9a-f]{12}$/);
    mkdirSync(venv, { recursive: true });
    // half installed: not used
    expect(() => resolveVllmPython({ QUESTA_CACHE_DIR: cache })).toThrow(InputError);
    writeFileSync(join(venv, ".complete"), "");
    expect(resolveVllmPython({ QUESTA_CACHE_DIR: cache })).toBe(join(venv, "bin", "python"));
  });

  it("names the command that installs it, and the other ways, when there is none", () => {
    const cache = mkdtempSync(join(tmpdir(), "questa-vllm-python-"));
    dirs.push(cache);
    const error = (() => {
      try {
        return resolveVllmPython({ QUESTA_CACHE_DIR: cache });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(InputError);
    const issue = (error as InputError).issues[0];
    expect(issue?.path).toBe("spec.rollout.engine");
    expect(issue?.hint).toContain("scripts/install-reference-venv.sh --kind vllm");
    expect(issue?.hint).toContain("QUESTA_VLLM_PYTHON");
    expect(issue?.hint).toContain("QUESTA_VLLM_ENDPOINTS");
  });
});
