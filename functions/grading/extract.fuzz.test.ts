/**
 * Property test of extraction and grading with a seeded generator: known answers written in many
 * spellings (separators, decimal commas, fractions, percents, currency, radicals) are embedded in
 * random chatter under every wrapper a response uses (boxes, markers, math spans, bare, a plain
 * sentence), followed by trailing chatter and chat-template tokens. Properties:
 *   - lenient mode grades every response correct; strict mode exactly the marked ones
 *   - the same response with a wrong value is never graded correct, in either mode
 * Every failure the generator found is kept below as a fixed regression case (FINDINGS).
 */
import { describe, expect, it } from "vitest";
import type { GradingMode } from "../contracts/grading-mode.ts";
import { type Random, seededRandom } from "../runtime/random.ts";
import { gradeResponse } from "./reward.ts";

interface Value {
  gold: string;
  /** ways a response writes this value */
  spellings: string[];
  /** spellings that are plain numbers a sentence can end with (no LaTeX) */
  plain: string[];
  /** a different value, written plainly */
  wrong: string;
}

const pick = <T>(r: Random, xs: readonly T[]): T => xs[r.int(xs.length)]!;

function groupThousands(n: number, sep: string): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, sep);
}

function integerValue(r: Random): Value {
  const n = r.int(10) < 3 ? r.int(1000) : r.int(100_000_000);
  const neg = r.int(8) === 0 && n > 0;
  const sign = neg ? "-" : "";
  const plain = [`${sign}${n}`];
  if (n >= 1000) plain.push(`${sign}${groupThousands(n, ",")}`, `${sign}${groupThousands(n, " ")}`);
  const spellings = [...plain];
  if (n >= 1000) spellings.push(`${sign}${groupThousands(n, "{,}")}`, `${sign}${groupThousands(n, "\\,")}`);
  return { gold: `${sign}${n}`, spellings, plain, wrong: `${sign}${n + 1}` };
}

function decimalValue(r: Random): Value {
  const whole = r.int(1000);
  const places = 1 + r.int(2);
  const frac = String(1 + r.int(10 ** places - 1)).padStart(places, "0");
  if (frac.endsWith("0")) return integerValue(r);
  const gold = `${whole}.${frac}`;
  // a decimal comma is unambiguous with one or two places
  const plain = [gold, `${whole},${frac}`];
  if (whole === 0) plain.push(`.${frac}`);
  return { gold, spellings: plain, plain, wrong: `${whole + 1}.${frac}` };
}

function fractionValue(r: Random): Value {
  const b = 2 + r.int(40);
  let a = 1 + r.int(60);
  if (a % b === 0) a++;
  const gold = `\\frac{${a}}{${b}}`;
  const spellings = [gold, `\\dfrac{${a}}{${b}}`, `${a}/${b}`, `\\tfrac{${a}}{${b}}`];
  if (a < 10 && b < 10) spellings.push(`\\frac${a}${b}`);
  const plain = [`${a}/${b}`];
  return { gold, spellings, plain, wrong: `${a + b}/${b}` };
}

function percentValue(r: Random): Value {
  const p = 1 + r.int(99);
  return {
    gold: `${p}\\%`,
    spellings: [`${p}\\%`, `${p}%`, `${p} percent`],
    plain: [`${p}%`, `${p} percent`],
    wrong: `${p + 1}%`,
  };
}

function radicalValue(r: Random): Value {
  const k = 2 + r.int(9);
  const m = pick(r, [2, 3, 5, 6, 7]);
  return {
    gold: `${k}\\sqrt{${m}}`,
    spellings: [`${k}\\sqrt{${m}}`, `${k}\\sqrt ${m}`, `\\sqrt{${k * k * m}}`],
    plain: [],
    wrong: `${k + 1}\\sqrt{${m}}`,
  };
}

function moneyValue(r: Random): Value {
  const n = 1 + r.int(5000);
  return {
    gold: String(n),
    spellings: [`\\$${n}`, `${n} dollars`, `${n}\u00a0\u20ac`],
    plain: [`${n} dollars`],
    wrong: String(n + 3),
  };
}

