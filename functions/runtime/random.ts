import { createHash } from "node:crypto";

/**
 * Seeded randomness handed to handlers. The runner seeds one per input event (from the run seed
 * and the event id), so reprocessing a redelivered event draws the same numbers and emits the same
 * outputs.
 */
export interface Random {
  /** uniform in [0, 1) */
  next(): number;
  /** uniform integer in [0, maxExclusive) */
  int(maxExclusive: number): number;
  /** an independent stream derived from this one's seed and `label` (stable, whatever was drawn so far) */
  fork(label: string): Random;
}

/** xoshiro128** seeded from sha256 of `seed`: fast, 2^128 period, identical on every platform. */
export function seededRandom(seed: string | number): Random {
  return new Xoshiro128(String(seed));
}

class Xoshiro128 implements Random {
  readonly #seed: string;
  readonly #s: Uint32Array;

  constructor(seed: string) {
    this.#seed = seed;
    const digest = createHash("sha256").update(seed).digest();
    this.#s = new Uint32Array([
      digest.readUInt32LE(0),
      digest.readUInt32LE(4),
      digest.readUInt32LE(8),
      digest.readUInt32LE(12),
    ]);
    // the all-zero state is a fixed point; sha256 makes it astronomically unlikely, but guard anyway
    if (this.#s.every((word) => word === 0)) this.#s[0] = 1;
  }

  #nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  next(): number {
    // 53 random bits, like Math.random's resolution
    const high = this.#nextUint32() >>> 5;
    const low = this.#nextUint32() >>> 6;
    return (high * 67108864 + low) / 9007199254740992;
  }

  int(maxExclusive: number): number {
    if (!Number.isInteger(maxExclusive) || maxExclusive < 1) {
      throw new RangeError(`maxExclusive must be a positive integer, got ${maxExclusive}`);
    }
    return Math.floor(this.next() * maxExclusive);
  }

  fork(label: string): Random {
    return new Xoshiro128(`${this.#seed}\u0000${label}`);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
