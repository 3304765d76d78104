import { describe, expect, it } from "vitest";
import { answersEqual } from "./equivalence.ts";

const equal: ReadonlyArray<readonly [string, string]> = [
  ["25", "025"],
  ["1000000", "1,000,000"],
  ["1000000", "1{,}000{,}000"],
  ["0.5", "\\tfrac12"],
  ["\\frac{1}{2}", "1/2"],
  ["\\frac{7}{2}", "3\\frac{1}{2}"],
  ["2\\sqrt2", "\\sqrt8"],
  ["\\frac{\\pi}{2}", "\\pi/2"],
  ["e^2", "e\\cdot e"],
  ["2^{10}", "1024"],
  ["1.5\\times10^{3}", "1500"],
  ["1500", "1.5e3"],
  ["50\\%", "0.5"],
  ["10\\%", "10"],
  ["30^\\circ", "30"],
  ["5\\text{ cm}^2", "5"],
  ["\\$5.00", "5"],
  ["\\left(1,2\\right)", "(1,2)"],
  ["5", "x=5"],
  ["x = 5", "5"],
  ["[1,3)", "[1,3)"],
  ["(-\\infty, 2]", "x \\le 2"],
  ["[1,2]", "x \\in [1,2]"],
  ["\\{1,2,3\\}", "\\{3,2,1\\}"],
  [
    "\\frac{-1+\\sqrt{17}}{2}, \\frac{-1-\\sqrt{17}}{2}",
    "\\frac{-1-\\sqrt{17}}{2}, \\frac{-1+\\sqrt{17}}{2}",
  ],
  ["\\pm 2", "2, -2"],
  ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"],
  ["y=2x+1", "y-2x-1=0"],
  ["x^2-1", "(x-1)(x+1)"],
  ["\\tan^2(y)+1", "\\sec^2(y)"],
  ["\\text{(B)}", "B"],
  ["D", "(D) 1,008,016"],
  ["yes", "\\text{Yes}"],
  ["\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}"],
  ["5!", "120"],
  ["\\binom{5}{2}", "10"],
  ["2.\\overline{3}", "\\frac{7}{3}"],
  ["\\frac{8}{3}", "2.6667"],
  ["\\frac{1}{12}", "0.0833333333333333"],
  ["\\frac{\\sqrt{3}}{3}", "\\frac{\\sqrt{3}}{3} \\approx 0.577"],
  ["-0", "0"],
  ["\\dfrac{3}{4}", "0.75"],
  ["\\log_2 8", "3"],
  ["\\sin\\left(\\frac{\\pi}{6}\\right)", "\\frac12"],
  ["\\sqrt[3]{27}", "3"],
  ["-5\\le x\\le1 \\text{ or } 3\\le x\\le9", "[-5,1]\\cup[3,9]"],
  ["\\$32,\\!348", "32348"],
  ["1\\,000", "1000"],
  ["\\left[ -\\frac{1}{2}, \\frac{1}{2} \\right)", "[-0.5, 0.5)"],
  ["\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}", "(-1, 2)"],
  ["(1,2)", "\\langle 1, 2\\rangle"],
  ["(-\\infty, \\infty)", "\\mathbb{R}"],
  // written as real responses write them (issue #13)
  ["12345678", "12,345,678"],
  ["2500", "2 500"],
  ["2500", "2\u2009500"],
  ["2500", "2\u202f500"],
  ["3.14", "3,14"],
  ["250.75", "250,75"],
  ["0.111", "0,111"],
  ["-1000.99", "-1000,99"],
  ["0.5", ".5"],
  ["5", "\\$5"],
  ["5", "5\u20ac"],
  ["5", "5 cm\u00b3"],
  ["5", "5 km"],
  ["5", "5\\textnormal{ km}"],
  ["28\\%", "28 percent"],
  ["28\\%", "28 pct"],
  ["\\frac{7}{2}", "3 \\frac{1}{2}"],
  ["x \\ge 5", "x >= 5"],
  ["x \\ne 3", "x != 3"],
  ["x < 3", "x \\lt 3"],
  ["x = 11", "x = 5+5+1 = 7 = 11"],
  ["z = 1 + 1 = 2", "z = 3+3 = 2"],
  ["x = 1/3", "x = 5+5+1 = 1/3 \\approx 11"],
  ["7:15 AM", "\\text{7:15 a.m.}"],
  ["7/3", "\\frac73"],
  ["Evelyn", "\\text{evelyn}"],
  ["14{,}916", "14 {, }916"],
  ["11111111100", "11,\\! 111,\\! 111,\\! 100"],
  // symbolic: sampled at exact rational points
  ["\\binom{n}{2}", "\\frac{n(n-1)}{2}"],
  ["\\cos^2 x-\\sin^2 x", "\\cos 2x"],
  ["\\sin 2x", "2\\sin x\\cos x"],
  ["\\frac{x+2}{7}", "\\frac{x}{7}+\\frac{2}{7}"],
  ["(a+b)^3", "a^3+3a^2b+3ab^2+b^3"],
  // sets of reals, compared by their members
  ["x < 1", "-x > -1"],
  ["x \\le 1", "-x \\ge -1"],
  ["1\\leq|z|\\leq \\frac{3}{2}", "z \\in [-\\frac{3}{2}, -1] \\cup [1, \\frac{3}{2}]"],
  ["(-\\infty, 1)", "-x > -1"],
  ["0<f(x)<1", "(0,1)"],
  // names, assignments and lists
  ["(p,q)=(3,2)", "(3,2)"],
  ["AB=4,CD=5", "4, 5"],
  ["|AB|=1", "1"],
  ["\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}", "\\frac{1}{\\sqrt{6}}"],
  ["p=5,q=2;p=7,q=2", "(5,2),(7,2)"],
  ["(11,7)or(7,11)", "(7,11), (11,7)"],
  ["21,16 \\text{ or } 11", "21,16,11"],
  ["{1,2,3}", "1, 2, 3"],
  ["(1,3)", "{1,3}"],
  ["-12;-11;-10", "\\{-12, -11, -10\\}"],
  ["W(n) = 1 \\text{ and } W(n) = -1", "W(x)=1orW(x)=-1"],
  ["(3, 17, 3, 7), (37, 3, 3, 13)", "(37,3,3,13), (3,17,3,7), (3,17,3,7)"],
  // matrices
  [
    "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
    "\\left[\\begin{array}{cc}1 & 2 \\\\ 3 & 4\\end{array}\\right]",
  ],
  [
    "\\begin{pmatrix}6 & 8 \\\\ 10 & 12\\end{pmatrix}",
    "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} + \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}",
  ],
  [
    "\\begin{pmatrix}19 & 22 \\\\ 43 & 50\\end{pmatrix}",
    "\\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix} \\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix}",
  ],
  ["12", "(B) 12"],
];