function mixedValue(r: Random): Value {
  const whole = 1 + r.int(9);
  const den = pick(r, [2, 4, 5, 8]);
  const num = 1 + r.int(den - 1);
  const top = whole * den + num;
  const decimal = String(top / den);
  return {
    gold: `\\frac{${top}}{${den}}`,
    spellings: [
      `${whole}\\frac{${num}}{${den}}`,
      `${whole} \\frac{${num}}{${den}}`,
      `${top}/${den}`,
      decimal,
    ],
    plain: [decimal, `${top}/${den}`],
    wrong: `${top + 1}/${den}`,
  };
}

function tupleValue(r: Random): Value {
  const a = r.int(20) - 10;
  const b = a + 1 + r.int(9);
  return {
    gold: `(${a}, ${b})`,
    spellings: [`(${a},${b})`, `(${a}, ${b})`, `\\left(${a}, ${b}\\right)`, `(x, y) = (${a}, ${b})`],
    plain: [],
    wrong: `(${b}, ${a})`,
  };
}

function listValue(r: Random): Value {
  const a = r.int(20) - 10;
  const b = a + 1 + r.int(9);
  return {
    gold: `${a}, ${b}`,
    spellings: [
      `${b}, ${a}`,
      `\\{${a}, ${b}\\}`,
      `${a} \\text{ and } ${b}`,
      `x = ${b} \\text{ or } x = ${a}`,
    ],
    plain: [],
    wrong: `${a}, ${b + 1}`,
  };
}

function polynomialValue(r: Random): Value {
  const c = 1 + r.int(6);
  return {
    gold: `(x+${c})^2`,
    spellings: [`x^2+${2 * c}x+${c * c}`, `(${c}+x)^2`, `x^{2} + ${2 * c} x + ${c * c}`],
    plain: [],
    wrong: `x^2+${2 * c}x-${c * c}`,
  };
}

const VALUES = [
  integerValue,
  decimalValue,
  fractionValue,
  percentValue,
  radicalValue,
  moneyValue,
  mixedValue,
  tupleValue,
  listValue,
  polynomialValue,
];

const WORDS =
  "we consider the cases carefully then simplify each term and check the result again so that nothing is missed by the method".split(
    " ",
  );

/** chatter before the answer: words, numbers and inline math, never a marker or a box */
function chatter(r: Random): string {
  const sentences: string[] = [];
  for (let k = r.int(4); k > 0; k--) {
    const words: string[] = [];
    for (let w = 3 + r.int(8); w > 0; w--) {
      const roll = r.int(10);
      if (roll === 0) words.push(String(r.int(500)));
      else if (roll === 1) words.push(`$x_${r.int(9)} = ${r.int(50)}$`);
      else if (roll === 2) words.push(`$\\frac{${1 + r.int(9)}}{${2 + r.int(9)}}$`);
      else words.push(pick(r, WORDS));
    }
    sentences.push(`${words.join(" ")}.`);
  }
  return sentences.join(pick(r, [" ", "\n", "\n\n"]));
}

const TRAILING = ["", "", " I hope it is correct.", " Let me know if you have any questions!", "<|im_end|>"];
const STOP_JUNK = ["", "", "<|im_start|>user\nNow compute 12345 + 1.", "<|eot_id|> 999"];

interface Wrapped {
  text: string;
  marked: boolean;
}

/** one answer spelling under one wrapper; sentences end with a period, as in real responses */
function wrap(r: Random, spelling: string, plain: boolean): Wrapped {
  const marked: Array<() => string> = [
    () => `Therefore, $\\boxed{${spelling}}$.`,
    () => `\\boxed{${spelling}}`,
    () => `The answer is $${spelling}$.`,
    () => `Final Answer: The final answer is $${spelling}$.`,
    () => `**Final Answer:** $${spelling}$`,
    () => `**Final Answer**\n\n$$${spelling}$$`,
    () => `So the final answer is \\(${spelling}\\).`,
  ];
  const unmarked: Array<() => string> = [
    () => `Therefore we get $${spelling}$.`,
    () => `This gives \\[${spelling}\\]`,
    () => `Thus the total is $$\n${spelling}\n$$`,
  ];
  if (plain) {
    marked.push(
      () => `The answer is ${spelling}.`,
      () => `#### ${spelling}`,
    );
    unmarked.push(
      () => `So the total comes to ${spelling}.`,
      () => `So the total comes to **${spelling}**.`,
    );
  }
  const useMarked = r.int(2) === 0;
  return { text: pick(r, useMarked ? marked : unmarked)(), marked: useMarked };
}

