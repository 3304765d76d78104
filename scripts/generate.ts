// Writes every generated file (CRD, chart CRD, JSON Schemas) from the zod contracts.
// `npm run generate`; a test fails when the checked-in files drift from this output.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { generatedFiles } from "../functions/contracts/generated-files.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const [path, content] of generatedFiles()) {
  const target = join(root, path);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, content);
  process.stdout.write(`wrote ${path}\n`);
}
