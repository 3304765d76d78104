import {
  add,
  applyFloat,
  binomial,
  div,
  factorial,
  fromDecimalLiteral,
  makeRational,
  mul,
  NAN,
  type Num,
  neg,
  pow,
  root,
  sub,
} from "./numeric.ts";

/** a parsed math expression (LaTeX subset plus plain-text math); relations live one level up */
export type Expr =
  | { t: "num"; text: string; repeat?: string }
  | { t: "sym"; name: string }
  | { t: "const"; name: "pi" | "e" | "inf" }
  | { t: "bin"; op: "+" | "-" | "*" | "/" | "^"; a: Expr; b: Expr }
  | { t: "neg"; a: Expr }
  | { t: "fn"; name: string; args: Expr[] };

export class ParseError extends Error {
  override readonly name = "ParseError";
}

/** an evaluation ran past its step budget or deadline */
export class BudgetError extends Error {
  override readonly name = "BudgetError";
}

const MAX_DEPTH = 120;

const FUNCTIONS = new Set([
  "sin",
  "cos",
  "tan",
  "sec",
  "csc",
  "cot",
  "arcsin",
  "arccos",
  "arctan",
  "sinh",
  "cosh",
  "tanh",
  "ln",
  "log",
  "exp",
  "lg",
]);

/** plain-text words that name functions or constants, e.g. "sqrt(2)" or "pi/2" */
const PLAIN_WORDS = new Set([...FUNCTIONS, "sqrt", "pi", "abs"]);

const GREEK = new Set([
  "alpha",
  "beta",
  "gamma",
  "delta",
  "epsilon",
  "varepsilon",
  "zeta",
  "eta",
  "theta",
  "vartheta",
  "iota",
  "kappa",
  "lambda",
  "mu",
  "nu",
  "xi",
  "rho",
  "sigma",
  "tau",
  "upsilon",
  "phi",
  "varphi",
  "chi",
  "psi",
  "omega",
  "Gamma",
  "Delta",
  "Theta",
  "Lambda",
  "Xi",
  "Sigma",
  "Phi",
  "Psi",
  "Omega",
]);

/** commands that are binary operators or relations: they never start an implicit product */
const INFIX_COMMANDS = new Set(["cdot", "times", "div", "pm", "mp", "bmod", "mod"]);

const KNOWN_COMMANDS = new Set([
  ...FUNCTIONS,
  ...GREEK,
  ...INFIX_COMMANDS,
  "frac",
  "sqrt",
  "binom",
  "pi",
  "infty",
  "operatorname",
  "exp",
  "lfloor",
  "lceil",
  "max",
  "min",
  "gcd",
]);

/** relation commands that models glue to a following letter, e.g. "\lex" for "\le x" */
const GLUE_PREFIXES = ["leq", "geq", "neq", "le", "ge", "ne", "pi", "cdot", "times", "infty"];

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= "0" && c <= "9";
}

function isLetter(c: string | undefined): boolean {
  return c !== undefined && ((c >= "a" && c <= "z") || (c >= "A" && c <= "Z"));
}