const different: ReadonlyArray<readonly [string, string]> = [
  ["2", "3"],
  ["999999999999999999", "999999999999999998"],
  ["[1,3)", "[1,3]"],
  ["(1,2)", "(2,1)"],
  ["(1,2)", "[1,2]"],
  ["\\sqrt{67},-\\sqrt{85}", "\\sqrt{67}"],
  ["\\frac{8}{3}", "2.7"],
  ["\\sqrt2", "1.414"],
  ["5", "5.001"],
  ["1.0001", "1"],
  ["33.3", "\\frac{100}{3}"],
  ["x+1", "t+1"],
  ["odd", "\\text{oddd}"],
  ["E", "\\mathrm{E}*2"],
  ["D", "(C) 1,008,016"],
  ["\\pi", "\\frac{355}{113}"],
  ["4", "2+2=5"],
  ["x^2+2x+1", "x^3+2x+1"],
  ["12:00", "1:00"],
  ["1.2", "1, 2"],
  ["-2,1", "-2.1"],
  ["1,000", "1"],
  ["x < 1", "x > -1"],
  ["x < 1", "x \\le 1"],
  ["x > 5", "x < 5"],
  ["7 = 11a+c", "11a+c"],
  ["a + 3z = 0", "0"],
  ["2x + z = 1", "1"],
  ["(1,3)", "{3,1}"],
  ["\\frac{1}{3}", "0.33"],
  ["\\binom{n}{2}", "\\frac{n(n+1)}{2}"],
  ["\\cos 2x", "\\cos^2 x + \\sin^2 x"],
  ["f(x)", "f(y)"],
  [
    "\\begin{pmatrix}19 & 22 \\\\ 43 & 50\\end{pmatrix}",
    "\\begin{pmatrix}5 & 6 \\\\ 7 & 8\\end{pmatrix} \\begin{pmatrix}1 & 2 \\\\ 3 & 4\\end{pmatrix}",
  ],
];

