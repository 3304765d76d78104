// Test fixture for GraderPool: grades like the real worker, except that a check whose gold is
// "__hang__" spins forever, as a pathological check would without the pool's hard timeout.
import { parentPort } from "node:worker_threads";
import { tsImport } from "tsx/esm/api";

const { gradeResponse } = await tsImport("./reward.ts", import.meta.url);

parentPort.on("message", (message) => {
  if (message.gold === "__hang__") {
    for (;;) {
      // busy loop: only terminating the worker ends this
    }
  }
  const { id, gold, response, scale, timeoutMs } = message;
  parentPort.postMessage({ id, result: gradeResponse(gold, response, { scale, timeoutMs }) });
});

parentPort.postMessage({ ready: true });
