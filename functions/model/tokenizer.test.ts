import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { createRng } from "./rng.ts";
import { charAlphabet, charTokenizer, charTokenizerJson, loadTokenizer } from "./tokenizer.ts";

const sample = "Step 1: 17 + 25 = 42\nStep 2: 42 * 3 mod 97 = 29\nSo the answer is \\boxed{29}.";

describe("char tokenizer", () => {
  const fast = charTokenizer();
  const library = loadTokenizer(charTokenizerJson(), { fastPath: false });

  it("round-trips text and reserves <pad>, <bos>, <eos>", () => {
    expect([fast.padId, fast.bosId, fast.eosId]).toEqual([0, 1, 2]);
    expect(fast.vocabSize).toBe(3 + 96);
    expect(fast.decode(fast.encode(sample))).toBe(sample);
    expect(fast.decode([1, ...fast.encode("ab"), 2, 0])).toBe("ab");
  });

  it("gives the same ids as @huggingface/tokenizers on the same tokenizer.json", () => {
    const rng = createRng(1);
    const alphabet = charAlphabet();
    const texts = [sample, " ", "\n\n", "\\boxed{x}"];
    for (let i = 0; i < 50; i++) {
      const n = 1 + Math.floor(rng.next() * 40);
      texts.push(
        Array.from({ length: n }, () => alphabet[Math.floor(rng.next() * alphabet.length)]!).join(""),
      );
    }
    for (const t of texts) {
      expect(fast.encode(t)).toEqual(library.encode(t));
      expect(library.decode(library.encode(t))).toBe(t);
    }
    expect(library.vocabSize).toBe(fast.vocabSize);
    expect([library.padId, library.bosId, library.eosId]).toEqual([0, 1, 2]);
  });

  it("loadTokenizer recognises its own char tokenizer.json and takes the fast path", () => {
    const loaded = loadTokenizer(fast.toJSON());
    expect(loaded.encode(sample)).toEqual(fast.encode(sample));
    expect(loaded.toJSON()).toEqual(fast.toJSON());
  });

  it("rejects characters outside the vocabulary", () => {
    expect(() => fast.encode("é")).toThrow(InputError);
  });

  it("rejects a malformed tokenizer.json naming the field", () => {
    expect(() => loadTokenizer({ model: 3 })).toThrow(/tokenizer\.model/);
  });
});
