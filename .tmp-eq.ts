import { answersEqual } from "./functions/grading/equivalence.ts";
const pairs = process.argv.slice(2);
for (let i = 0; i + 1 < pairs.length; i += 2) console.log(pairs[i], "|", pairs[i+1], "=>", JSON.stringify(answersEqual(pairs[i]!, pairs[i+1]!)));
