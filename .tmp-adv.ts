import { answersEqual, gradeResponse } from "./functions/grading/index.ts";
const cases: [string, string, string][] = [
  ["nest-paren", "1", "(".repeat(100000) + "1" + ")".repeat(100000)],
  ["nest-brace", "1", "\\boxed{" + "{".repeat(100000) + "1" + "}".repeat(100000) + "}"],
  ["nest-frac", "1", "\\boxed{" + "\\frac{1}{".repeat(3000) + "1" + "}".repeat(3000) + "}"],
  ["tower", "1", "\\boxed{10^{10^{10}}}"],
  ["tower2", "10^{10^{10}}", "\\boxed{10^{10^{10^{10}}}}"],
  ["tower-sym", "x", "\\boxed{x^{10^{10^{10}}}}"],
  ["fact", "1", "\\boxed{(10^{10})!}"],
  ["fact2", "1", "\\boxed{100000!}"],
  ["bigpow", "1", "\\boxed{99999999^{99999999}}"],
  ["bigint", "1", "\\boxed{" + "9".repeat(3900) + "}"],
  ["mega", "1", "a".repeat(1_000_000)],
  ["mega-boxed", "1", "\\boxed{".repeat(100000)],
  ["mega-answer", "1", "The answer is " + "1+".repeat(400000) + "1"],
  ["mega-dollar", "1", "$".repeat(999_999)],
  ["many-commas", "1", "\\boxed{" + "1,".repeat(1500) + "1}"],
  ["long-sum", "1", "\\boxed{" + "x+".repeat(1900) + "1}"],
  ["binom", "1", "\\boxed{\\binom{10^{9}}{5*10^{8}}}"],
  ["sqrt-nest", "1", "\\boxed{" + "\\sqrt{".repeat(100) + "2" + "}".repeat(100) + "}"],
  ["sin-pow", "1", "\\boxed{\\sin(10^{300})^{10^{300}}}"],
  ["gold-huge", "9".repeat(5000), "\\boxed{1}"],
  ["relation-chain", "1", "\\boxed{" + "1=".repeat(1000) + "1}"],
  ["matrix", "1", "\\boxed{\\begin{pmatrix}" + "1&".repeat(1000) + "1\\end{pmatrix}}"],
  ["pm", "1", "\\boxed{" + "1\\pm ".repeat(500) + "1}"],
];
for (const [name, gold, resp] of cases.filter(c => !process.argv[2] || c[0] === process.argv[2])) {
  const t = performance.now();
  const r = gradeResponse(gold, resp);
  console.log(name.padEnd(15), (performance.now() - t).toFixed(1).padStart(8), "ms", JSON.stringify(r).slice(0, 150));
}
