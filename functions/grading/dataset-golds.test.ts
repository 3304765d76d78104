import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { extractGold } from "./extract.ts";
import { gradeResponse } from "./reward.ts";

// the evaluation sets' gold answers, copied into test/fixtures/dataset-golds (SOURCE.md there)
const DATASETS = ["math500", "aime24", "aime25", "hmmt_feb_2025"] as const;
const RowSchema = z.object({
  id: z.union([z.string(), z.number()]),
  answer: z.union([z.string(), z.number()]),
  solution: z.string().optional(),
});
type Row = z.infer<typeof RowSchema>;

function rows(name: string): Row[] {
  const url = new URL(`../../test/fixtures/dataset-golds/${name}.jsonl`, import.meta.url);
  return readFileSync(url, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => RowSchema.parse(JSON.parse(l)));
}

describe.each(DATASETS)("%s gold answers", (name) => {
  const data = rows(name);
  const answers = data.map((r) => String(r.answer));

  it("each grades correct against itself in a boxed response, in both modes", () => {
    expect(answers.length).toBeGreaterThanOrEqual(30);
    for (const mode of ["strict", "lenient"] as const) {
      const failing = answers.filter(
        (g) => !gradeResponse(g, `So the final answer is $\\boxed{${g}}$.`, { mode }).equal,
      );
      expect(failing, mode).toEqual([]);
    }
  });

  it("each is read as written when it is the gold", () => {
    expect(answers.filter((g) => extractGold(g).answer !== g.trim())).toEqual([]);
  });

  it("rejects a wrong integer for every integer gold", () => {
    const wrong = answers
      .filter((g) => /^\d+$/.test(g))
      .filter((g) => gradeResponse(g, `\\boxed{${BigInt(g) + 1n}}`, { mode: "lenient" }).equal);
    expect(wrong).toEqual([]);
  });

  it("grades each reference solution correct against its answer (a worked solution as the response)", () => {
    const failing = data
      .filter((r) => r.solution !== undefined)
      .filter((r) => !gradeResponse(String(r.answer), r.solution!, { mode: "strict" }).equal)
      .map((r) => r.id);
    expect(failing).toEqual([]);
  });
});