interface Case {
  gold: string;
  response: string;
  wrongResponse: string;
  marked: boolean;
}

function generate(seed: string, count: number): Case[] {
  const r = seededRandom(seed);
  const out: Case[] = [];
  for (let i = 0; i < count; i++) {
    const value = pick(r, VALUES)(r);
    const usePlain = value.plain.length > 0 && r.int(3) === 0;
    const spelling = usePlain ? pick(r, value.plain) : pick(r, value.spellings);
    const prefix = chatter(r);
    const tail = `${pick(r, TRAILING)}${pick(r, STOP_JUNK)}`;
    const state = r.fork(String(i));
    const right = wrap(state, spelling, usePlain);
    const wrong = wrap(r.fork(String(i)), value.wrong, usePlain);
    const join = prefix === "" ? "" : pick(r, [" ", "\n\n"]);
    out.push({
      gold: value.gold,
      response: `${prefix}${join}${right.text}${tail}`,
      wrongResponse: `${prefix}${join}${wrong.text}${tail}`,
      marked: right.marked,
    });
  }
  return out;
}

function verdicts(c: Case, mode: GradingMode) {
  return {
    right: gradeResponse(c.gold, c.response, { mode }),
    wrong: gradeResponse(c.gold, c.wrongResponse, { mode }),
  };
}

/** what the generator found, each fixed and kept: [gold, response, lenient verdict, strict verdict] */
const FINDINGS: ReadonlyArray<readonly [string, string, boolean, boolean]> = [
  // a decimal comma inside display math after a marker was read as the list 648, 47
  ["648.47", "**Final Answer**\n\n$$648,47$$ I hope it is correct.", true, true],
  ["875.99", "So the final answer is \\(875,99\\).<|eot_id|> 999", true, true],
  ["876.99", "So the final answer is \\(875,99\\).", false, false],
  // "####" after a sentence on the same line was not a marker
  ["30540649", "so 242 we. #### 30,540,649 Let me know if you have any questions!", true, true],
  ["91\\%", "$\\frac{7}{4}$ by that. #### 91%", true, true],
  ["638.4", "cases $x_4 = 13$ result. #### 638.4", true, true],
  // chatter run on after the answer without a period
  [
    "939",
    "#### 939 Let me know if you have any questions!<|im_start|>user\nNow compute 12345 + 1.",
    true,
    true,
  ],
  ["\\frac{24}{33}", "#### 24/33 I hope it is correct.", true, true],
  ["55849089", "$x_4 = 5$ is the. #### 55 849 089 I hope it is correct.", true, true],
  ["40\\%", "we and the. #### 40 percent I hope it is correct.", true, true],
  ["30540649", "so 242 we. #### 30540650 Let me know if you have any questions!", false, false],
];

describe("extraction property (seeded)", () => {
  for (const seed of ["questa-13-a", "questa-13-b", "questa-13-c"]) {
    it(`lenient reads every spelling, strict exactly the marked ones, wrong values never pass (${seed})`, () => {
      const failures: string[] = [];
      for (const c of generate(seed, 700)) {
        const lenient = verdicts(c, "lenient");
        const strict = verdicts(c, "strict");
        if (!lenient.right.equal)
          failures.push(`lenient missed ${JSON.stringify(c)} -> ${lenient.right.extracted}`);
        if (strict.right.equal !== c.marked)
          failures.push(`strict ${c.marked ? "missed" : "read unmarked"} ${JSON.stringify(c)}`);
        if (lenient.wrong.equal || strict.wrong.equal)
          failures.push(`wrong value passed ${JSON.stringify(c)}`);
      }
      expect(failures.slice(0, 5)).toEqual([]);
    });
  }

  it.each(FINDINGS)("finding %j", (gold, response, lenient, strict) => {
    expect(gradeResponse(gold, response, { mode: "lenient" }).equal).toBe(lenient);
    expect(gradeResponse(gold, response, { mode: "strict" }).equal).toBe(strict);
  });
});
