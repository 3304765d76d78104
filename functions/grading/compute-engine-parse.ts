import { ComputeEngine } from "@cortex-js/compute-engine";
import { type Expr, ParseError } from "./expression.ts";

/**
 * Slow-path LaTeX reader: @cortex-js/compute-engine parses what our hand-written parser does not
 * (\sum, \prod, \operatorname{lcm}, ...), without canonicalising or evaluating anything, and the
 * MathJSON it returns is converted into our expression tree so evaluation stays under our bounds.
 */

/** longest answer handed to compute-engine (its parser is recursive and slower than ours) */
export const MAX_COMPUTE_ENGINE_CHARS = 300;

let engine: ComputeEngine | undefined;

const FUNCTION_HEADS: Record<string, string> = {
  Sin: "sin",
  Cos: "cos",
  Tan: "tan",
  Sec: "sec",
  Csc: "csc",
  Cot: "cot",
  Arcsin: "arcsin",
  Arccos: "arccos",
  Arctan: "arctan",
  Sinh: "sinh",
  Cosh: "cosh",
  Tanh: "tanh",
  Ln: "ln",
  Exp: "exp",
  Abs: "abs",
  Floor: "floor",
  Ceil: "ceil",
  Factorial: "factorial",
  Binomial: "binom",
  Max: "max",
  Min: "min",
  GCD: "gcd",
  LCM: "lcm",
  Mod: "mod",
  Sqrt: "sqrt",
};

type MathJson = number | string | { num: string } | MathJson[];

function toExpr(j: unknown, depth: number): Expr {
  if (depth > 100) throw new ParseError("expression nested too deeply");
  if (typeof j === "number") {
    if (!Number.isFinite(j)) throw new ParseError("non-finite number");
    const text = String(j);
    if (/e/i.test(text)) throw new ParseError("number outside literal range");
    return j < 0 ? { t: "neg", a: { t: "num", text: text.slice(1) } } : { t: "num", text };
  }
  if (typeof j === "object" && j !== null && !Array.isArray(j) && "num" in j && typeof j.num === "string") {
    const m = /^(-?)(\d+(?:\.\d+)?)$/.exec(j.num);
    if (!m) throw new ParseError(`number ${j.num}`);
    const num: Expr = { t: "num", text: m[2]! };
    return m[1] ? { t: "neg", a: num } : num;
  }
  if (typeof j === "string") {
    if (j === "Pi") return { t: "const", name: "pi" };
    if (j === "ExponentialE" || j === "e") return { t: "const", name: "e" };
    if (j === "PositiveInfinity") return { t: "const", name: "inf" };
    if (j === "NegativeInfinity") return { t: "neg", a: { t: "const", name: "inf" } };
    if (/^[a-zA-Z]$/.test(j)) return { t: "sym", name: j };
    throw new ParseError(`unsupported symbol ${j}`);
  }
  if (!Array.isArray(j) || typeof j[0] !== "string") throw new ParseError("unsupported MathJSON");
  const [head, ...rest] = j as [string, ...MathJson[]];
  const args = (): Expr[] => rest.map((a) => toExpr(a, depth + 1));
  const fold = (op: "+" | "*"): Expr => {
    const xs = args();
    if (xs.length === 0) throw new ParseError(`empty ${head}`);
    return xs.reduce((a, b) => ({ t: "bin", op, a, b }));
  };
  switch (head) {
    case "Add":
      return fold("+");
    case "Multiply":
    case "InvisibleOperator":
      return fold("*");
    case "Subtract": {
      const [a, b] = args();
      if (!a || !b) throw new ParseError("Subtract arity");
      return { t: "bin", op: "-", a, b };
    }
    case "Negate":
      return { t: "neg", a: toExpr(rest[0], depth + 1) };
    case "Divide":
    case "Rational": {
      const [a, b] = args();
      if (!a || !b) throw new ParseError(`${head} arity`);
      return { t: "bin", op: "/", a, b };
    }
    case "Power": {
      const [a, b] = args();
      if (!a || !b) throw new ParseError("Power arity");
      return { t: "bin", op: "^", a, b };
    }
    case "Square":
      return { t: "bin", op: "^", a: toExpr(rest[0], depth + 1), b: { t: "num", text: "2" } };
    case "Root":
      return { t: "fn", name: "root", args: args() };
    case "Log":
      return { t: "fn", name: "log", args: args() };
    case "Lb":
      return { t: "fn", name: "log", args: [toExpr(rest[0], depth + 1), { t: "num", text: "2" }] };
    case "Lg":
      return { t: "fn", name: "log", args: [toExpr(rest[0], depth + 1), { t: "num", text: "10" }] };
    case "Delimiter":
      if (rest.length === 1 || (rest.length === 2 && typeof rest[1] === "string"))
        return toExpr(rest[0], depth + 1);
      throw new ParseError("delimited sequence");
    case "Sum":
    case "Product": {
      // ["Sum", body, ["Tuple", index, lower, upper]]
      const [body, bounds] = rest;
      if (!Array.isArray(bounds) || bounds[0] !== "Tuple" || typeof bounds[1] !== "string") {
        throw new ParseError(`${head} without bounds`);
      }
      const index = toExpr(bounds[1], depth + 1);
      return {
        t: "fn",
        name: head === "Sum" ? "sum" : "product",
        args: [toExpr(body, depth + 1), index, toExpr(bounds[2], depth + 1), toExpr(bounds[3], depth + 1)],
      };
    }
    default: {
      const name = FUNCTION_HEADS[head];
      if (!name) throw new ParseError(`unsupported ${head}`);
      return { t: "fn", name, args: args() };
    }
  }
}

/** builds the engine ahead of the first check that needs it (its construction takes ~0.3 s) */
export function warmComputeEngine(): void {
  engine ??= new ComputeEngine();
  engine.parse("\\sum_{k=1}^{2} k", { canonical: false });
}

/** parses LaTeX with compute-engine into our tree; throws ParseError when it cannot */
export function parseWithComputeEngine(latex: string): Expr {
  if (latex.length > MAX_COMPUTE_ENGINE_CHARS) throw new ParseError("too long for the symbolic parser");
  engine ??= new ComputeEngine();
  let json: unknown;
  try {
    json = engine.parse(latex, { canonical: false }).json;
  } catch (e) {
    throw new ParseError(`compute-engine: ${e instanceof Error ? e.message : String(e)}`);
  }
  return toExpr(json, 0);
}
