import { describe, expect, it } from "vitest";
import { extractAnswer, extractBoxed, extractFinalAnswer, extractGold, mathSpans } from "./extract.ts";

describe("extractAnswer: marked answers (both modes)", () => {
  it.each([
    ["so the answer is \\boxed{42}.", "42"],
    ["\\boxed{1} first, then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"],
    ["nested \\boxed{\\frac{\\sqrt{3}}{2}} done", "\\frac{\\sqrt{3}}{2}"],
    ["\\fbox{hello}", "hello"],
    ["therefore $\\boxed 5$", "5"],
    ["so the remainder is \\boxed 25.", "25"],
    ["The answer is 4", "4"],
    ["The answer is $\\sqrt{16}$.", "$\\sqrt{16}$"],
    ["The answer is 3.5. Next we check.", "3.5"],
    ["Final Answer: The final answer is $42$. I hope it is correct.", "$42$"],
    ["Step 1\nFinal answer: 42", "42"],
    ["Answer: 2x + 3", "2x + 3"],
    ["<think>maybe \\boxed{3}</think> the result is \\boxed{4}", "4"],
    ["The final answer is **17**.", "17"],
    ["**Answer:** 42", "42"],
    ["**Final Answer**\n\n$5$", "$5$"],
    ["### Final Answer\nThe number of solutions is 5.", "5"],
    ["**Final Answer**\nThe integers are $-2$ and $1$.", "$-2$ and $1$"],
    ["Final Answer: The volume of $ABCDEFGH$ is 120. I hope it is correct.", "120"],
    ["The answer to the question is 7.", "7"],
    ["The answer is: \n\n$$\n42\n$$", "$$\n42\n$$"],
    ["She sells 9 eggs.\n#### 18", "18"],
    ["#### 939 Let me know if you have any questions!", "939"],
    ["the roots are $\\boxed{2}$ and $\\boxed{-3}$.", "2, -3"],
    ["\\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3"],
    ["$y_1 = \\boxed{2}$ and $y_2 = \\boxed{3}$", "2, 3"],
    ["$$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$$", "(3, 3), (1, 1)"],
    ["we first guessed \\boxed{1}, then found \\boxed{2}", "2"],
    [
      "The first part is \\boxed{200}. Final Answer: The final answer is $10,455$. I hope it is correct.",
      "$10,455$",
    ],
    ["So the answer is 2/3.<|im_end|>\n<|im_start|>user\nThe answer is 5.", "2/3"],
  ])("%j -> %j", (response, expected) => {
    expect(extractAnswer(response, { mode: "strict" })).toBe(expected);
    expect(extractAnswer(response, { mode: "lenient" })).toBe(expected);
  });

  it("prefers the boxed answer over an earlier marker", () => {
    expect(extractAnswer("The answer is 3, or rather \\boxed{4}")).toBe("4");
  });

  it("does not take a markdown heading or prose for a marker", () => {
    expect(extractAnswer("no final answer here", { mode: "strict" })).toBeNull();
    expect(extractAnswer("#### Step 2: add the terms\nthen 4 + 5 = 9", { mode: "strict" })).toBeNull();
  });

  it("ignores an unclosed last box and takes the previous balanced one", () => {
    expect(extractBoxed("\\boxed{1} and \\boxed{2")).toBe("1");
  });

  it("returns null for responses over the size bound", () => {
    expect(extractAnswer(`\\boxed{1}${" ".repeat(100)}`, 50)).toBeNull();
    expect(extractAnswer(`\\boxed{1}${" ".repeat(100)}`, { maxChars: 50, mode: "lenient" })).toBeNull();
  });

  it("reads an empty box as no answer in both modes", () => {
    expect(extractAnswer("so it is \\boxed{} then 5", { mode: "lenient" })).toBeNull();
  });
});

