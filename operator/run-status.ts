import type { Condition, Phase, QuestATrainingStatus } from "../functions/contracts/questatraining.ts";
import { latestPassAt1, type RunProgress } from "./run-progress.ts";

export const Reason = {
  invalidSpec: "InvalidSpec",
  runFailed: "RunFailed",
  learnerFailed: "LearnerFailed",
  runFinished: "RunFinished",
  deadlineExceeded: "DeadlineExceeded",
  suspended: "Suspended",
  training: "Training",
  waitingForWorkers: "WaitingForWorkers",
  resumed: "Resumed",
  conflict: "Conflict",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export interface StatusInput {
  generation: number;
  previous: QuestATrainingStatus | undefined;
  suspend: boolean;
  activeDeadlineSeconds?: number | undefined;
  /** set when the spec failed validation: the message lists every problem with its path */
  invalidSpec?: string | undefined;
  progress: RunProgress;
  now: number;
  /** a workload of the run failed for good (the torch learner's job): the run fails with this message */
  workloadFailure?: { reason: Reason; message: string } | undefined;
  /** the run cannot go on until a user acts (e.g. an object in the way): Ready is False, the phase Pending */
  blocked?: { reason: Reason; message: string } | undefined;
  /** further conditions, after the standard ones (e.g. Conflict, KafkaReady) */
  notes?: readonly ConditionNote[] | undefined;
}

/** a condition besides Ready, Suspended, Complete and Failed */
export interface ConditionNote {
  type: string;
  holds: boolean;
  reason: string;
  message: string;
}

export interface PhaseTransition {
  from: Phase | undefined;
  to: Phase;
  type: "Normal" | "Warning";
  reason: Reason;
  message: string;
}

export interface StatusResult {
  status: QuestATrainingStatus;
  transition?: PhaseTransition | undefined;
  /** milliseconds until activeDeadlineSeconds runs out, when a deadline is pending */
  deadlineInMs?: number | undefined;
}

const TERMINAL: ReadonlySet<Phase> = new Set(["Succeeded", "Failed"]);
export const isTerminal = (phase: Phase | undefined): boolean => phase !== undefined && TERMINAL.has(phase);

function decidePhase(
  input: StatusInput,
  startTime: number | undefined,
): { phase: Phase; reason: Reason; message: string } {
  const previous = input.previous;
  const failed = previous?.conditions?.find((c) => c.type === "Failed" && c.status === "True");
  // an invalid spec is the one failure a user can fix: a corrected spec starts the run
  const fixable = failed?.reason === Reason.invalidSpec && input.invalidSpec === undefined;
  if (previous?.phase && isTerminal(previous.phase) && !fixable) {
    const complete = previous.conditions?.find((c) => c.type === "Complete" && c.status === "True");
    const kept = failed ?? complete;
    return {
      phase: previous.phase,
      reason:
        (kept?.reason as Reason | undefined) ??
        (previous.phase === "Failed" ? Reason.runFailed : Reason.runFinished),
      message: kept?.message ?? "",
    };
  }
  if (input.invalidSpec !== undefined)
    return { phase: "Failed", reason: Reason.invalidSpec, message: input.invalidSpec };
  if (input.workloadFailure) return { phase: "Failed", ...input.workloadFailure };
  if (input.progress.failed) {
    return { phase: "Failed", reason: Reason.runFailed, message: input.progress.message ?? "the run failed" };
  }
  if (input.progress.finished) {
    return {
      phase: "Succeeded",
      reason: Reason.runFinished,
      message: `finished at step ${input.progress.step ?? 0}`,
    };
  }
  if (input.activeDeadlineSeconds !== undefined && startTime !== undefined && !input.suspend) {
    if (input.now - startTime >= input.activeDeadlineSeconds * 1000) {
      return {
        phase: "Failed",
        reason: Reason.deadlineExceeded,
        message: `the run was active longer than activeDeadlineSeconds (${input.activeDeadlineSeconds})`,
      };
    }
  }
  if (input.blocked && !input.suspend) return { phase: "Pending", ...input.blocked };
  if (input.suspend)
    return {
      phase: "Suspended",
      reason: Reason.suspended,
      message: "spec.suspend is true: workloads scaled to zero",
    };
  if (input.progress.started) {
    return {
      phase: "Running",
      reason: Reason.training,
      message: `training at step ${input.progress.step ?? 0}`,
    };
  }
  return {
    phase: "Pending",
    reason: Reason.waitingForWorkers,
    message: "workloads created; waiting for the run to start",
  };
}

function condition(
  previous: readonly Condition[] | undefined,
  type: string,
  holds: boolean,
  reason: string,
  message: string,
  generation: number,
  now: string,
): Condition {
  const status = holds ? "True" : "False";
  const before = previous?.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status ? before.lastTransitionTime : now;
  return { type, status, reason, message, observedGeneration: generation, lastTransitionTime };
}

/** Derives the whole status from the spec, the folded events and the clock (pure). */
export function deriveStatus(input: StatusInput): StatusResult {
  const previous = input.previous;
  const nowIso = new Date(input.now).toISOString();
  const restarting = previous?.phase === "Failed" && input.invalidSpec === undefined;
  const previousStart = previous?.startTime && !restarting ? Date.parse(previous.startTime) : undefined;
  // like a Job, the deadline clock runs only while the run is not suspended, and restarts on resume
  const startTime = input.suspend ? undefined : (previousStart ?? input.now);
  const decided = decidePhase(input, startTime);
  const { phase, reason, message } = decided;
  const terminal = isTerminal(phase);
  const progress = input.progress;

  const status: QuestATrainingStatus = { phase, observedGeneration: input.generation };
  const conditions = previous?.conditions;
  const active = (phase === "Pending" || phase === "Running") && !(input.blocked && !terminal);
  status.conditions = [
    condition(conditions, "Ready", active, reason, message, input.generation, nowIso),
    condition(
      conditions,
      "Suspended",
      phase === "Suspended",
      phase === "Suspended" ? Reason.suspended : Reason.resumed,
      phase === "Suspended" ? message : "spec.suspend is false",
      input.generation,
      nowIso,
    ),
    condition(
      conditions,
      "Complete",
      phase === "Succeeded",
      phase === "Succeeded" ? reason : "NotFinished",
      phase === "Succeeded" ? message : "",
      input.generation,
      nowIso,
    ),
    condition(
      conditions,
      "Failed",
      phase === "Failed",
      phase === "Failed" ? reason : "NoFailure",
      phase === "Failed" ? message : "",
      input.generation,
      nowIso,
    ),
    ...(input.notes ?? []).map((note) =>
      condition(conditions, note.type, note.holds, note.reason, note.message, input.generation, nowIso),
    ),
  ];
  if (progress.stage !== undefined) status.stage = progress.stage;
  if (progress.hintRatio !== undefined) status.hintRatio = progress.hintRatio;
  if (progress.step !== undefined) status.step = progress.step;
  if (progress.latestCheckpoint) status.latestCheckpoint = progress.latestCheckpoint;
  if (Object.keys(progress.latestEvaluation).length > 0) status.latestEvaluation = progress.latestEvaluation;
  const passAt1 = latestPassAt1(progress);
  if (passAt1 !== undefined) status.passAt1 = passAt1;
  if (terminal) {
    if (previous?.startTime) status.startTime = previous.startTime;
    status.completionTime = (isTerminal(previous?.phase) ? previous?.completionTime : undefined) ?? nowIso;
  } else if (startTime !== undefined) {
    status.startTime = new Date(startTime).toISOString();
  }

  const result: StatusResult = { status };
  if (previous?.phase !== phase) {
    result.transition = {
      from: previous?.phase,
      to: phase,
      type: phase === "Failed" ? "Warning" : "Normal",
      reason: previous?.phase === "Suspended" && phase !== "Suspended" && !terminal ? Reason.resumed : reason,
      message,
    };
  }
  if (!terminal && startTime !== undefined && input.activeDeadlineSeconds !== undefined) {
    result.deadlineInMs = Math.max(0, startTime + input.activeDeadlineSeconds * 1000 - input.now);
  }
  return result;
}
