import { parentPort } from "node:worker_threads";
import { z } from "zod";
import { gradeResponse } from "./reward.ts";

/** one check sent by GraderPool */
export const GradeRequestSchema = z.object({
  id: z.number().int(),
  gold: z.string(),
  response: z.string(),
  scale: z.number().finite(),
  timeoutMs: z.number().positive(),
});
export type GradeRequest = z.infer<typeof GradeRequestSchema>;

const port = parentPort;
if (port) {
  port.on("message", (message: unknown) => {
    const parsed = GradeRequestSchema.safeParse(message);
    if (!parsed.success) {
      const id = typeof message === "object" && message !== null && "id" in message ? message.id : -1;
      port.postMessage({ id, error: `bad grade request: ${parsed.error.message}` });
      return;
    }
    const { id, gold, response, scale, timeoutMs } = parsed.data;
    port.postMessage({ id, result: gradeResponse(gold, response, { scale, timeoutMs }) });
  });
  port.postMessage({ ready: true });
}