describe("extractAnswer: free-form answers (lenient only)", () => {
  it.each([
    // 3. a choice letter after Answer
    ["Comparing all five, only option C works.\n\nAnswer C", "C", "choice"],
    ["The correct option is (B).", "B", "choice"],
    // 4. the last math span (display, inline, multi-line)
    ["We conclude that $x = 7$.", "x = 7", "math"],
    ["so we get \\[\\frac{1}{2}\\]", "\\frac{1}{2}", "math"],
    ["Thus the total is $$\n12\n$$", "12", "math"],
    ["Answer \\[ \n 9 \n \\]", "9", "math"],
    ["The roots are $x = 1$ and $x = 2$.", "x = 1, x = 2", "math"],
    ["The probability is $\\frac{1}{6}$, about 16.7%.", "\\frac{1}{6}", "math"],
    ["The loss is $28$ percent.", "28\\%", "math"],
    // 5. a bare short answer that is the whole response
    ["-5", "-5", "bare"],
    ["1,000.99$", "1,000.99$", "bare"],
    ["28 percent", "28 percent", "bare"],
    ["Evelyn", "Evelyn", "bare"],
    ["AZYUK2A", "AZYUK2A", "bare"],
    ["$-5\\lex\\le1$or$3\\lex\\le9$", "$-5\\lex\\le1$or$3\\lex\\le9$", "bare"],
    ["42. I hope it is correct.", "42", "bare"],
    // 6. the last number of the last sentence that has one
    ["Therefore, the probability that Alice wins is 2/3. <|im_start|>user", "2/3", "last_number"],
    ["There are 12 such sequences. I hope it is correct.", "12", "last_number"],
    ["Soucis : 2,74 $ a..", "2,74", "last_number"],
    ["the number is not 10 which is 1,000.99\u20ac", "1,000.99", "last_number"],
    ["The total cost is 2 500 euros.", "2 500", "last_number"],
    ["So she makes $18 every day.", "18", "last_number"],
    ["They meet at \\text{7:15 a.m.}", "7:15 am", "last_number"],
    ["The candidates are $x_1$ and $x_2$; only 4 works.", "4", "last_number"],
  ])("%j -> %j (%s)", (response, expected, kind) => {
    expect(extractFinalAnswer(response, { mode: "lenient" })).toEqual({ answer: expected, kind });
    expect(extractAnswer(response, { mode: "strict" })).toBeNull();
  });

  it.each([
    [""],
    ["no answer here"],
    ["\\boxed{5"],
    ["There are six ways."],
    // inline math never breaks over lines; its number is not plain text either
    ["Answer $ \n 9 \n $"],
    ["Answer \\( \n 9 \n \\)"],
    // thinking that never closed holds working, not an answer
    ["<think>so far 2 + 3 = 5, and then"],
  ])("%j -> null", (response) => {
    expect(extractAnswer(response, { mode: "lenient" })).toBeNull();
  });

  it("defaults to strict, the reward's mode", () => {
    expect(extractAnswer("We conclude that $x = 7$.")).toBeNull();
  });
});

describe("extractGold", () => {
  it.each([
    ["025", "025"],
    ["\\frac{1}{2}", "\\frac{1}{2}"],
    ["$x \\in [-2,7]$", "$x \\in [-2,7]$"],
    ["\\begin{pmatrix}0&0\\\\0&1\\end{pmatrix}", "\\begin{pmatrix}0&0\\\\0&1\\end{pmatrix}"],
    ["\\text{Evelyn}", "\\text{Evelyn}"],
    ["$125$ miles", "$125$ miles"],
    ["\\boxed{1} papers and \\boxed{2} bins", "1, 2"],
    ["\\boxed{1} no no no no no \\boxed{2}", "2"],
    ["In order for $N$ to be divisible by 12, ... Therefore, $\\boxed{14{,}916}$ is our answer.", "14{,}916"],
    ["The stock lost value. Final Answer: The final answer is $28 \\%$. I hope it is correct.", "$28 \\%$"],
  ])("%j -> %j", (gold, expected) => {
    expect(extractGold(gold).answer).toBe(expected);
  });
});

describe("mathSpans", () => {
  it("finds every kind of span in order, with \\$ as a dollar sign", () => {
    const spans = mathSpans("a $x$ b $$y$$ c \\(z\\) d \\[w\\] e \\$5 f $v$");
    expect(spans.map((s) => s.content)).toEqual(["x", "y", "z", "w", "v"]);
  });

  it("marks inline math broken over lines", () => {
    expect(mathSpans("$ \n 9 \n $")[0]?.malformed).toBe(true);
    expect(mathSpans("$$ \n 9 \n $$")[0]?.malformed).toBeUndefined();
  });
});
