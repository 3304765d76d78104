import { DeadLetter } from "../runtime/dead-letter.ts";
import type { EventDefinition } from "../runtime/event-definition.ts";
import {
  CheckpointPublished,
  CurriculumStageChanged,
  EvaluationResult,
  QuestionAugmented,
  RolloutGroup,
  RunStatus,
} from "./events.ts";

/** Every event type of a run, by CloudEvents type. */
export const ALL_EVENTS: readonly EventDefinition[] = [
  QuestionAugmented,
  RolloutGroup,
  CheckpointPublished,
  EvaluationResult,
  RunStatus,
  CurriculumStageChanged,
  DeadLetter,
] as EventDefinition[];

/** the CloudEvents types of ALL_EVENTS: what a function may meet on a run's topics */
export const KNOWN_EVENT_TYPES: ReadonlySet<string> = new Set(ALL_EVENTS.map((d) => d.type));

export function eventDefinition(type: string): EventDefinition | undefined {
  return ALL_EVENTS.find((d) => d.type === type);
}
