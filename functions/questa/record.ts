import { z } from "zod";
import { keySegment } from "../runtime/object-key.ts";
import { sha256Hex } from "../runtime/sha256.ts";

/** One training or evaluation problem after reading, whatever file format it came from. */
export const MathRecordSchema = z.object({
  /** stable: `<source>-<hash of source and normalised problem>` */
  id: z.string().min(1),
  /** dataset name, e.g. `aime24`, `openr1` */
  source: z.string().min(1),
  problem: z.string().min(1),
  /** the final answer as text (AIME integers without zero padding) */
  answer: z.string().min(1),
  /** reference solution; for R1 generations, the text after the last `</think>` */
  solution: z.string().optional(),
});
export type MathRecord = z.infer<typeof MathRecordSchema>;

/**
 * The problem text used for identity and overlap checks: Unicode NFKC, whitespace runs collapsed to
 * one space, trimmed. Formatting noise (trailing newlines, double spaces) must not change an id.
 */
export function normaliseProblemText(problem: string): string {
  return problem.normalize("NFKC").replace(/\s+/g, " ").trim();
}

/** Stable record id: the same source and problem give the same id on every machine and run. */
export function recordId(source: string, problem: string): string {
  const digest = sha256Hex(`${source}\u0000${normaliseProblemText(problem)}`);
  return `${keySegment(source)}-${digest.slice(0, 20)}`;
}
