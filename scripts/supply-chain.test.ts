import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..");
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8");

describe("the image's supply chain", () => {
  it("builds on a Node 24 base pinned by digest, in every stage", () => {
    const base = /^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)?.[1] ?? "";
    expect(base).toMatch(/^node:24[-.\w]*@sha256:[0-9a-f]{64}$/);
    const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(froms.length).toBeGreaterThan(0);
    // the one pinned base, through the build argument
    for (const from of froms) expect(from).toBe(["$", "{NODE_IMAGE}"].join(""));
  });

  it("honours .npmrc in every install: no onnxruntime download from outside the registry", () => {
    // no install script of a dependency runs (a key npm knows, so npm prints no warning about it)
    expect(readFileSync(join(root, ".npmrc"), "utf8")).toMatch(/^ignore-scripts=true$/m);
    const lines = dockerfile.split("\n");
    const copiesNpmrc = lines.findIndex((l) => /^COPY .*\.npmrc/.test(l));
    const installs = lines.flatMap((l, i) => (/\bnpm (ci|install)\b/.test(l) && /^RUN /.test(l) ? [i] : []));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs) expect(copiesNpmrc).toBeLessThan(install);
    expect(dockerfile).toMatch(/^ENV ONNXRUNTIME_NODE_INSTALL=skip$/m);
    expect(readFileSync(join(root, "scripts", "ensure-install.mjs"), "utf8")).toContain(
      'ONNXRUNTIME_NODE_INSTALL: "skip"',
    );
  });
});
