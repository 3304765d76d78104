// Test fixture for GraderPool: behaves like the grading worker, except that a check whose gold is
// "__hang__" spins forever, as a pathological check would without the pool's hard timeout.
import { parentPort } from "node:worker_threads";

parentPort.on("message", (message) => {
  if (message.gold === "__hang__") {
    for (;;) {
      // busy loop: only terminating the worker ends this
    }
  }
});

const { tsImport } = await import("tsx/esm/api");
await tsImport("./grader-worker.ts", import.meta.url);
