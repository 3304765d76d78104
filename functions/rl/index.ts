export { type AdvantageMode, computeAdvantages } from "./advantages.ts";
export { type GroupFilterBounds, type GroupVerdict, judgeGroup } from "./group-filter.ts";
export {
  type BenchmarkScores,
  bootstrapInterval,
  majorityCorrect,
  type ProblemSamples,
  passAtK,
  scoreBenchmark,
} from "./pass-at-k.ts";
