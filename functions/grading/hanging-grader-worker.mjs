// Test fixture for GraderPool: the real worker loop, except that a check whose gold is "__hang__"
// spins forever, as a pathological check would without the pool's hard timeout.
import { tsImport } from "tsx/esm/api";

const { serveGradeRequests } = await tsImport("./grader-worker.ts", import.meta.url);
const { gradeResponse } = await tsImport("./reward.ts", import.meta.url);

serveGradeRequests((gold, response, options) => {
  if (gold === "__hang__") {
    for (;;) {
      // busy loop: only terminating the worker ends this
    }
  }
  return gradeResponse(gold, response, options);
});
