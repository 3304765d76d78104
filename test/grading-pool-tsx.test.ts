import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

// vitest runs the pool in-process elsewhere; this proves the worker threads also start when the
// parent is a plain `node --import tsx` process, as the CLI and the function runtime are
describe("GraderPool under tsx", () => {
  it("grades in worker threads of a tsx process", { timeout: 60_000 }, async () => {
    const script = `
      import { GraderPool } from "./functions/grading/index.ts";
      const pool = new GraderPool({ size: 2 });
      const results = await Promise.all([pool.grade("025", "\\\\boxed{25}"), pool.grade("1/2", "The answer is 0.6")]);
      await pool.close();
      console.log(JSON.stringify(results.map((r) => [r.reward, r.reason])));
    `;
    const { stdout } = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      timeout: 50_000,
    });
    expect(JSON.parse(stdout.trim())).toEqual([
      [5, "correct"],
      [0, "mismatch"],
    ]);
  });
});
