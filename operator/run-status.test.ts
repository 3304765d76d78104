import { describe, expect, it } from "vitest";
import { emptyProgress, type RunProgress } from "./run-progress.ts";
import { deriveStatus, type StatusInput } from "./run-status.ts";

const t0 = Date.parse("2026-01-01T00:00:00.000Z");
const base = (over: Partial<StatusInput> = {}): StatusInput => ({
  generation: 1,
  previous: undefined,
  suspend: false,
  progress: emptyProgress(),
  now: t0,
  ...over,
});
const started: RunProgress = { ...emptyProgress(), started: true, step: 3 };

describe("deriveStatus", () => {
  it("a new run is Pending with conditions carrying observedGeneration, and reports the transition", () => {
    const result = deriveStatus(base());
    expect(result.status.phase).toBe("Pending");
    expect(result.status.startTime).toBe("2026-01-01T00:00:00.000Z");
    expect(result.status.conditions?.map((c) => [c.type, c.status, c.reason, c.observedGeneration])).toEqual([
      ["Ready", "True", "WaitingForWorkers", 1],
      ["Suspended", "False", "Resumed", 1],
      ["Complete", "False", "NotFinished", 1],
      ["Failed", "False", "NoFailure", 1],
    ]);
    expect(result.transition).toMatchObject({ from: undefined, to: "Pending", type: "Normal" });
  });

  it("goes Running on the first event and keeps lastTransitionTime for unchanged conditions", () => {
    const pending = deriveStatus(base()).status;
    const running = deriveStatus(
      base({ previous: pending, progress: started, now: t0 + 5000, generation: 2 }),
    );
    expect(running.status.phase).toBe("Running");
    expect(running.status.step).toBe(3);
    const ready = running.status.conditions?.find((c) => c.type === "Ready");
    expect(ready).toMatchObject({ status: "True", reason: "Training", observedGeneration: 2 });
    expect(ready?.lastTransitionTime).toBe("2026-01-01T00:00:00.000Z");
    expect(running.transition?.to).toBe("Running");
    const again = deriveStatus(
      base({ previous: running.status, progress: started, now: t0 + 9000, generation: 2 }),
    );
    expect(again.transition).toBeUndefined();
    expect(again.status).toEqual(running.status);
  });

  it("suspend stops the deadline clock; resume restarts it and is reported as Resumed", () => {
    const running = deriveStatus(base({ progress: started, activeDeadlineSeconds: 10 })).status;
    const suspended = deriveStatus(
      base({
        previous: running,
        suspend: true,
        progress: started,
        now: t0 + 60_000,
        activeDeadlineSeconds: 10,
      }),
    );
    expect(suspended.status.phase).toBe("Suspended");
    expect(suspended.status.startTime).toBeUndefined();
    expect(suspended.deadlineInMs).toBeUndefined();
    const resumed = deriveStatus(
      base({ previous: suspended.status, progress: started, now: t0 + 70_000, activeDeadlineSeconds: 10 }),
    );
    expect(resumed.status.phase).toBe("Running");
    expect(resumed.transition).toMatchObject({ from: "Suspended", to: "Running", reason: "Resumed" });
    expect(resumed.deadlineInMs).toBe(10_000);
  });

  it("fails with DeadlineExceeded once activeDeadlineSeconds has passed, and stays failed", () => {
    const running = deriveStatus(base({ progress: started, activeDeadlineSeconds: 10 }));
    expect(running.deadlineInMs).toBe(10_000);
    const late = deriveStatus(
      base({ previous: running.status, progress: started, now: t0 + 10_000, activeDeadlineSeconds: 10 }),
    );
    expect(late.status.phase).toBe("Failed");
    expect(late.transition).toMatchObject({ to: "Failed", type: "Warning", reason: "DeadlineExceeded" });
    expect(late.status.conditions?.find((c) => c.type === "Failed")).toMatchObject({
      status: "True",
      reason: "DeadlineExceeded",
    });
    expect(late.status.completionTime).toBe("2026-01-01T00:00:10.000Z");
    const later = deriveStatus(
      base({
        previous: late.status,
        progress: { ...started, finished: true },
        now: t0 + 99_000,
        suspend: true,
      }),
    );
    expect(later.status.phase).toBe("Failed");
    expect(later.status.completionTime).toBe("2026-01-01T00:00:10.000Z");
    expect(later.transition).toBeUndefined();
  });

  it("reports success, run failures and invalid specs", () => {
    expect(deriveStatus(base({ progress: { ...started, finished: true } })).status.phase).toBe("Succeeded");
    const failed = deriveStatus(base({ progress: { ...started, failed: true, message: "nan loss" } }));
    expect(failed.status.conditions?.find((c) => c.type === "Failed")).toMatchObject({
      reason: "RunFailed",
      message: "nan loss",
    });
    const invalid = deriveStatus(base({ invalidSpec: "spec.rollout.groupSize: too small" }));
    expect(invalid.status.phase).toBe("Failed");
    expect(invalid.transition).toMatchObject({
      reason: "InvalidSpec",
      message: "spec.rollout.groupSize: too small",
    });
    // unlike other failures, a fixed spec starts the run
    const fixed = deriveStatus(base({ previous: invalid.status, generation: 2, now: t0 + 1000 }));
    expect(fixed.status.phase).toBe("Pending");
    expect(fixed.status.completionTime).toBeUndefined();
    expect(fixed.status.startTime).toBe("2026-01-01T00:00:01.000Z");
    const stillInvalid = deriveStatus(
      base({ previous: invalid.status, invalidSpec: "still bad", now: t0 + 1000 }),
    );
    expect(stillInvalid.status.phase).toBe("Failed");
  });
});