/** recursive-descent parser over the string itself, so LaTeX shorthands (\frac12, \sqrt2) can take one char */
class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly s: string) {}

  parseAll(): Expr {
    const e = this.parseAdditive();
    this.skipSpace();
    if (this.i < this.s.length) {
      throw new ParseError(`unexpected '${this.s.slice(this.i, this.i + 12)}' at ${this.i}`);
    }
    return e;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new ParseError(`nesting deeper than ${MAX_DEPTH}`);
  }

  private skipSpace(): void {
    while (this.i < this.s.length && this.s.charCodeAt(this.i) <= 32) this.i++;
  }

  private peek(): string | undefined {
    this.skipSpace();
    return this.s[this.i];
  }

  /** the command name at the cursor (without consuming), or undefined */
  private peekCommand(): string | undefined {
    this.skipSpace();
    if (this.s[this.i] !== "\\") return undefined;
    let j = this.i + 1;
    while (isLetter(this.s[j])) j++;
    if (j === this.i + 1) return this.s[j] ?? "";
    return this.s.slice(this.i + 1, j);
  }

  private takeCommand(): string {
    const name = this.peekCommand() ?? "";
    this.i += 1 + Math.max(1, name.length);
    if (!KNOWN_COMMANDS.has(name)) {
      const prefix = GLUE_PREFIXES.find((p) => name.startsWith(p) && name.length > p.length);
      if (prefix) {
        // "\lex" is "\le x": read the prefix as the command, the rest as letters
        this.i -= name.length - prefix.length;
        return prefix;
      }
    }
    return name;
  }

  private expect(c: string): void {
    if (this.peek() !== c) throw new ParseError(`expected '${c}' at ${this.i}`);
    this.i++;
  }

  private parseAdditive(): Expr {
    this.enter();
    let left = this.parseTerm();
    for (;;) {
      const c = this.peek();
      if (c === "+" || c === "-") {
        this.i++;
        left = { t: "bin", op: c, a: left, b: this.parseTerm() };
        continue;
      }
      const cmd = this.peekCommand();
      if (cmd === "pm" || cmd === "mp") throw new ParseError("\\pm gives two values");
      break;
    }
    this.depth--;
    return left;
  }

  private startsOperand(prevWasNumber: boolean): boolean {
    const c = this.peek();
    if (c === undefined) return false;
    if (isDigit(c) || c === ".") return !prevWasNumber;
    if (isLetter(c) || c === "(" || c === "{") return true;
    if (c === "\\") {
      const cmd = this.peekCommand();
      return cmd !== undefined && isLetter(cmd[0]) && !INFIX_COMMANDS.has(cmd) && KNOWN_COMMANDS.has(cmd);
    }
    return false;
  }

  private parseTerm(): Expr {
    let left = this.parseUnary();
    for (;;) {
      const c = this.peek();
      if (c === "*" || c === "/") {
        this.i++;
        left = { t: "bin", op: c, a: left, b: this.parseUnary() };
        continue;
      }
      const cmd = this.peekCommand();
      if (cmd === "cdot" || cmd === "times" || cmd === "div") {
        this.takeCommand();
        left = { t: "bin", op: cmd === "div" ? "/" : "*", a: left, b: this.parseUnary() };
        continue;
      }
      if (cmd === "bmod" || cmd === "mod") {
        this.takeCommand();
        left = { t: "fn", name: "mod", args: [left, this.parseUnary()] };
        continue;
      }
      if (this.startsOperand(endsWithNumber(left))) {
        left = { t: "bin", op: "*", a: left, b: this.parsePower() };
        continue;
      }
      return left;
    }
  }

  private parseUnary(): Expr {
    const c = this.peek();
    if (c === "-") {
      this.i++;
      this.enter();
      const e: Expr = { t: "neg", a: this.parseUnary() };
      this.depth--;
      return e;
    }
    if (c === "+") {
      this.i++;
      return this.parseUnary();
    }
    return this.parsePower();
  }

  private parsePower(): Expr {
    const base = this.parsePostfix(this.parsePrimary());
    if (this.peek() === "^") {
      this.i++;
      this.enter();
      const exponent = this.parseScriptArgument();
      this.depth--;
      return { t: "bin", op: "^", a: base, b: exponent };
    }
    return base;
  }

  private parsePostfix(e: Expr): Expr {
    for (;;) {
      const c = this.s[this.i];
      if (c === "!") {
        this.i++;
        e = { t: "fn", name: "factorial", args: [e] };
      } else if (c === "'") {
        throw new ParseError("prime notation is not a value");
      } else {
        return e;
      }
    }
  }

  /** argument of ^ or _: a braced group, or one token ("x^2", "x^-1", "e^\pi") */
  private parseScriptArgument(): Expr {
    const c = this.peek();
    if (c === "{") return this.parseGroup();
    if (c === "-") {
      this.i++;
      return { t: "neg", a: this.parseScriptArgument() };
    }
    if (isDigit(c)) {
      this.i++;
      return { t: "num", text: c! };
    }
    return this.parsePostfix(this.parsePrimary());
  }

  /** a braced group, or (LaTeX shorthand) a single digit or letter: \frac12, \sqrt2 */
  private parseMacroArgument(): Expr {
    const c = this.peek();
    if (c === "{") return this.parseGroup();
    if (isDigit(c)) {
      this.i++;
      return { t: "num", text: c! };
    }
    if (isLetter(c)) {
      this.i++;
      return { t: "sym", name: c! };
    }
    return this.parsePrimary();
  }

  private parseGroup(): Expr {
    this.expect("{");
    const e = this.parseAdditive();
    this.expect("}");
    return e;
  }

  private parseNumber(): Expr {
    const start = this.i;
    while (isDigit(this.s[this.i])) this.i++;
    if (this.s[this.i] === "." && isDigit(this.s[this.i + 1])) {
      this.i++;
      while (isDigit(this.s[this.i])) this.i++;
    }
    const text = this.s.slice(start, this.i);
    if (text.length > 4000) throw new ParseError("number literal too long");
    // repeating decimal 2.\overline{3} (also 0.1\overline{6}, 3.\overline{142})
    const rep = /^\.?\s*\\overline\s*\{\s*(\d{1,50})\s*\}/.exec(this.s.slice(this.i, this.i + 80));
    if (rep && (text.includes(".") || this.s[this.i] === ".")) {
      this.i += rep[0].length;
      return { t: "num", text: text.includes(".") ? text : `${text}.`, repeat: rep[1]! };
    }
    return { t: "num", text };
  }

  private parsePrimary(): Expr {
    this.enter();
    const e = this.parsePrimaryInner();
    this.depth--;
    return e;
  }

  private parsePrimaryInner(): Expr {
    const c = this.peek();
    if (c === undefined) throw new ParseError("unexpected end");
    if (isDigit(c) || (c === "." && isDigit(this.s[this.i + 1]))) return this.parseMixedNumber();
    if (c === "(" || c === "[") {
      this.i++;
      const e = this.parseAdditive();
      this.expect(c === "(" ? ")" : "]");
      return e;
    }
    if (c === "{") return this.parseGroup();
    if (c === "|") {
      this.i++;
      const e = this.parseAdditive();
      this.expect("|");
      return { t: "fn", name: "abs", args: [e] };
    }
    if (isLetter(c)) return this.parseWord();
    if (c !== "\\") throw new ParseError(`unexpected '${c}' at ${this.i}`);
    const cmd = this.takeCommand();
    switch (cmd) {
      case "frac": {
        const a = this.parseMacroArgument();
        const b = this.parseMacroArgument();
        return { t: "bin", op: "/", a, b };
      }
      case "binom": {
        const a = this.parseMacroArgument();
        const b = this.parseMacroArgument();
        return { t: "fn", name: "binom", args: [a, b] };
      }
      case "sqrt": {
        if (this.peek() === "[") {
          this.i++;
          const index = this.parseAdditive();
          this.expect("]");
          return { t: "fn", name: "root", args: [this.parseMacroArgument(), index] };
        }
        return { t: "fn", name: "sqrt", args: [this.parseMacroArgument()] };
      }
      case "pi":
        return { t: "const", name: "pi" };
      case "infty":
        return { t: "const", name: "inf" };
      case "exp":
        return { t: "fn", name: "exp", args: [this.parseFunctionArgument()] };
      case "lfloor":
      case "lceil": {
        const e = this.parseAdditive();
        const close = this.peekCommand();
        if (close !== (cmd === "lfloor" ? "rfloor" : "rceil")) throw new ParseError(`unclosed \\${cmd}`);
        this.takeCommand();
        return { t: "fn", name: cmd === "lfloor" ? "floor" : "ceil", args: [e] };
      }
      case "max":
      case "min":
      case "gcd":
        return { t: "fn", name: cmd, args: this.parseArgumentList() };
      case "operatorname": {
        this.expect("{");
        const start = this.i;
        while (isLetter(this.s[this.i])) this.i++;
        const name = this.s.slice(start, this.i);
        this.expect("}");
        if (name === "lcm" || name === "gcd") return { t: "fn", name, args: this.parseArgumentList() };
        if (!FUNCTIONS.has(name)) throw new ParseError(`unknown operator ${name}`);
        return this.parseFunction(name);
      }
      default:
        if (FUNCTIONS.has(cmd)) return this.parseFunction(cmd);
        if (GREEK.has(cmd)) return { t: "sym", name: `\\${cmd}` };
        throw new ParseError(`unsupported command \\${cmd}`);
    }
  }

  /**
   * an integer followed by \frac{int}{int} is a mixed number: 918\frac{1}{2}; with a space between
   * ("3 \frac{1}{2}") only a proper fraction is (a space before an improper one is a product)
   */
  private parseMixedNumber(): Expr {
    const num = this.parseNumber();
    if (num.t !== "num" || num.text.includes(".")) return num;
    let at = this.i;
    while (this.s[at] === " ") at++;
    if (!this.s.startsWith("\\frac", at)) return num;
    const spaced = at > this.i;
    const save = this.i;
    this.i = at + 5;
    try {
      const a = this.parseMacroArgument();
      const b = this.parseMacroArgument();
      if (a.t === "num" && b.t === "num" && !a.text.includes(".") && !b.text.includes(".")) {
        if (!spaced || BigInt(a.text) < BigInt(b.text))
          return { t: "fn", name: "mixed", args: [num, { t: "bin", op: "/", a, b }] };
      }
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
    }
    this.i = save;
    return num;
  }

  /** plain letters: single-letter symbols, or a known word (sqrt, sin, pi); other words are text */
  private parseWord(): Expr {
    const start = this.i;
    while (isLetter(this.s[this.i])) this.i++;
    const word = this.s.slice(start, this.i);
    for (const known of PLAIN_WORDS) {
      if (word === known) {
        if (known === "pi") return { t: "const", name: "pi" };
        if (known === "sqrt") return { t: "fn", name: "sqrt", args: [this.parseFunctionArgument()] };
        return this.parseFunction(known);
      }
    }
    if (word.length >= 3) throw new ParseError(`text '${word}'`);
    this.i = start + 1;
    const name = word[0]!;
    if (this.s[this.i] === "_") {
      // subscripted symbol x_1, a_{n}
      this.i++;
      const sub = this.peek() === "{" ? this.readBalanced() : (this.s[this.i++] ?? "");
      return { t: "sym", name: `${name}_${sub}` };
    }
    if (name === "e") return { t: "const", name: "e" };
    return { t: "sym", name };
  }

  private readBalanced(): string {
    const start = this.i;
    let depth = 0;
    do {
      const c = this.s[this.i++];
      if (c === undefined) throw new ParseError("unbalanced braces");
      if (c === "{") depth++;
      else if (c === "}") depth--;
    } while (depth > 0);
    return this.s.slice(start + 1, this.i - 1);
  }

  /** sin x, sin(x), sin^2 x, log_2 8, log_{2}(8) */
  private parseFunction(name: string): Expr {
    let base: Expr | undefined;
    if ((name === "log" || name === "lg") && this.peek() === "_") {
      this.i++;
      base = this.parseScriptArgument();
    }
    let exponent: Expr | undefined;
    if (this.peek() === "^") {
      this.i++;
      exponent = this.parseScriptArgument();
    }
    const arg = this.parseFunctionArgument();
    let fn: Expr = base ? { t: "fn", name: "log", args: [arg, base] } : { t: "fn", name, args: [arg] };
    if (exponent) {
      const inverse = exponent.t === "neg" && exponent.a.t === "num" && exponent.a.text === "1";
      fn =
        inverse && !base
          ? { t: "fn", name: `arc${name}`, args: [arg] }
          : { t: "bin", op: "^", a: fn, b: exponent };
    }
    return fn;
  }

  /** "(a, b, ...)" after \\max, \\gcd and friends */
  private parseArgumentList(): Expr[] {
    this.expect("(");
    const args = [this.parseAdditive()];
    while (this.peek() === ",") {
      this.i++;
      args.push(this.parseAdditive());
      if (args.length > 64) throw new ParseError("too many arguments");
    }
    this.expect(")");
    return args;
  }

  /**
   * The argument of a function written without parentheses binds a product of plain factors:
   * "\sin 2x" is sin(2x), "\cos \pi x" cos(pi x); it stops at + and -, at another function
   * ("\sin x \cos x") and at a parenthesis.
   */
  private parseFunctionArgument(): Expr {
    const c = this.peek();
    if (c === "(") {
      this.i++;
      const e = this.parseAdditive();
      this.expect(")");
      return e;
    }
    let arg = this.parsePower();
    while (this.startsPlainFactor(endsWithNumber(arg)))
      arg = { t: "bin", op: "*", a: arg, b: this.parsePower() };
    return arg;
  }

  /** a digit, a single letter or a constant command (\pi, a Greek letter) that is no function */
  private startsPlainFactor(prevWasNumber: boolean): boolean {
    const c = this.peek();
    if (c === undefined) return false;
    if (isDigit(c)) return !prevWasNumber;
    if (isLetter(c)) {
      let j = this.i;
      while (isLetter(this.s[j])) j++;
      return !PLAIN_WORDS.has(this.s.slice(this.i, j)) || this.s.slice(this.i, j) === "pi";
    }
    if (c === "\\") {
      const cmd = this.peekCommand();
      return cmd !== undefined && (GREEK.has(cmd) || cmd === "pi");
    }
    return false;
  }
}

