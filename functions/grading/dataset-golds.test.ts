import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { gradeResponse } from "./reward.ts";

// the evaluation sets' gold answers (../shared/datasets beside the checkout)
const DATASETS = ["math500", "aime24", "aime25", "hmmt_feb_2025"] as const;
const RowSchema = z.object({ answer: z.union([z.string(), z.number()]) });

function golds(name: string): string[] {
  const path = fileURLToPath(new URL(`../../../shared/datasets/${name}/test.jsonl`, import.meta.url));
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => String(RowSchema.parse(JSON.parse(l)).answer));
}

describe.each(DATASETS)("%s gold answers", (name) => {
  const answers = golds(name);

  it("each grades correct against itself in a boxed response", () => {
    expect(answers.length).toBeGreaterThanOrEqual(30);
    const failing = answers.filter((g) => !gradeResponse(g, `So the final answer is $\\boxed{${g}}$.`).equal);
    expect(failing).toEqual([]);
  });

  it("rejects a wrong integer for every integer gold", () => {
    const wrong = answers
      .filter((g) => /^\d+$/.test(g))
      .filter((g) => gradeResponse(g, `\\boxed{${BigInt(g) + 1n}}`).equal);
    expect(wrong).toEqual([]);
  });
});
