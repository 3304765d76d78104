import { BudgetError, type EvalBudget, type Expr } from "./expression.ts";

/** a complex double; answers like 3+4i, (1+2i)^2 and 1/(1+i) are compared as complex numbers */
export interface Complex {
  re: number;
  im: number;
}

const NAN_C: Complex = { re: Number.NaN, im: Number.NaN };

const cAdd = (a: Complex, b: Complex): Complex => ({ re: a.re + b.re, im: a.im + b.im });
const cSub = (a: Complex, b: Complex): Complex => ({ re: a.re - b.re, im: a.im - b.im });
const cMul = (a: Complex, b: Complex): Complex => ({
  re: a.re * b.re - a.im * b.im,
  im: a.re * b.im + a.im * b.re,
});

function cDiv(a: Complex, b: Complex): Complex {
  const d = b.re * b.re + b.im * b.im;
  if (d === 0) return NAN_C;
  return { re: (a.re * b.re + a.im * b.im) / d, im: (a.im * b.re - a.re * b.im) / d };
}

function cExp(a: Complex): Complex {
  const m = Math.exp(a.re);
  return { re: m * Math.cos(a.im), im: m * Math.sin(a.im) };
}

function cLog(a: Complex): Complex {
  // +0 imaginary part on the negative real axis: the principal branch, sqrt(-4) = 2i
  return { re: Math.log(Math.hypot(a.re, a.im)), im: Math.atan2(a.im === 0 ? 0 : a.im, a.re) };
}

function cPow(a: Complex, b: Complex): Complex {
  if (b.im === 0 && Number.isInteger(b.re) && Math.abs(b.re) <= 64) {
    // integer powers by repeated multiplication keep i^2 = -1 exact
    let acc: Complex = { re: 1, im: 0 };
    for (let k = 0; k < Math.abs(b.re); k++) acc = cMul(acc, a);
    return b.re < 0 ? cDiv({ re: 1, im: 0 }, acc) : acc;
  }
  if (a.im === 0 && a.re > 0 && b.im === 0) return { re: a.re ** b.re, im: 0 };
  if (a.re === 0 && a.im === 0) return b.re > 0 ? { re: 0, im: 0 } : NAN_C;
  return cExp(cMul(b, cLog(a)));
}

function literal(text: string, repeat: string | undefined): number {
  if (repeat === undefined) return Number(text);
  const [whole = "0", frac = ""] = text.split(".");
  const ab = Number((whole || "0") + frac);
  const abc = Number((whole || "0") + frac + repeat);
  return (abc - ab) / (10 ** frac.length * (10 ** repeat.length - 1));
}

/** evaluates with `i` as the imaginary unit; other symbols take real values from `env` */
export function evaluateComplex(e: Expr, env: ReadonlyMap<string, number>, budget: EvalBudget): Complex {
  budget.steps--;
  if (budget.steps < 0) throw new BudgetError("step budget spent");
  if ((budget.steps & 1023) === 0 && budget.now() > budget.deadline) throw new BudgetError("deadline passed");
  switch (e.t) {
    case "num":
      return { re: literal(e.text, e.repeat), im: 0 };
    case "sym": {
      if (e.name === "i") return { re: 0, im: 1 };
      const v = env.get(e.name);
      return v === undefined ? NAN_C : { re: v, im: 0 };
    }
    case "const":
      return { re: e.name === "pi" ? Math.PI : e.name === "e" ? Math.E : Infinity, im: 0 };
    case "neg": {
      const a = evaluateComplex(e.a, env, budget);
      return { re: 0 - a.re, im: 0 - a.im };
    }
    case "bin": {
      const a = evaluateComplex(e.a, env, budget);
      const b = evaluateComplex(e.b, env, budget);
      switch (e.op) {
        case "+":
          return cAdd(a, b);
        case "-":
          return cSub(a, b);
        case "*":
          return cMul(a, b);
        case "/":
          return cDiv(a, b);
        case "^":
          return cPow(a, b);
      }
      return NAN_C;
    }
    case "fn": {
      const [x, y] = e.args.map((a) => evaluateComplex(a, env, budget));
      if (!x) return NAN_C;
      switch (e.name) {
        case "sqrt":
          return cPow(x, { re: 0.5, im: 0 });
        case "root":
          return y ? cPow(x, cDiv({ re: 1, im: 0 }, y)) : NAN_C;
        case "abs":
          return { re: Math.hypot(x.re, x.im), im: 0 };
        case "exp":
          return cExp(x);
        case "ln":
          return cLog(x);
        case "cos":
          return cMul({ re: 0.5, im: 0 }, cAdd(cExp({ re: -x.im, im: x.re }), cExp({ re: x.im, im: -x.re })));
        case "sin": {
          const d = cSub(cExp({ re: -x.im, im: x.re }), cExp({ re: x.im, im: -x.re }));
          return { re: d.im / 2, im: -d.re / 2 };
        }
        default:
          // everything else only on real arguments
          return x.im === 0 ? realFunction(e.name, x.re, y) : NAN_C;
      }
    }
  }
}

function realFunction(name: string, x: number, y: Complex | undefined): Complex {
  const f: Record<string, (v: number) => number> = {
    tan: Math.tan,
    log: Math.log,
    floor: Math.floor,
    ceil: Math.ceil,
    arctan: Math.atan,
  };
  if (name === "log" && y && y.im === 0) return { re: Math.log(x) / Math.log(y.re), im: 0 };
  const g = f[name];
  return g ? { re: g(x), im: 0 } : NAN_C;
}

/** complex values equal within a relative tolerance of their larger modulus */
export function complexClose(a: Complex, b: Complex, rel: number): boolean {
  if (![a.re, a.im, b.re, b.im].every(Number.isFinite)) return false;
  const diff = Math.hypot(a.re - b.re, a.im - b.im);
  const scale = Math.max(Math.hypot(a.re, a.im), Math.hypot(b.re, b.im));
  return diff <= rel * scale || diff <= 1e-12;
}