function endsWithNumber(e: Expr): boolean {
  if (e.t === "num") return true;
  if (e.t === "bin" && e.op === "*") return endsWithNumber(e.b);
  return false;
}

/** parses one expression; throws ParseError on anything outside the supported language */
export function parseExpression(text: string): Expr {
  return new Parser(text).parseAll();
}

export function collectSymbols(e: Expr, out: Set<string>): Set<string> {
  switch (e.t) {
    case "sym":
      out.add(e.name);
      break;
    case "bin":
      collectSymbols(e.a, out);
      collectSymbols(e.b, out);
      break;
    case "neg":
      collectSymbols(e.a, out);
      break;
    case "fn":
      if (e.name === "sum" || e.name === "product") {
        const [body, index, lo, hi] = e.args;
        const inner = body ? collectSymbols(body, new Set()) : new Set<string>();
        if (index?.t === "sym") inner.delete(index.name);
        for (const name of inner) out.add(name);
        if (lo) collectSymbols(lo, out);
        if (hi) collectSymbols(hi, out);
        break;
      }
      for (const a of e.args) collectSymbols(a, out);
      break;
    default:
      break;
  }
  return out;
}

export function hasDecimal(e: Expr): boolean {
  switch (e.t) {
    case "num":
      return e.text.includes(".");
    case "bin":
      return hasDecimal(e.a) || hasDecimal(e.b);
    case "neg":
    case "fn":
      return e.t === "neg" ? hasDecimal(e.a) : e.args.some(hasDecimal);
    default:
      return false;
  }
}

