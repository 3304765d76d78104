import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildTorchImage } from "../../scripts/build-image.ts";
import { finalImage, parseDockerfile } from "../../scripts/dockerfile.ts";
import { ociImage, repoFiles } from "../infra/oci-image.ts";

// Dockerfile.torch is the torch learner's published image (the questa image plus Python 3.11, the
// learner's venv and torch-learner/); scripts/build-image.ts --torch lays the same image out
// without docker. Here, in the scale project (a ~5 GB layer), the two must agree: config, user,
// environment, torch-learner/, the interpreter and every package the lock pins.

const root = join(import.meta.dirname, "..", "..");

describe("the learner image built without docker matches Dockerfile.torch", () => {
  const outDir = mkdtempSync(join(tmpdir(), "questa-torch-image-"));
  afterAll(() => rmSync(outDir, { recursive: true, force: true }));
  let torch: ReturnType<typeof ociImage>;
  const spec = finalImage(parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8")));
  const torchSpec = finalImage(parseDockerfile(readFileSync(join(root, "Dockerfile.torch"), "utf8")));

  beforeAll(() => {
    // the venv layer (~5 GB, cached by the lock's hash) takes minutes the first time
    torch = ociImage(buildTorchImage(outDir).layout);
  }, 900_000);

  it("is the questa image's entrypoint and environment with QUESTA_TORCH_PYTHON, as its user", () => {
    const config = torch.config();
    const env = Object.fromEntries(
      (config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    );
    expect(torchSpec.env).toEqual({ QUESTA_TORCH_PYTHON: "/opt/questa-learner/bin/python" });
    expect(env).toMatchObject({ ...spec.env, ...torchSpec.env });
    expect({ user: config.User, workdir: config.WorkingDir, entrypoint: config.Entrypoint }).toEqual({
      user: torchSpec.user,
      workdir: torchSpec.workdir,
      entrypoint: spec.entrypoint,
    });
  });

  it("holds torch-learner/, Debian's python3.11 and the venv of every package the lock pins", () => {
    const entries = torch.layerEntries();
    const learnerFiles = [...entries]
      .filter(([path, e]) => path.startsWith("/app/torch-learner/") && !e.mode.startsWith("d"))
      .map(([path]) => path);
    const repoLearner = join(root, "torch-learner");
    expect(learnerFiles.sort()).toEqual(
      repoFiles(repoLearner)
        .map((f) => `/app/torch-learner/${relative(repoLearner, f)}`)
        .sort(),
    );
    // the venv's python is Debian's interpreter, as `python3.11 -m venv` links it
    expect(entries.get("/usr/bin/python3.11")?.mode).toMatch(/^-rwxr-xr-x/);
    expect(entries.get("/opt/questa-learner/bin/python3.11")?.link).toBe("/usr/bin/python3.11");
    expect(entries.has("/opt/questa-learner/pyvenv.cfg")).toBe(true);
    const lock = readFileSync(join(root, "scripts", "reference", "requirements-learner.lock"), "utf8");
    const pinned = [...lock.matchAll(/^([A-Za-z0-9_.-]+)==(\S+)/gm)].map(
      ([, name = "", version = ""]) => `${name.toLowerCase().replace(/[-_.]+/g, "_")}-${version}`,
    );
    const site = "/opt/questa-learner/lib/python3.11/site-packages/";
    const installed = new Set(
      [...entries.keys()]
        .filter((p) => p.startsWith(site) && p.endsWith(".dist-info"))
        .map((p) => p.slice(site.length, -".dist-info".length).toLowerCase().replace(/[-.]+/g, "_")),
    );
    expect(pinned.length).toBeGreaterThan(10);
    expect(pinned.filter((p) => !installed.has(p.replace(/[-.]+/g, "_")))).toEqual([]);
    // like /app, nothing the pods could write
    const written = [...entries].filter(
      ([path, e]) =>
        (path.startsWith("/opt/") || path.startsWith("/app/")) &&
        /^.{5}w|^.{8}w/.test(e.mode) &&
        !e.mode.startsWith("l"),
    );
    expect(written.map(([p]) => p)).toEqual([]);
  });
});
