/**
 * The host-owned KV cache of continuous batching: per layer, keys `[rows, kvHeads, headDim, C]`
 * (pre-transposed for the decode graph) and values `[rows, kvHeads, C, headDim]`. Every row keeps
 * its own fill level: a row's prompt occupies slots `[0, promptLength)` and each decode step writes
 * one slot at the row's own position, so rows that joined at different steps live side by side.
 * Active rows are kept contiguous in slots `[0, rows)` (a leaving row is replaced by the last one),
 * so the decode graph is fed zero-copy views of the first `rows` rows. Pure data movement, no I/O.
 */

/** A prefilled prompt: its keys `[kvHeads, headDim, length]` and values `[kvHeads, length, headDim]` per layer. */
export interface PromptKv {
  readonly length: number;
  readonly k: readonly Float32Array[];
  readonly v: readonly Float32Array[];
  /** next-token logits after the prompt */
  readonly logits: Float32Array;
}

export interface KvShape {
  readonly layers: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

/**
 * The prompt at `batchIndex` of a left-padded prefill (keys `[B, kv, hd, Lp]`, values
 * `[B, kv, Lp, hd]`, `pad` leading slots of padding), copied out compactly.
 */
export function promptKvFromPrefill(
  shape: KvShape,
  prefill: { k: readonly Float32Array[]; v: readonly Float32Array[]; logits: Float32Array },
  batchIndex: number,
  paddedLength: number,
  pad: number,
  vocabSize: number,
): PromptKv {
  const { kvHeads: kv, headDim: hd } = shape;
  const Lp = paddedLength;
  const length = Lp - pad;
  const k: Float32Array[] = [];
  const v: Float32Array[] = [];
  for (let l = 0; l < shape.layers; l++) {
    const srcK = prefill.k[l]!;
    const srcV = prefill.v[l]!;
    const dk = new Float32Array(kv * hd * length);
    const dv = new Float32Array(kv * length * hd);
    for (let j = 0; j < kv * hd; j++) {
      const line = (batchIndex * kv * hd + j) * Lp;
      dk.set(srcK.subarray(line + pad, line + Lp), j * length);
    }
    for (let h = 0; h < kv; h++) {
      const head = (batchIndex * kv + h) * Lp;
      dv.set(srcV.subarray((head + pad) * hd, (head + Lp) * hd), h * length * hd);
    }
    k.push(dk);
    v.push(dv);
  }
  const logits = prefill.logits.slice(batchIndex * vocabSize, (batchIndex + 1) * vocabSize);
  return { length, k, v, logits };
}

export class KvCache {
  readonly #shape: KvShape;
  #k: Float32Array[] = [];
  #v: Float32Array[] = [];
  #allocatedRows = 0;
  #capacity = 0;
  #rows = 0;
  /** filled slots of each active row */
  #filled: number[] = [];

  constructor(shape: KvShape) {
    this.#shape = shape;
  }

  /** active rows */
  get rows(): number {
    return this.#rows;
  }

  /** slots per row */
  get capacity(): number {
    return this.#capacity;
  }

  filled(row: number): number {
    return this.#filled[row]!;
  }

