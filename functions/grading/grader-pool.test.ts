import { afterEach, describe, expect, it } from "vitest";
import { GraderPool } from "./grader-pool.ts";

const pools: GraderPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function pool(options: ConstructorParameters<typeof GraderPool>[0]): GraderPool {
  const p = new GraderPool(options);
  pools.push(p);
  return p;
}

describe("GraderPool", () => {
  it("grades in worker threads with the default scale of 5", async () => {
    const p = pool({ size: 2 });
    const results = await Promise.all([
      p.grade("4", "so the total is \\boxed{4}."),
      p.grade("\\frac{1}{2}", "The answer is 0.5"),
      p.grade("3", "no final answer here"),
      p.grade("7", "\\boxed{8}", 1),
    ]);
    expect(results.map((r) => [r.reward, r.reason])).toEqual([
      [5, "correct"],
      [5, "correct"],
      [0, "no_answer"],
      [0, "mismatch"],
    ]);
  });

  it("grades in the mode each check names, strict unless the pool says otherwise", async () => {
    const unmarked = "Adding the parts gives 12 + 13 = 25.";
    const strictPool = pool({ size: 1 });
    expect(await strictPool.grade("25", unmarked)).toMatchObject({ reason: "no_answer", mode: "strict" });
    expect(await strictPool.grade("25", unmarked, { mode: "lenient" })).toMatchObject({
      reward: 5,
      mode: "lenient",
      extractedBy: "last_number",
    });
    const lenientPool = pool({ size: 1, mode: "lenient" });
    expect(await lenientPool.grade("25", unmarked, 1)).toMatchObject({ reward: 1, mode: "lenient" });
  });

  it("times out a stuck check, replaces its worker and keeps grading", async () => {
    const p = pool({
      size: 1,
      checkTimeoutMs: 1000,
      workerUrl: new URL("./hanging-grader-worker.mjs", import.meta.url),
    });
    const [stuck, after] = await Promise.all([
      p.grade("__hang__", "\\boxed{1}"),
      p.grade("12", "\\boxed{012}"),
    ]);
    expect(stuck).toMatchObject({ reward: 0, equal: false, reason: "timeout", mode: "strict" });
    expect(after).toMatchObject({ reward: 5, equal: true, reason: "correct" });
  });

  it("rejects checks after close", async () => {
    const p = pool({ size: 1 });
    await p.close();
    await expect(p.grade("1", "\\boxed{1}")).rejects.toThrow(/closed/);
  });
});
