import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { MemoryObjectStore } from "../runtime/memory-object-store.ts";
import {
  decideHardFilter,
  defaultHardFilterParams,
  HardFilterJournal,
  hardFilterDecisionKey,
  PassCountFeedbackSchema,
  validateHardFilterParams,
} from "./hard-filter.ts";

describe("hard-problem filter", () => {
  it("keeps 0..4 passes of 8 and drops the easier ones", () => {
    const verdicts = Array.from(
      { length: 9 },
      (_, passes) =>
        decideHardFilter({ questionId: "q", samples: 8, passes }, defaultHardFilterParams).verdict,
    );
    expect(verdicts).toEqual([
      "keep",
      "keep",
      "keep",
      "keep",
      "keep",
      "too-easy",
      "too-easy",
      "too-easy",
      "too-easy",
    ]);
  });

  it("judges groups of another size by pass rate, and the lower bound", () => {
    const params = { enabled: true, samples: 8, minPasses: 1, maxPasses: 4 };
    expect(decideHardFilter({ questionId: "q", samples: 16, passes: 8 }, params).keep).toBe(true);
    expect(decideHardFilter({ questionId: "q", samples: 16, passes: 9 }, params).verdict).toBe("too-easy");
    expect(decideHardFilter({ questionId: "q", samples: 16, passes: 1 }, params).verdict).toBe("too-hard");
    expect(decideHardFilter({ questionId: "q", samples: 16, passes: 2 }, params).keep).toBe(true);
  });

  it("keeps everything when disabled", () => {
    const decision = decideHardFilter(
      { questionId: "q", samples: 8, passes: 8 },
      { ...defaultHardFilterParams, enabled: false },
    );
    expect(decision).toMatchObject({ keep: true, verdict: "filter-disabled" });
  });

  it("persists each decision once under a deterministic key; a restart finds it", async () => {
    const store = new MemoryObjectStore();
    const journal = new HardFilterJournal(store, "runs/demo");
    const first = await journal.decide(
      { questionId: "aime24-abc", samples: 8, passes: 2, policyVersion: 0 },
      defaultHardFilterParams,
    );
    expect(first).toMatchObject({ created: true, decision: { keep: true, passes: 2 } });
    expect(hardFilterDecisionKey("runs/demo", "aime24-abc")).toBe("runs/demo/hard-filter/aime24-abc.json");
    expect(await store.head("runs/demo/hard-filter/aime24-abc.json")).toBeDefined();

    // a restarted process with a fresh journal, redelivered (or newer) feedback: the first decision stands
    const restarted = new HardFilterJournal(store, "runs/demo");
    const again = await restarted.decide(
      { questionId: "aime24-abc", samples: 8, passes: 8 },
      defaultHardFilterParams,
    );
    expect(again).toEqual({ created: false, decision: first.decision });
    await restarted.decide({ questionId: "aime24-def", samples: 8, passes: 7 }, defaultHardFilterParams);
    expect((await restarted.all()).map((d) => [d.questionId, d.keep])).toEqual([
      ["aime24-abc", true],
      ["aime24-def", false],
    ]);
    expect(await restarted.get("missing")).toBeUndefined();
  });

  it("rejects impossible feedback and parameters", () => {
    expect(PassCountFeedbackSchema.safeParse({ questionId: "q", samples: 8, passes: 9 }).success).toBe(false);
    expect(() => validateHardFilterParams({ enabled: true, samples: 8, minPasses: 5, maxPasses: 4 })).toThrow(
      InputError,
    );
    expect(() => validateHardFilterParams(defaultHardFilterParams)).not.toThrow();
  });
});
