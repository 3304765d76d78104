import { GraderPool } from "./functions/grading/index.ts";
const pool = new GraderPool({ size: 2 });
const t = performance.now();
const rs = await Promise.all([pool.grade("4", "so \\boxed{4}"), pool.grade("1/2", "The answer is 0.5"), pool.grade("3", "nothing")]);
console.log(rs, performance.now() - t);
await pool.close();
