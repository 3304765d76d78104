import { describe, expect, it, onTestFinished } from "vitest";
import { RunStatus } from "../functions/contracts/events.ts";
import { toBinaryMessage } from "../functions/runtime/cloudevents.ts";
import { cloudEvent } from "../functions/runtime/event-definition.ts";
import { MemoryBus } from "../functions/runtime/memory-bus.ts";
import { RunEventTracker } from "./run-events.ts";
import { emptyProgress, type RunProgress } from "./run-progress.ts";

const topic = "questa.team.demo.status";
const status = (step: number, kind: "step" | "finished") =>
  toBinaryMessage(
    cloudEvent({
      id: `demo:status:${kind}:${step}`,
      run: "demo",
      source: "learn",
      type: RunStatus.type,
      time: "2026-01-01T00:00:00.000Z",
      key: "demo",
      data: { run: "demo", kind, step, stage: 0, hintRatio: 0.5 },
    }),
  );

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("RunEventTracker", () => {
  it("a new leader's tracker sees what the old one folded but never wrote to .status", async () => {
    const bus = new MemoryBus();
    onTestFinished(() => bus.close());
    await bus.ensureTopics([{ name: topic, partitions: 2 }]);
    const source = (seed: RunProgress) => ({ bus, topics: [topic], groupId: "questa-operator.demo", seed });

    // the old leader folds steps 1-2 and the end of the run, then hands over before writing `.status`
    const old = new RunEventTracker(() => {});
    await old.ensure("team/demo", source(emptyProgress()));
    await bus.publish(topic, [status(1, "step"), status(2, "step"), status(2, "finished")]);
    await until("the old leader folded the end", () => old.progress("team/demo")?.finished === true);
    await old.stopAll();

    // the successor starts from the last written `.status` (step 1) and still sees the end
    const seed: RunProgress = { ...emptyProgress(), started: true, step: 1 };
    const successor = new RunEventTracker(() => {});
    onTestFinished(() => successor.stopAll());
    await successor.ensure("team/demo", source(seed));
    await until("the successor folded the end", () => successor.progress("team/demo")?.finished === true);
    expect(successor.progress("team/demo")).toMatchObject({ finished: true, step: 2 });
  });
});
