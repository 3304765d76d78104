/**
 * Logits of questa's engine for given token sequences on a Hugging Face model folder, written as
 * safetensors (`logits.0`, `logits.1`, ... each [length, vocab]). The other half of
 * scripts/reference/check_hf_export.py, which computes the same with transformers and compares.
 *
 *   npx tsx scripts/model-logits.ts FOLDER SEQUENCES.json OUT.safetensors
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { createEngine } from "../functions/model/engine.ts";
import { readHuggingFaceFolder } from "../functions/model/hf-folder.ts";
import { encodeSafetensors } from "../functions/model/safetensors.ts";

const [folder, sequencesPath, outPath] = process.argv.slice(2);
if (folder === undefined || sequencesPath === undefined || outPath === undefined) {
  console.error("usage: tsx scripts/model-logits.ts FOLDER SEQUENCES.json OUT.safetensors");
  process.exit(2);
}
const sequences = z
  .array(z.array(z.int().min(0)).min(1))
  .parse(JSON.parse(await readFile(sequencesPath, "utf8")));
const model = await readHuggingFaceFolder(
  async (name) => {
    try {
      return new Uint8Array(await readFile(join(folder, name)));
    } catch {
      return undefined;
    }
  },
  { where: folder },
);
const engine = await createEngine({ config: model.config, params: model.params });
try {
  const logits = await engine.forwardLogits(sequences);
  const tensors = Object.fromEntries(
    logits.map((data, i) => [`logits.${i}`, { shape: [sequences[i]!.length, model.config.vocabSize], data }]),
  );
  await writeFile(outPath, encodeSafetensors(tensors));
} finally {
  await engine.dispose();
}
