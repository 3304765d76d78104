import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

/**
 * vitest global setup of the `scale` project: the torch learner's Python venv (PyTorch 2.13,
 * transformers, jsonschema; scripts/reference/requirements-learner.lock), installed once into the
 * cache by `scripts/install-reference-venv.sh --kind learner` (a few minutes from PyPI), and handed
 * to the tests as `inject("torchLearnerPython")`. Fails with the reason, never skips.
 */

declare module "vitest" {
  export interface ProvidedContext {
    /** the python of the torch learner's venv (QUESTA_TORCH_PYTHON for the processes the tests start) */
    torchLearnerPython: string;
  }
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

export default function setup(project: TestProject): void {
  let venv: string;
  try {
    venv = execFileSync(join(repoRoot, "scripts", "install-reference-venv.sh"), ["--kind", "learner"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
  } catch (error) {
    throw new Error(
      `the torch learner's venv could not be installed (scripts/install-reference-venv.sh --kind learner): ${String(error)}`,
    );
  }
  const python = join(venv, "bin", "python");
  if (!existsSync(python))
    throw new Error(`scripts/install-reference-venv.sh printed ${venv}, which has no bin/python`);
  project.provide("torchLearnerPython", python);
}
