import { loadVerifierCases, verdictFor } from "./functions/grading/verifier-cases.ts";
const cases = loadVerifierCases("../shared/verifier-cases");
let agree = 0;
for (const c of cases) { const v = verdictFor(c); if (v === c.expected) agree++; else console.log("DISAGREE", c.id, c.expected, JSON.stringify(c.gold).slice(0,80), "|", JSON.stringify(c.pred).slice(0,100)); }
console.log(agree, cases.length);