export interface EvalBudget {
  steps: number;
  deadline: number;
  now: () => number;
}

const FLOAT_FUNCTIONS: Record<string, (x: number) => number> = {
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  sec: (x) => 1 / Math.cos(x),
  csc: (x) => 1 / Math.sin(x),
  cot: (x) => 1 / Math.tan(x),
  arcsin: Math.asin,
  arccos: Math.acos,
  arctan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  ln: Math.log,
  log: Math.log,
  lg: Math.log10,
  exp: Math.exp,
};

function tick(budget: EvalBudget): void {
  budget.steps--;
  if ((budget.steps & 1023) === 0 && budget.now() > budget.deadline) throw new BudgetError("deadline passed");
  if (budget.steps < 0) throw new BudgetError("step budget spent");
}

/** evaluates with exact rationals where possible; symbols take values from `env` */
export function evaluate(e: Expr, env: ReadonlyMap<string, Num>, budget: EvalBudget): Num {
  tick(budget);
  switch (e.t) {
    case "num":
      return e.repeat === undefined ? fromDecimalLiteral(e.text) : repeatingDecimal(e.text, e.repeat);
    case "sym": {
      return env.get(e.name) ?? NAN;
    }
    case "const":
      if (e.name === "inf") return { v: Infinity, approx: false, infinite: true };
      return { v: e.name === "pi" ? Math.PI : Math.E, approx: false };
    case "neg":
      return neg(evaluate(e.a, env, budget));
    case "bin": {
      const a = evaluate(e.a, env, budget);
      const b = evaluate(e.b, env, budget);
      switch (e.op) {
        case "+":
          return add(a, b);
        case "-":
          return sub(a, b);
        case "*":
          return mul(a, b);
        case "/":
          return div(a, b);
        case "^":
          return pow(a, b);
      }
      throw new ParseError("unknown operator");
    }
    case "fn": {
      if (e.name === "sum" || e.name === "product") return evaluateSeries(e, env, budget);
      const args = e.args.map((a) => evaluate(a, env, budget));
      const [x, y] = args;
      if (!x) return NAN;
      switch (e.name) {
        case "sqrt":
          return root(x, 2);
        case "root":
          return y?.q && y.q[1] === 1n && y.q[0] > 1n && y.q[0] <= 64n
            ? root(x, Number(y.q[0]))
            : pow(x, div(ONE, y ?? NAN));
        case "abs":
          return x.v < 0 ? neg(x) : x;
        case "factorial":
          return factorial(x);
        case "binom":
          return binomial(x, y ?? NAN);
        case "mixed":
          return x.v < 0 ? sub(x, y ?? NAN) : add(x, y ?? NAN);
        case "mod":
          if (x.q && y?.q && x.q[1] === 1n && y.q[1] === 1n && y.q[0] !== 0n) {
            const m = ((x.q[0] % y.q[0]) + y.q[0]) % y.q[0];
            return makeRational(m, 1n);
          }
          return NAN;
        case "floor":
        case "ceil":
          return roundTo(x, e.name);
        case "max":
        case "min": {
          let best = x;
          for (const a of args) if (e.name === "max" ? a.v > best.v : a.v < best.v) best = a;
          return args.some((a) => Number.isNaN(a.v)) ? NAN : best;
        }
        case "gcd":
        case "lcm":
          return gcdLcm(args, e.name);
        case "log":
          if (y) return { v: Math.log(x.v) / Math.log(y.v), approx: x.approx || y.approx };
          return applyFloat(x, Math.log);
        default: {
          const f = FLOAT_FUNCTIONS[e.name];
          return f ? applyFloat(x, f) : NAN;
        }
      }
    }
  }
}