  /** makes room for `rows` rows of `capacity` slots, keeping the active rows (allocations only grow) */
  reserve(rows: number, capacity: number): void {
    if (rows <= this.#allocatedRows && capacity <= this.#capacity) return;
    const newRows = Math.max(rows, this.#allocatedRows);
    const newCapacity = Math.max(capacity, this.#capacity);
    const { kvHeads: kv, headDim: hd, layers } = this.#shape;
    const oldC = this.#capacity;
    for (let l = 0; l < layers; l++) {
      const k = new Float32Array(newRows * kv * hd * newCapacity);
      const v = new Float32Array(newRows * kv * newCapacity * hd);
      const oldK = this.#k[l];
      const oldV = this.#v[l];
      if (oldK && oldV) {
        if (oldC === newCapacity) {
          k.set(oldK.subarray(0, this.#rows * kv * hd * oldC));
          v.set(oldV.subarray(0, this.#rows * kv * oldC * hd));
        } else {
          for (let line = 0; line < this.#rows * kv * hd; line++) {
            k.set(oldK.subarray(line * oldC, line * oldC + oldC), line * newCapacity);
          }
          for (let head = 0; head < this.#rows * kv; head++) {
            v.set(oldV.subarray(head * oldC * hd, (head + 1) * oldC * hd), head * newCapacity * hd);
          }
        }
      }
      this.#k[l] = k;
      this.#v[l] = v;
    }
    this.#allocatedRows = newRows;
    this.#capacity = newCapacity;
  }

  /** places a prefilled prompt in the next free row; returns that row */
  append(prompt: PromptKv): number {
    const row = this.#rows;
    if (row >= this.#allocatedRows || prompt.length > this.#capacity) {
      throw new Error(`KvCache: no room for a row of ${prompt.length} slots (reserve first)`);
    }
    const { kvHeads: kv, headDim: hd, layers } = this.#shape;
    const C = this.#capacity;
    const n = prompt.length;
    for (let l = 0; l < layers; l++) {
      const k = this.#k[l]!;
      const v = this.#v[l]!;
      const pk = prompt.k[l]!;
      const pv = prompt.v[l]!;
      for (let j = 0; j < kv * hd; j++) k.set(pk.subarray(j * n, (j + 1) * n), (row * kv * hd + j) * C);
      for (let h = 0; h < kv; h++) v.set(pv.subarray(h * n * hd, (h + 1) * n * hd), (row * kv + h) * C * hd);
    }
    this.#filled[row] = n;
    this.#rows++;
    return row;
  }

  /**
   * Removes `row`; the last active row moves into its place (no gaps in the fed batch). Returns the
   * index the moved row had, or undefined when `row` was the last one.
   */
  remove(row: number): number | undefined {
    const last = this.#rows - 1;
    this.#rows--;
    if (row === last) {
      this.#filled.length = this.#rows;
      return undefined;
    }
    const { kvHeads: kv, headDim: hd, layers } = this.#shape;
    const size = kv * hd * this.#capacity;
    for (let l = 0; l < layers; l++) {
      this.#k[l]!.copyWithin(row * size, last * size, (last + 1) * size);
      this.#v[l]!.copyWithin(row * size, last * size, (last + 1) * size);
    }
    this.#filled[row] = this.#filled[last]!;
    this.#filled.length = this.#rows;
    return last;
  }

  /** the decode graph's cache inputs over the active rows, zero-copy */
  views(): { k: Float32Array[]; v: Float32Array[] } {
    const { kvHeads: kv, headDim: hd } = this.#shape;
    const size = this.#rows * kv * hd * this.#capacity;
    return {
      k: this.#k.map((k) => k.subarray(0, size)),
      v: this.#v.map((v) => v.subarray(0, size)),
    };
  }

  /** additive attention mask `[rows, 1, C]`: each row's filled slots 0, the rest `negInf` */
  mask(negInf: number): Float32Array {
    const C = this.#capacity;
    const mask = new Float32Array(this.#rows * C).fill(negInf);
    for (let r = 0; r < this.#rows; r++) mask.fill(0, r * C, r * C + this.#filled[r]!);
    return mask;
  }

  /**
   * Writes one decode step's keys `[rows, kv, hd, 1]` and values `[rows, kv, 1, hd]` of layer `l`
   * at each row's next slot; call `advance()` after the last layer.
   */
  write(l: number, stepK: Float32Array, stepV: Float32Array): void {
    const { kvHeads: kv, headDim: hd } = this.#shape;
    const C = this.#capacity;
    const k = this.#k[l]!;
    const v = this.#v[l]!;
    for (let r = 0; r < this.#rows; r++) {
      const slot = this.#filled[r]!;
      for (let j = 0; j < kv * hd; j++) k[(r * kv * hd + j) * C + slot] = stepK[r * kv * hd + j]!;
      for (let h = 0; h < kv; h++) {
        v.set(stepV.subarray((r * kv + h) * hd, (r * kv + h + 1) * hd), ((r * kv + h) * C + slot) * hd);
      }
    }
  }

  /** every active row has one more filled slot */
  advance(): void {
    for (let r = 0; r < this.#rows; r++) this.#filled[r]!++;
  }
}
