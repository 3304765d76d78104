import { describe, expect, it } from "vitest";
import { QuestATrainingSpecSchema } from "../contracts/questatraining.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { charTokenizer } from "../model/tokenizer.ts";
import { Augmenter } from "../questa/augmentation.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import { skillProbes, type WarmStartProgress, warmStart } from "./warm-start.ts";

const engine = { executionProvider: "cpu", threads: 1 } as const;

function tinySpec(warm: { steps: number; stopAtSkillAccuracy?: number }) {
  return QuestATrainingSpecSchema.parse({
    model: {
      architecture: { layers: 1, width: 32, heads: 2, kvHeads: 2, mlpWidth: 64, contextLength: 128 },
      warmStart: { batchSize: 4, learningRate: 0.003, ...warm },
    },
    datasets: { train: [{ name: "t", synthetic: {} }] },
  });
}

describe("warm start", () => {
  it("probes the products of hard problems: each span is a product line's result", () => {
    const tokenizer = charTokenizer();
    const probes = skillProbes(0, new Augmenter({ ratio: 0 }), tokenizer);
    expect(probes.length).toBeGreaterThan(100);
    for (const probe of probes.slice(0, 20)) {
      // hard problems are chains of four multiplications
      expect(probe.spans).toHaveLength(4);
      const text = tokenizer.decode(probe.tokens, { skipSpecialTokens: true });
      for (const { start, end } of probe.spans) {
        const result = tokenizer.decode(probe.tokens.slice(start, end));
        expect(result).toMatch(/^\d+\n$/);
        // the line that ends in it multiplies, and its result is right modulo 97
        const before = tokenizer.decode(probe.tokens.slice(0, start));
        const line = /(\d+)\*(\d+)=$/.exec(before);
        expect(line, text).not.toBeNull();
        expect(Number(result) % 97).toBe((Number(line![1]) * Number(line![2])) % 97);
      }
    }
  });

  it("stops once the policy reaches its skill accuracy, and records what it trained", async () => {
    const store = new MemoryObjectStore();
    const reports: WarmStartProgress[] = [];
    // any policy writes a product right with some chance: the first probe (step 10) reaches this
    await warmStart({
      spec: tinySpec({ steps: 200, stopAtSkillAccuracy: 1e-9 }),
      store,
      folder: "early",
      engine,
      onProgress: (p) => reports.push(p),
    });
    expect(reports.at(-1)).toMatchObject({ step: 10, steps: 200, finished: true });
    expect(reports.at(-1)?.skillAccuracy).toBeGreaterThan(0);
    const early = await loadCheckpoint(store, "early");
    expect(early.manifest.metadata.steps).toBe("10");
    expect(Number(early.manifest.metadata.skillAccuracy)).toBeGreaterThan(0);
  });

  it("trains every step when the skill accuracy is out of reach, probing along the way", async () => {
    const store = new MemoryObjectStore();
    const reports: WarmStartProgress[] = [];
    await warmStart({
      spec: tinySpec({ steps: 60, stopAtSkillAccuracy: 1 }),
      store,
      folder: "full",
      engine,
      onProgress: (p) => reports.push(p),
    });
    expect(reports.map((p) => p.step)).toEqual([60]);
    expect(reports[0]).toMatchObject({ finished: true });
    expect(reports[0]?.skillAccuracy).toBeLessThan(1);
    expect((await loadCheckpoint(store, "full")).manifest.metadata.steps).toBe("60");
    // without a target nothing is probed
    const plain: WarmStartProgress[] = [];
    await warmStart({
      spec: tinySpec({ steps: 60 }),
      store,
      folder: "plain",
      engine,
      onProgress: (p) => plain.push(p),
    });
    expect(plain.map((p) => [p.step, p.skillAccuracy])).toEqual([[60, undefined]]);
  });
});
