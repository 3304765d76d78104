import { parentPort, workerData } from "node:worker_threads";
import { z } from "zod";
import { GradingModeSchema } from "../contracts/grading-mode.ts";
import { warmComputeEngine } from "./compute-engine-parse.ts";
import { type GradeOptions, type GradeResult, gradeResponse } from "./reward.ts";

/** one check sent by GraderPool */
export const GradeRequestSchema = z.object({
  id: z.number().int().nonnegative(),
  gold: z.string(),
  response: z.string(),
  scale: z.number().finite(),
  mode: GradingModeSchema,
  timeoutMs: z.number().positive(),
});
export type GradeRequest = z.infer<typeof GradeRequestSchema>;

/** checks travel in batches to amortise messaging */
export const GradeBatchSchema = z.object({ batch: z.array(GradeRequestSchema) });

/**
 * Shared progress words the pool's watchdog reads without messages: which check runs now and
 * since when, so a stuck one is found and killed even while results are posted in groups.
 */
export const WorkerDataSchema = z.object({ progress: z.instanceof(SharedArrayBuffer), base: z.number() });
export const PROGRESS_CURRENT = 0;
export const PROGRESS_STARTED_MS = 1;
export const PROGRESS_WORDS = 2;
export const IDLE = -1;

/** results are posted when a batch ends or this often, whichever comes first */
const FLUSH_MS = 2;

type Grade = (gold: string, response: string, options: GradeOptions) => GradeResult;

/** serves grade batches on the parent port; `grade` is replaceable for tests */
export function serveGradeRequests(grade: Grade = gradeResponse): void {
  const port = parentPort;
  if (!port) throw new Error("serveGradeRequests must run in a worker thread");
  const data = WorkerDataSchema.parse(workerData);
  const progress = new Int32Array(data.progress);
  warmComputeEngine();
  port.on("message", (message: unknown) => {
    const parsed = GradeBatchSchema.safeParse(message);
    if (!parsed.success) {
      port.postMessage({ error: `bad grade batch: ${parsed.error.message}` });
      return;
    }
    let results: Array<{ id: number; result: GradeResult }> = [];
    let lastFlush = performance.now();
    for (const { id, gold, response, scale, mode, timeoutMs } of parsed.data.batch) {
      Atomics.store(progress, PROGRESS_STARTED_MS, Date.now() - data.base);
      Atomics.store(progress, PROGRESS_CURRENT, id);
      results.push({ id, result: grade(gold, response, { scale, mode, timeoutMs }) });
      if (performance.now() - lastFlush >= FLUSH_MS) {
        port.postMessage({ results });
        results = [];
        lastFlush = performance.now();
      }
    }
    Atomics.store(progress, PROGRESS_CURRENT, IDLE);
    if (results.length > 0) port.postMessage({ results });
  });
  port.postMessage({ ready: true });
}