describe("answersEqual", () => {
  it.each(equal)("%s = %s", (gold, pred) => {
    expect(answersEqual(gold, pred)).toEqual({ equal: true, reason: "equal" });
  });

  it.each(different)("%s != %s", (gold, pred) => {
    expect(answersEqual(gold, pred).equal).toBe(false);
  });

  it("reports the empty answer as a parse error", () => {
    expect(answersEqual("3", "  ")).toMatchObject({ equal: false, reason: "parse_error" });
  });

  it("is bounded by answer size", () => {
    expect(answersEqual("1", "1".repeat(5000))).toMatchObject({ equal: false, reason: "parse_error" });
  });

  it("is bounded by a step budget", () => {
    const long = Array.from({ length: 400 }, (_, i) => `x^{${i}}`).join("+");
    expect(answersEqual(long, `${long}+1`, { maxSteps: 500 })).toMatchObject({
      equal: false,
      reason: "timeout",
    });
  });

  it("is bounded by a deadline from the injected clock", () => {
    let t = 0;
    const long = Array.from({ length: 400 }, (_, i) => `x^{${i}}`).join("+");
    const verdict = answersEqual(long, `${long}+1`, { timeoutMs: 10, now: () => (t += 5) });
    expect(verdict).toMatchObject({ equal: false, reason: "timeout" });
  });
});

/** seeded xorshift so every run tries the same inputs */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const TOKENS = [
  "1",
  "2",
  "0",
  "9",
  ".",
  ",",
  "x",
  "y",
  "e",
  "i",
  "+",
  "-",
  "*",
  "/",
  "^",
  "_",
  "!",
  "'",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  "\\{",
  "\\}",
  "|",
  "=",
  "<",
  "\\le",
  "\\frac",
  "\\sqrt",
  "\\pi",
  "\\infty",
  "\\cdot",
  "\\pm",
  "\\cup",
  "\\text{a}",
  "\\left(",
  "\\right)",
  "\\begin{pmatrix}",
  "&",
  "\\\\",
  "\\end{pmatrix}",
  "%",
  "$",
  "\\%",
  " ",
  "\\overline{3}",
  "\\binom",
  "\\sin",
  "\\log_",
  "\\boxed{",
  "or",
  "\\in",
  "10^{10^{10}}",
];

describe("answersEqual fuzz", () => {
  it("never throws and never calls a random string equal to a different number", () => {
    const next = rng(20260226);
    for (let n = 0; n < 3000; n++) {
      const len = 1 + Math.floor(next() * 14);
      let s = "";
      for (let k = 0; k < len; k++) s += TOKENS[Math.floor(next() * TOKENS.length)];
      const a = answersEqual(s, s);
      const b = answersEqual("123456789", s);
      expect(typeof a.equal).toBe("boolean");
      expect(b.equal && !s.includes("123456789")).toBe(false);
    }
  });

  it("never throws on input that reaches the symbolic library", () => {
    const next = rng(7);
    for (let n = 0; n < 150; n++) {
      let s = "\\sum_{k=1}^{3}";
      const len = 1 + Math.floor(next() * 8);
      for (let k = 0; k < len; k++) s += TOKENS[Math.floor(next() * TOKENS.length)];
      expect(typeof answersEqual("6", s).equal).toBe("boolean");
    }
  });
});

describe("answersEqual beyond the hand-written parser", () => {
  it.each([
    ["385", "\\sum_{k=1}^{10} k^2"],
    ["120", "\\prod_{i=1}^{5} i"],
    ["12", "\\operatorname{lcm}(4,6)"],
    ["6", "\\gcd(12, 18)"],
    ["2", "\\lfloor 2.5 \\rfloor"],
    ["4", "\\lceil \\frac{7}{2} \\rceil"],
  ])("%s = %s", (gold, pred) => {
    expect(answersEqual(gold, pred).equal).toBe(true);
  });

  it("bounds series length", () => {
    expect(answersEqual("1", "\\sum_{k=1}^{10^{9}} k")).toMatchObject({ equal: false, reason: "timeout" });
  });

  it("tells sqrt(x^2) from x by sampling both signs", () => {
    expect(answersEqual("x", "\\sqrt{x^2}").equal).toBe(false);
  });
});

describe("relations against bare values", () => {
  it.each([
    ["x^2", "f(x) = x^2", true],
    ["2", "\\sqrt{4} = 2", true],
    ["-1", "e^{i\\pi} = -1", true],
    ["0", "5x - 7y + 11z + 4 = 0", false],
    ["5x - 7y + 11z + 4 = 0", "0", false],
  ] as const)("%s vs %s -> %s", (gold, pred, expected) => {
    expect(answersEqual(gold, pred).equal).toBe(expected);
  });
});

describe("complex answers (i is the imaginary unit)", () => {
  it.each([
    ["-1", "i^2", true],
    ["-3+4i", "(1+2i)^2", true],
    ["\\frac{1-i}{2}", "\\frac{1}{1+i}", true],
    ["6-5i", "-5i+6", true],
    ["2i", "\\sqrt{-4}", true],
    ["6-5i", "6+5i", false],
    ["x+i", "x-i", false],
  ] as const)("%s vs %s -> %s", (gold, pred, expected) => {
    expect(answersEqual(gold, pred).equal).toBe(expected);
  });
});
