/** A seeded pseudo-random source: randomness enters the engine only through this interface. */
export interface Rng {
  /** uniform in [0, 1) */
  next(): number;
}

/** xoshiro128** seeded through splitmix32; deterministic across platforms */
export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  if ((a | b | c | d) === 0) a = 1;
  return {
    next(): number {
      const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
      const t = (b << 9) >>> 0;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
      return result / 4294967296;
    },
  };
}

/**
 * The generator of stream `stream` under `seed`: independent streams for the rows of one request
 * (row i draws only from its own stream, so its tokens do not depend on which rows share its batch).
 */
export function streamRng(seed: number, stream: number): Rng {
  // splitmix32's finaliser over seed and stream, so neighbouring streams start far apart
  let z = (Math.imul((seed >>> 0) ^ 0x5bd1e995, 0x9e3779b9) + Math.imul(stream >>> 0, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return createRng((z ^ (z >>> 16)) >>> 0);
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** standard normal sample (Box-Muller) */
export function normal(rng: Rng): number {
  let u = rng.next();
  while (u <= 0) u = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}
