import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { ContaminationIndex, decontaminate, normalisedWords, wordNgrams } from "./decontamination.ts";
import type { MathRecord } from "./record.ts";

const evaluation = [
  {
    id: "aime25-1",
    problem:
      "Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of $97_b$, given that every base is written in decimal notation here.",
  },
];

function train(id: string, problem: string): MathRecord {
  return { id, source: "train", problem, answer: "1" };
}

describe("decontamination", () => {
  it("normalises case, markup, LaTeX commands and single-letter variables away", () => {
    expect(normalisedWords("Let $\\frac{x}{2}$ be THE Value, 3 times.")).toEqual([
      "let",
      "2",
      "be",
      "the",
      "value",
      "3",
      "times",
    ]);
    expect(wordNgrams("a b c", 13)).toEqual([]);
    expect(wordNgrams("one two three", 13)).toEqual(["one two three"]);
    expect(wordNgrams("w1 w2 w3 w4", 3)).toEqual(["w1 w2 w3", "w2 w3 w4"]);
  });

  it("drops copies, reformatted copies and embedded copies; keeps unrelated and boilerplate-sharing problems", () => {
    const index = new ContaminationIndex(evaluation);
    expect(index.size).toBe(13);
    expect(
      index.find("Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of 1000"),
    ).toBeUndefined();
    const result = decontaminate(
      [
        train("copy", evaluation[0]!.problem),
        train(
          "reformatted",
          `FIND the sum of all integer bases  b > 9 for which 17_{b} is a divisor of 97_{b}, given that every base is written in decimal notation here!`,
        ),
        train("embedded", `Warm-up first. ${evaluation[0]!.problem} Then explain.`),
        train("unrelated", "Compute the number of ordered pairs of positive integers whose product is 2025."),
        train(
          "boilerplate",
          // shares one of the evaluation problem's 13 13-grams
          "Find the sum of all integer bases $b>9$ for which $17_b$ is a divisor of 1000 in base ten, and nothing else.",
        ),
      ],
      index,
    );
    expect(result.dropped.map((hit) => hit.id)).toEqual(["copy", "reformatted", "embedded"]);
    expect(result.dropped[0]).toMatchObject({ evaluationId: "aime25-1", overlap: 1 });
    expect(result.counts).toEqual({ input: 5, kept: 2, dropped: 3, droppedBySource: { train: 3 } });
  });

  it("keeps everything when disabled, and rejects a bad n", () => {
    const index = new ContaminationIndex(evaluation);
    expect(
      decontaminate([train("copy", evaluation[0]!.problem)], index, { enabled: false }).counts.dropped,
    ).toBe(0);
    expect(() => new ContaminationIndex(evaluation, { ngram: 0 })).toThrow(InputError);
  });
});
