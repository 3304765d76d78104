import { describe, expect, it } from "vitest";
import { murmur2, partitionForKey } from "./partitioner.ts";

describe("murmur2", () => {
  // vectors from Apache Kafka's UtilsTest.testMurmur2
  const vectors: [string, number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ];
  it.each(vectors)("hashes %s like the Java client", (input, expected) => {
    expect(murmur2(new TextEncoder().encode(input))).toBe(expected);
  });

  it("assigns partitions like Kafka's default partitioner", () => {
    expect(partitionForKey("foobar", 50)).toBe(16);
    for (let i = 0; i < 100; i++) {
      const p = partitionForKey(`key-${i}`, 7);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(7);
      expect(partitionForKey(`key-${i}`, 7)).toBe(p);
    }
  });

  it("rejects a non-positive partition count", () => {
    expect(() => partitionForKey("a", 0)).toThrow(/positive integer/);
  });
});
