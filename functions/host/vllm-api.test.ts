import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

describe("vLLM's HTTP API", () => {
  // the rule of one module per external system (.dependency-cruiser.mjs) for a system reached over
  // HTTP rather than through a package: its routes appear in vllm-api.ts alone
  it("is spoken by functions/host/vllm-api.ts alone", async () => {
    const routes = [
      "/v1/completions",
      "/collective_rpc",
      "/update_weight_version",
      "/weight_info",
      "/pause?",
    ];
    const speakers: string[] = [];
    for (const folder of ["functions", "cli", "operator"]) {
      for (const file of await sources(join(root, folder))) {
        const text = await readFile(file, "utf8");
        if (routes.some((route) => text.includes(`"${route}`) || text.includes(`\`${route}`)))
          speakers.push(relative(root, file));
      }
    }
    expect(speakers).toEqual(["functions/host/vllm-api.ts"]);
  });
});
