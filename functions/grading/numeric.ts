/**
 * Numbers for grading: an IEEE double always, plus an exact rational (bigint numerator/denominator)
 * while every step stayed rational and small. `approx` marks values that came from a decimal
 * literal, which may be a rounded form of the true answer and so is compared with a tolerance.
 */
export interface Num {
  v: number;
  /** exact value n/d with d > 0 and gcd(n, d) = 1, when known */
  q?: readonly [bigint, bigint];
  /** true when a decimal literal fed into this value */
  approx: boolean;
  /** digits after the decimal point, only for a bare (possibly negated) decimal literal */
  decimals?: number;
  /** a written infinity (\\infty), as opposed to an overflow */
  infinite?: true;
}

/** magnitude past which exact arithmetic stops and doubles take over (bounds bigint work) */
const EXACT_LIMIT = 1n << 2048n;

export const NAN: Num = { v: Number.NaN, approx: false };

function absBig(x: bigint): bigint {
  return x < 0n ? -x : x;
}

function gcd(a: bigint, b: bigint): bigint {
  a = absBig(a);
  b = absBig(b);
  while (b !== 0n) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

function ratioToNumber(n: bigint, d: bigint): number {
  const direct = Number(n) / Number(d);
  if (Number.isFinite(direct) && direct !== 0) return direct;
  if (n === 0n) return 0;
  // both sides overflow doubles: scale down before dividing
  const shift = BigInt(Math.max(0, n.toString(2).length - 1000, d.toString(2).length - 1000));
  return Number(n >> shift) / Number(d >> shift);
}

export function makeRational(n: bigint, d: bigint, approx = false): Num {
  if (d === 0n) return { v: n === 0n ? Number.NaN : n > 0n ? Infinity : -Infinity, approx };
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  if (g > 1n) {
    n /= g;
    d /= g;
  }
  if (absBig(n) > EXACT_LIMIT || d > EXACT_LIMIT) return { v: ratioToNumber(n, d), approx };
  return { v: ratioToNumber(n, d), q: [n, d], approx };
}

export function fromFloat(v: number, approx: boolean): Num {
  return { v, approx };
}

/** parses a plain decimal literal such as "025", "0.5", ".185" into an exact value */
export function fromDecimalLiteral(text: string): Num {
  const dot = text.indexOf(".");
  if (dot < 0) return makeRational(BigInt(text), 1n);
  const whole = text.slice(0, dot) || "0";
  const frac = text.slice(dot + 1);
  if (frac.length > 400) return { v: Number(text), approx: true };
  const scale = 10n ** BigInt(frac.length);
  const num = makeRational(BigInt(whole) * scale + BigInt(frac || "0"), scale, frac.length > 0);
  if (frac.length > 0) num.decimals = frac.length;
  return num;
}

export function add(a: Num, b: Num): Num {
  const approx = a.approx || b.approx;
  if (a.q && b.q) return makeRational(a.q[0] * b.q[1] + b.q[0] * a.q[1], a.q[1] * b.q[1], approx);
  return { v: a.v + b.v, approx };
}

export function neg(a: Num): Num {
  const out: Num = a.q ? { v: -a.v, q: [-a.q[0], a.q[1]], approx: a.approx } : { v: -a.v, approx: a.approx };
  if (a.decimals !== undefined) out.decimals = a.decimals;
  if (a.infinite) out.infinite = true;
  return out;
}

export function sub(a: Num, b: Num): Num {
  return add(a, neg(b));
}

export function mul(a: Num, b: Num): Num {
  const approx = a.approx || b.approx;
  if (a.q && b.q) return makeRational(a.q[0] * b.q[0], a.q[1] * b.q[1], approx);
  return { v: a.v * b.v, approx };
}

export function div(a: Num, b: Num): Num {
  const approx = a.approx || b.approx;
  if (a.q && b.q) {
    if (b.q[0] === 0n) return { v: Number.NaN, approx };
    return makeRational(a.q[0] * b.q[1], a.q[1] * b.q[0], approx);
  }
  return { v: a.v / b.v, approx };
}

function isInteger(a: Num): boolean {
  return a.q !== undefined && a.q[1] === 1n;
}

function bitLength(x: bigint): number {
  return absBig(x).toString(16).length * 4;
}

/** exact integer root of an exact rational when it is a perfect power, else undefined */
function exactRoot(a: Num, n: number): Num | undefined {
  if (!a.q || n < 2 || n > 64) return undefined;
  const [p, q] = a.q;
  if (p < 0n && n % 2 === 0) return undefined;
  const rootOf = (x: bigint): bigint | undefined => {
    const neg = x < 0n;
    const ax = absBig(x);
    const guess = BigInt(Math.round(Math.abs(ratioToNumber(ax, 1n)) ** (1 / n)));
    for (const c of [guess - 1n, guess, guess + 1n]) {
      if (c >= 0n && c ** BigInt(n) === ax) return neg ? -c : c;
    }
    return undefined;
  };
  if (bitLength(p) > 200 || bitLength(q) > 200) return undefined;
  const rp = rootOf(p);
  const rq = rootOf(q);
  if (rp === undefined || rq === undefined) return undefined;
  return makeRational(rp, rq, a.approx);
}

export function pow(a: Num, b: Num): Num {
  const approx = a.approx || b.approx;
  if (a.q && isInteger(b)) {
    const e = b.q![0];
    const absE = absBig(e);
    const bits = Math.max(bitLength(a.q[0]), bitLength(a.q[1]));
    if (absE <= 4096n && bits * Number(absE) <= 4096) {
      if (a.q[0] === 0n && e < 0n) return { v: Number.NaN, approx };
      const n = a.q[0] ** absE;
      const d = a.q[1] ** absE;
      return e >= 0n ? makeRational(n, d, approx) : makeRational(d, n, approx);
    }
    return { v: a.v ** b.v, approx };
  }
  if (a.q && b.q && b.q[1] <= 64n) {
    // rational exponent p/q: exact when the base is a perfect q-th power
    const root = exactRoot(a, Number(b.q[1]));
    if (root) return pow(root, makeRational(b.q[0], 1n, b.approx));
  }
  if (a.v < 0 && b.q && b.q[1] % 2n === 1n) {
    // real odd root of a negative base, e.g. (-8)^(1/3) = -2
    const mag = (-a.v) ** b.v;
    return { v: b.q[0] % 2n === 0n ? mag : -mag, approx };
  }
  return { v: a.v ** b.v, approx };
}

export function root(a: Num, n: number): Num {
  const exact = exactRoot(a, n);
  if (exact) return exact;
  if (a.v < 0 && n % 2 === 1) return { v: -((-a.v) ** (1 / n)), approx: a.approx };
  return { v: n === 2 ? Math.sqrt(a.v) : a.v ** (1 / n), approx: a.approx };
}

export function factorial(a: Num): Num {
  if (!isInteger(a) || a.q![0] < 0n) return { v: Number.NaN, approx: a.approx };
  const n = Number(a.q![0]);
  if (n > 300) return { v: Infinity, approx: a.approx };
  let acc = 1n;
  for (let k = 2n; k <= BigInt(n); k++) acc *= k;
  return makeRational(acc, 1n, a.approx);
}

export function binomial(n: Num, k: Num): Num {
  if (isInteger(k) && !isInteger(n) && k.q![0] >= 0n && k.q![0] <= 64n) {
    // binom(n, k) for any n (a polynomial in n): n(n-1)...(n-k+1)/k!, as sampled symbolic checks need
    let acc = makeRational(1n, 1n, n.approx);
    for (let i = 0n; i < k.q![0]; i++)
      acc = div(mul(acc, sub(n, makeRational(i, 1n))), makeRational(i + 1n, 1n));
    return acc;
  }
  if (!isInteger(n) || !isInteger(k)) return { v: Number.NaN, approx: n.approx || k.approx };
  const nn = n.q![0];
  let kk = k.q![0];
  if (kk < 0n || nn < 0n || kk > nn) return makeRational(0n, 1n);
  if (kk > nn - kk) kk = nn - kk;
  if (kk > 2000n) return { v: Infinity, approx: false };
  let acc = 1n;
  for (let i = 1n; i <= kk; i++) acc = (acc * (nn - kk + i)) / i;
  return makeRational(acc, 1n);
}

export function applyFloat(a: Num, f: (x: number) => number): Num {
  return { v: f(a.v), approx: a.approx };
}

export interface Tolerance {
  /** relative tolerance when the gold (or an expression) carries decimal literals */
  decimal: number;
  /**
   * a bare decimal answer against an exact gold may be that value rounded: accepted within half a
   * unit of its last digit, but never looser than this relative bound (so 2.7 is not 8/3)
   */
  rounded: number;
  /** relative tolerance between exactly written values evaluated in doubles (irrationals) */
  exact: number;
}

export const DEFAULT_TOLERANCE: Tolerance = { decimal: 1e-5, rounded: 1e-4, exact: 1e-9 };

/**
 * An unrounded decimal (at least 3 more digits) that rounds to the gold's decimal literal, e.g. gold 0.29
 * and 0.2902435. Only this direction: an answer coarser than the gold lost precision the gold asks for.
 */
function roundsToGold(gold: Num, pred: Num): boolean {
  if (gold.decimals === undefined || pred.decimals === undefined || !gold.q || !pred.q) return false;
  const short = gold;
  const long = pred;
  if (long.decimals! < short.decimals! + 3) return false;
  const scale = 10n ** BigInt(short.decimals!);
  const [ln, ld] = long.q!;
  const scaled = ln * scale * 2n;
  // round half away from zero
  const rounded = scaled >= 0n ? (scaled + ld) / (2n * ld) : -((-scaled + ld) / (2n * ld));
  return rounded * short.q![1] === short.q![0] * scale;
}

/** numeric equality of gold `a` and answer `b` under the grading policy (README in this folder) */
export function numbersEqual(a: Num, b: Num, tol: Tolerance = DEFAULT_TOLERANCE): boolean {
  if (Number.isNaN(a.v) || Number.isNaN(b.v)) return false;
  if (a.q && b.q) {
    if (a.q[0] === b.q[0] && a.q[1] === b.q[1]) return true;
    if (!a.approx && !b.approx) return false;
  }
  if (!Number.isFinite(a.v) || !Number.isFinite(b.v))
    return a.v === b.v && a.infinite === true && b.infinite === true;
  if (roundsToGold(a, b)) return true;
  const diff = Math.abs(a.v - b.v);
  const scale = Math.max(Math.abs(a.v), Math.abs(b.v));
  if (!a.approx && b.decimals !== undefined) {
    // 2.6667 for 8/3: within half a unit of the answer's last digit, and at most `rounded` relative
    const halfUnit = 0.5 * 10 ** -b.decimals;
    if (diff <= Math.min(halfUnit, tol.rounded * Math.abs(a.v)) * (1 + 1e-9)) return true;
  }
  const rel = a.approx || b.approx ? tol.decimal : tol.exact;
  return diff <= rel * scale || diff <= 1e-12;
}