const ONE = makeRational(1n, 1n);

function roundTo(x: Num, mode: "floor" | "ceil"): Num {
  if (x.q) {
    const [n, d] = x.q;
    let f = n / d;
    if (n % d !== 0n && n < 0n === (mode === "floor")) f += mode === "floor" ? -1n : 1n;
    return makeRational(f, 1n, x.approx);
  }
  return { v: mode === "floor" ? Math.floor(x.v) : Math.ceil(x.v), approx: x.approx };
}

function gcdLcm(args: Num[], mode: "gcd" | "lcm"): Num {
  let acc: bigint | undefined;
  for (const a of args) {
    const [n, d] = a.q ?? [0n, 0n];
    if (d !== 1n) return NAN;
    const v = n < 0n ? -n : n;
    if (acc === undefined) {
      acc = v;
      continue;
    }
    let [x, y] = [acc, v];
    while (y !== 0n) [x, y] = [y, x % y];
    acc = mode === "gcd" ? x : x === 0n ? 0n : (acc / x) * v;
  }
  return acc === undefined ? NAN : makeRational(acc, 1n);
}

/** \\sum / \\prod over an integer range; each term spends budget, so huge ranges time out */
function evaluateSeries(
  e: Extract<Expr, { t: "fn" }>,
  env: ReadonlyMap<string, Num>,
  budget: EvalBudget,
): Num {
  const [body, index, loExpr, hiExpr] = e.args;
  if (!body || index?.t !== "sym" || !loExpr || !hiExpr) return NAN;
  const lo = evaluate(loExpr, env, budget);
  const hi = evaluate(hiExpr, env, budget);
  if (!lo.q || !hi.q || lo.q[1] !== 1n || hi.q[1] !== 1n) return NAN;
  if (hi.q[0] - lo.q[0] > 1_000_000n) throw new BudgetError("series too long");
  const scope = new Map(env);
  let acc = makeRational(e.name === "sum" ? 0n : 1n, 1n);
  for (let k = lo.q[0]; k <= hi.q[0]; k++) {
    scope.set(index.name, makeRational(k, 1n));
    const term = evaluate(body, scope, budget);
    acc = e.name === "sum" ? add(acc, term) : mul(acc, term);
  }
  return acc;
}

/** A.B with C repeating = (ABC - AB) / (10^|B| * (10^|C| - 1)), exact */
function repeatingDecimal(text: string, repeat: string): Num {
  const [whole = "0", frac = ""] = text.split(".");
  const ab = BigInt((whole || "0") + frac);
  const abc = BigInt((whole || "0") + frac + repeat);
  const d = 10n ** BigInt(frac.length) * (10n ** BigInt(repeat.length) - 1n);
  return makeRational(abc - ab, d);
}
