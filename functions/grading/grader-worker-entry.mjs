// Worker entry in plain JavaScript: Node 20 ignores `--import tsx` in a worker's execArgv, so the
// worker registers tsx itself and then loads the TypeScript worker module.
import { tsImport } from "tsx/esm/api";

const { serveGradeRequests } = await tsImport("./grader-worker.ts", import.meta.url);
serveGradeRequests();
