/**
 * The repository's Python (scripts/reference: the parity-fixture makers; torch-learner: the PyTorch
 * learner) is linted and formatted by ruff, pinned in scripts/reference/requirements-lint.lock and
 * installed into a cached venv by scripts/install-reference-venv.sh --lint (PyPI, once per lock).
 * Each folder has its ruff settings in its pyproject.toml.
 */
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const folders = [join(root, "scripts", "reference"), join(root, "torch-learner")];

describe("Python reference scripts and the torch learner", () => {
  it.each(folders)(
    "%s passes ruff check and ruff format --check",
    (folder) => {
      const venv = execFileSync(join(root, "scripts", "install-reference-venv.sh"), ["--lint"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "inherit"],
      }).trim();
      const ruff = join(venv, "bin", "ruff");
      const run = (args: string[]) => {
        try {
          return {
            code: 0,
            output: execFileSync(ruff, args, { cwd: folder, encoding: "utf8", stdio: "pipe" }),
          };
        } catch (error) {
          const e = error as { status: number; stdout: string; stderr: string };
          return { code: e.status, output: `${e.stdout}${e.stderr}` };
        }
      };
      const check = run(["check", "--no-cache", "."]);
      expect(check.output, check.output).toContain("All checks passed");
      expect(check.code).toBe(0);
      const format = run(["format", "--check", "--no-cache", "."]);
      expect(format.code, format.output).toBe(0);
    },
    120_000,
  );
});
