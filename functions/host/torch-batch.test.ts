import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { encodeTorchBatch } from "./torch-batch.ts";

describe("torch learner batches", () => {
  it("lays the samples' arrays out one after the other, as the Python side reads them", () => {
    const { bytes, lengths } = encodeTorchBatch([
      { tokens: [5, 6, 7], lossMask: [0, 1, 1], advantages: [0, 0.5, 0.5], behaviourLogProbs: [0, -1, -2] },
      { tokens: [8, 9], lossMask: [0, 1], advantages: [0, -1], behaviourLogProbs: [0, -0.25] },
    ]);
    expect(lengths).toEqual([3, 2]);
    expect(bytes.length).toBe(5 * 16);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const ints = Array.from({ length: 5 }, (_, i) => view.getInt32(4 * i, true));
    const floats = (array: number) =>
      Array.from({ length: 5 }, (_, i) => view.getFloat32(20 * array + 4 * i, true));
    expect(ints).toEqual([5, 6, 7, 8, 9]);
    expect(floats(1)).toEqual([0, 1, 1, 0, 1]);
    expect(floats(2)).toEqual([0, 0.5, 0.5, 0, -1]);
    expect(floats(3)).toEqual([0, -1, -2, 0, -0.25]);
  });

  it("refuses misaligned arrays and bad token ids, naming each", () => {
    let error: unknown;
    try {
      encodeTorchBatch([
        { tokens: [1, 2], lossMask: [0], advantages: [0, 1], behaviourLogProbs: [0, 0] },
        { tokens: [1, -3], lossMask: [0, 1], advantages: [0, 1], behaviourLogProbs: [0, 0] },
      ]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).issues.map((i) => i.path)).toEqual([
      "samples[0].lossMask",
      "samples[1].tokens[1]",
    ]);
  });
});
