import { parseAnswer } from "./functions/grading/answer-structure.ts";
import { normalizeAnswer } from "./functions/grading/normalize.ts";
for (const s of process.argv.slice(2)) { console.log(JSON.stringify(normalizeAnswer(s))); console.log(JSON.stringify(parseAnswer(s))); }
