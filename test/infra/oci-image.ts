import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * Reads an OCI image layout the way the image tests compare it with its Dockerfile: the one image's
 * manifest, config and a listing of its layers (never by running docker).
 */
interface Descriptor {
  digest: string;
  annotations?: Record<string, string>;
}
export function ociImage(layout: string) {
  const blob = (descriptor: Descriptor) => join(layout, "blobs", ...descriptor.digest.split(":"));
  const json = <T>(descriptor: Descriptor): T => JSON.parse(readFileSync(blob(descriptor), "utf8")) as T;
  const manifest = () => {
    const top = JSON.parse(readFileSync(join(layout, "index.json"), "utf8")) as { manifests: Descriptor[] };
    const [only] = top.manifests;
    if (top.manifests.length !== 1 || !only) throw new Error(`expected one image in ${layout}`);
    return json<{ config: Descriptor; layers: Descriptor[] }>(only);
  };
  let listed: Map<string, { mode: string; owner: string; link?: string }> | undefined;
  /** `tar -tvz` of every layer: path → mode, uid/gid and link target (later layers win; none deletes) */
  const layerEntries = () => {
    if (listed) return listed;
    const entries = new Map<string, { mode: string; owner: string; link?: string }>();
    for (const layer of manifest().layers) {
      const listing = execFileSync("tar", ["--numeric-owner", "-tvzf", blob(layer)], {
        encoding: "utf8",
        maxBuffer: 1024 * 1024 * 1024,
      });
      for (const line of listing.split("\n")) {
        const match = /^(\S+)\s+(\d+\/\d+)\s+\d+\s+\S+\s+\S+\s+(.*?)(?: -> (.*))?$/.exec(line);
        if (!match) continue;
        const [, mode = "", owner = "", path = "", link] = match;
        const entry = link === undefined ? { mode, owner } : { mode, owner, link };
        entries.set(`/${path.replace(/^\.?\//, "").replace(/\/$/, "")}`, entry);
      }
    }
    listed = entries;
    return entries;
  };
  const config = () =>
    json<{
      config: { User?: string; WorkingDir?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[] };
    }>(manifest().config).config;
  return { blob, manifest, layerEntries, config };
}

/** every file under `path` (the path itself when it is a file) */
export function repoFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((entry) => repoFiles(join(path, entry)));
}
