import { execFileSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { finalImage, parseDockerfile } from "../../scripts/dockerfile.ts";
import { ociImage, repoFiles } from "../infra/oci-image.ts";

// The image the e2e test runs is built without docker (scripts/build-image.ts); the Dockerfile is
// the published build. Both must lay the image out alike: the entrypoint, user, working directory,
// environment and the files under /app, read from the Dockerfile (never by running docker) and
// from the built OCI layout's config and layers.

const root = join(import.meta.dirname, "..", "..");
const layout = inject("questaImageLayout");
const spec = finalImage(parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8")));

const image = ociImage(layout);
const { blob, manifest, layerEntries } = image;

describe("the image built without docker matches the Dockerfile", () => {
  it("has the Dockerfile's entrypoint, cmd, user, working directory and environment", () => {
    const config = image.config();
    expect(spec.entrypoint).toEqual(["node", "bin/questa.js"]);
    expect({
      user: config.User,
      workdir: config.WorkingDir,
      entrypoint: config.Entrypoint,
      cmd: config.Cmd,
    }).toEqual({ user: spec.user, workdir: spec.workdir, entrypoint: spec.entrypoint, cmd: spec.cmd });
    const env = Object.fromEntries(
      (config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]),
    );
    expect(env).toMatchObject(spec.env);
    // `node` resolves as in node:24-bookworm-slim, from /usr/local/bin
    expect(env.PATH?.split(":")).toContain("/usr/local/bin");
  });

  it("holds the files the Dockerfile copies under /app, the lock file's production packages and nothing else", () => {
    const entries = layerEntries();
    const appFiles = [...entries]
      .filter(([path, e]) => path.startsWith(`${spec.workdir}/`) && !e.mode.startsWith("d"))
      .map(([path]) => path)
      .filter((path) => !path.startsWith(`${spec.workdir}/node_modules/`));
    // expected: each COPY from the build context, with docker's rules (a directory's contents go to
    // the destination; files into a destination ending in /, else renamed to it)
    const expected: string[] = [];
    for (const copy of spec.copies.filter((c) => c.from === undefined)) {
      for (const source of copy.sources) {
        const from = join(root, source);
        for (const file of repoFiles(from)) {
          const rel = relative(from, file);
          const isDir = statSync(from).isDirectory();
          const target = copy.dest.endsWith("/")
            ? isDir
              ? `${copy.dest}${rel}`
              : `${copy.dest}${source.split("/").at(-1)}`
            : isDir
              ? `${copy.dest}/${rel}`
              : copy.dest;
          expected.push(target);
        }
      }
    }
    expect(appFiles.sort()).toEqual(expected.sort());

    // node_modules: the Dockerfile's `npm ci --omit=dev`, i.e. every non-dev package of the lock file
    const copiedModules = spec.copies.filter((c) => c.from !== undefined);
    expect(copiedModules.map((c) => c.dest)).toEqual([`${spec.workdir}/node_modules`]);
    const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; os?: string[]; cpu?: string[] }>;
    };
    const packages = Object.entries(lock.packages).filter(([path]) => path.startsWith("node_modules/"));
    const installable = (p: { os?: string[]; cpu?: string[] }) =>
      (p.os === undefined || p.os.includes("linux")) && (p.cpu === undefined || p.cpu.includes("x64"));
    for (const [path, info] of packages) {
      const present = entries.has(`${spec.workdir}/${path}/package.json`);
      expect(`${path} ${present ? "present" : "absent"}`).toBe(
        `${path} ${!info.dev && installable(info) ? "present" : "absent"}`,
      );
    }
  });

  it("runs as the Dockerfile's user, with node, and a root file system the pods cannot write", () => {
    const entries = layerEntries();
    const passwd = execFileSync(
      "tar",
      ["-xzOf", blob(manifest().layers[0] ?? { digest: "" }), "etc/passwd"],
      {
        encoding: "utf8",
      },
    );
    expect(passwd).toMatch(new RegExp(`^${spec.user}:x:1000:1000:`, "m"));
    expect(entries.get("/usr/local/bin/node")?.mode).toMatch(/^-rwxr-xr-x/);
    // everything under /app belongs to root and is writable by no one else (the pods run as 65532)
    const app = [...entries].filter(([path]) => path === spec.workdir || path.startsWith(`${spec.workdir}/`));
    expect(app.filter(([, e]) => e.owner !== "0/0").map(([p]) => p)).toEqual([]);
    expect(
      app.filter(([, e]) => /^.{5}w|^.{8}w/.test(e.mode) && !e.mode.startsWith("l")).map(([p]) => p),
    ).toEqual([]);
  });
});
