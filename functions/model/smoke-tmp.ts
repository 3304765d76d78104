import { createEngine } from "./engine.ts";
import { createRng } from "./rng.ts";
const cfg = { vocabSize: 99, layers: 2, width: 128, heads: 4, maxSeqLen: 256 };
const rng = createRng(1);
const e = await createEngine({ config: cfg, rng, threads: 2 });
console.log("params", e.layout.total);
const B = 32, T = 129;
const samples = Array.from({ length: B }, () => {
  const tokens = Array.from({ length: T }, () => 3 + Math.floor(rng.next() * 96));
  return { tokens, lossMask: tokens.map((_, i) => (i > 10 ? 1 : 0)), advantages: tokens.map(() => rng.next() - 0.5), behaviourLogProbs: tokens.map(() => -4.6) };
});
let t0 = performance.now();
let m = await e.trainStep(samples, { lr: 1e-3 });
console.log("first (compile) ms", performance.now() - t0, m);
for (let rep = 0; rep < 3; rep++) {
  t0 = performance.now();
  const n = 5;
  for (let i = 0; i < n; i++) m = await e.trainStep(samples, { lr: 1e-3 });
  const dt = (performance.now() - t0) / n;
  console.log("train ms/step", dt.toFixed(1), "tok/s", ((B * (T - 1)) / dt * 1000).toFixed(0));
}
const prompts = Array.from({ length: 32 }, () => Array.from({ length: 20 }, () => 3 + Math.floor(rng.next() * 96)));
t0 = performance.now();
let g = await e.generate({ prompts, maxNewTokens: 100, rng, temperature: 1 });
console.log("gen compile+run ms", performance.now() - t0);
t0 = performance.now();
g = await e.generate({ prompts, maxNewTokens: 100, rng, temperature: 1 });
const dt = performance.now() - t0;
const ntok = g.reduce((s, r) => s + r.tokens.length, 0);
console.log("decode tok/s", (ntok / dt * 1000).toFixed(0), ntok);
await e.dispose();
