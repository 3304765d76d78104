import { describe, expect, it } from "vitest";
import { extractAnswer, extractBoxed } from "./extract.ts";

describe("extractAnswer", () => {
  it.each([
    ["so the answer is \\boxed{42}.", "42"],
    ["\\boxed{1} first, then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"],
    ["nested \\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}"],
    ["\\fbox{hello}", "hello"],
    ["therefore $\\boxed 5$", "5"],
    ["The answer is 4", "4"],
    ["The answer is $\\sqrt{16}$.", "$\\sqrt{16}$"],
    ["The answer is 3.5. Next we check.", "3.5"],
    ["Final Answer: The final answer is $42$. I hope it is correct.", "$42$"],
    ["Step 1\nFinal answer: 42", "42"],
    ["Answer: 2x + 3", "2x + 3"],
    ["We conclude that $x = 7$.", "x = 7"],
    ["so we get \\[\\frac{1}{2}\\]", "\\frac{1}{2}"],
    ["<think>maybe \\boxed{3}</think> the result is \\boxed{4}", "4"],
    ["The final answer is **17**.", "17"],
    ["**Answer:** 42", "42"],
    ["the roots are $\\boxed{2}$ and $\\boxed{-3}$.", "2, -3"],
    ["\\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3"],
    ["we first guessed \\boxed{1}, then found \\boxed{2}", "2"],
  ])("%j -> %j", (response, expected) => {
    expect(extractAnswer(response)).toBe(expected);
  });

  it.each([
    [""],
    ["no answer here"],
    ["\\boxed{5"],
    ["we have $x$ and then we stop"],
    ["$a$ is what we want to find, so we try again"],
  ])("%j -> null", (response) => {
    expect(extractAnswer(response)).toBeNull();
  });

  it("prefers the boxed answer over earlier markers", () => {
    expect(extractAnswer("The answer is 3, or rather \\boxed{4}")).toBe("4");
  });

  it("ignores an unclosed last box and takes the previous balanced one", () => {
    expect(extractBoxed("\\boxed{1} and \\boxed{2")).toBe("1");
  });

  it("returns null for responses over the size bound", () => {
    expect(extractAnswer(`\\boxed{1}${" ".repeat(100)}`, 50)).toBeNull();
  });
});
