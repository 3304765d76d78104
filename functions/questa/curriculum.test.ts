import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import {
  type CurriculumStage,
  currentRatio,
  initialCurriculumState,
  observeCurriculum,
  replayCurriculum,
  validateCurriculum,
} from "./curriculum.ts";

const official: CurriculumStage[] = [{ ratio: 0.5, until: { steps: 100 } }, { ratio: 0.25 }];

describe("hint curriculum", () => {
  it("holds stage 0 until step 100, then moves to p = 0.25 once", () => {
    const steps = Array.from({ length: 150 }, (_, i) => ({ step: i + 1 }));
    const { state, transitions } = replayCurriculum(official, steps);
    expect(transitions).toEqual([
      { fromStage: 0, toStage: 1, fromRatio: 0.5, toRatio: 0.25, atStep: 100, reason: "steps" },
    ]);
    expect(state).toEqual({ stageIndex: 1, stageStartStep: 100, lastStep: 150, finished: false });
    expect(currentRatio(official, state)).toBe(0.25);
  });

  it("ends a stage when entropy falls below the threshold, whichever comes first", () => {
    const stages: CurriculumStage[] = [
      { ratio: 0.5, until: { steps: 100, entropyBelow: 0.3 } },
      { ratio: 0.25 },
    ];
    const observations = [
      { step: 1, entropy: 0.9 },
      { step: 2 },
      { step: 3, entropy: 0.31 },
      { step: 4, entropy: 0.29 },
      { step: 5, entropy: 0.1 },
    ];
    const { state, transitions } = replayCurriculum(stages, observations);
    expect(transitions).toEqual([
      {
        fromStage: 0,
        toStage: 1,
        fromRatio: 0.5,
        toRatio: 0.25,
        atStep: 4,
        reason: "entropy",
        entropy: 0.29,
      },
    ]);
    expect(state.stageIndex).toBe(1);
  });

  it("moves at most one stage per entropy observation", () => {
    const stages: CurriculumStage[] = [
      { ratio: 0.5, until: { entropyBelow: 0.5 } },
      { ratio: 0.25, until: { entropyBelow: 0.5 } },
      { ratio: 0.1 },
    ];
    const first = observeCurriculum(stages, initialCurriculumState, { step: 10, entropy: 0.2 });
    expect(first.state.stageIndex).toBe(1);
    const second = observeCurriculum(stages, first.state, { step: 11, entropy: 0.2 });
    expect(second.state.stageIndex).toBe(2);
    expect(second.transitions[0]?.fromStage).toBe(1);
  });

  it("passes several step-limited stages when a late step arrives", () => {
    const stages: CurriculumStage[] = [
      { ratio: 0.5, until: { steps: 10 } },
      { ratio: 0.25, until: { steps: 20 } },
      { ratio: 0.1 },
    ];
    const { state, transitions } = observeCurriculum(stages, initialCurriculumState, { step: 25 });
    expect(transitions.map((t) => [t.fromStage, t.toStage, t.atStep])).toEqual([
      [0, 1, 10],
      [1, 2, 20],
    ]);
    expect(state).toMatchObject({ stageIndex: 2, stageStartStep: 20, lastStep: 25 });
  });

  it("ignores repeated and older observations (at-least-once delivery)", () => {
    const once = observeCurriculum(official, initialCurriculumState, { step: 100 });
    expect(once.transitions).toHaveLength(1);
    expect(observeCurriculum(official, once.state, { step: 100 })).toEqual({
      state: once.state,
      transitions: [],
    });
    expect(observeCurriculum(official, once.state, { step: 50 })).toEqual({
      state: once.state,
      transitions: [],
    });
  });

  it("finishes when the last stage's condition is met", () => {
    const stages: CurriculumStage[] = [
      { ratio: 0.5, until: { steps: 2 } },
      { ratio: 0.25, until: { steps: 4 } },
    ];
    const { state, transitions } = replayCurriculum(stages, [{ step: 2 }, { step: 4 }, { step: 6 }]);
    expect(transitions.map((t) => t.toStage)).toEqual([1, null]);
    expect(state.finished).toBe(true);
    expect(state.stageIndex).toBe(1);
  });

  it("validates stages, naming each bad field", () => {
    expect(() => validateCurriculum(official)).not.toThrow();
    let error: unknown;
    try {
      validateCurriculum([{ ratio: 2 }, { ratio: 0.5, until: { steps: 0 } }, { ratio: 0.1, until: {} }]);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InputError);
    expect((error as InputError).issues.map((issue) => issue.path)).toEqual([
      "augmentation.curriculum[0].ratio",
      "augmentation.curriculum[0].until",
      "augmentation.curriculum[1].until.steps",
      "augmentation.curriculum[2].until",
    ]);
  });
});
