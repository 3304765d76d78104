import { z } from "zod";

/**
 * The subset of Dockerfile syntax the project's Dockerfile uses (ARG, FROM … AS, WORKDIR, ENV,
 * COPY [--from=stage], RUN, USER, ENTRYPOINT/CMD in exec form), read without docker: the
 * registry-free image build (scripts/build-image.ts) lays its image out from it, and a test compares
 * the built image with it.
 */

export interface Instruction {
  keyword: string;
  /** the arguments, continuation lines joined, comment lines inside a continuation dropped */
  rest: string;
}

export interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

export interface CopyInstruction {
  /** a build stage, or undefined for the build context */
  from: string | undefined;
  sources: string[];
  /** absolute path in the image */
  dest: string;
}

export interface ImageSpec {
  user: string;
  workdir: string;
  env: Record<string, string>;
  entrypoint: string[];
  cmd: string[];
  copies: CopyInstruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    // a comment line is dropped even in the middle of a continuation, as docker does
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    const continued = line.endsWith("\\");
    pending += `${continued ? line.slice(0, -1) : line} `;
    if (continued) continue;
    const joined = pending.trim();
    pending = "";
    if (joined === "") continue;
    const space = joined.search(/\s/);
    instructions.push({
      keyword: (space < 0 ? joined : joined.slice(0, space)).toUpperCase(),
      rest: space < 0 ? "" : joined.slice(space + 1).trim(),
    });
  }
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [from = "", as, name] = instruction.rest.split(/\s+/);
      stages.push({ from, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

const execForm = z.array(z.string());

/** `KEY=value KEY2="quoted value"` (the only ENV form the Dockerfile uses) */
function parseEnv(rest: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const match of rest.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const [, key = "", value = ""] = match;
    env[key] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return env;
}

const resolvePath = (workdir: string, path: string): string => {
  const joined = path.startsWith("/") ? path : `${workdir.replace(/\/$/, "")}/${path}`;
  const parts: string[] = [];
  for (const part of joined.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return `/${parts.join("/")}${path.endsWith("/") && parts.length > 0 ? "/" : ""}`;
};

/** What the final stage declares: user, working directory, environment, entrypoint and copies. */
export function finalImage(stages: Stage[]): ImageSpec {
  const final = stages.at(-1);
  if (!final) throw new Error("Dockerfile has no FROM");
  const spec: ImageSpec = { user: "root", workdir: "/", env: {}, entrypoint: [], cmd: [], copies: [] };
  for (const { keyword, rest } of final.instructions) {
    switch (keyword) {
      case "WORKDIR":
        spec.workdir = resolvePath(spec.workdir, rest).replace(/(.)\/$/, "$1");
        break;
      case "ENV":
        Object.assign(spec.env, parseEnv(rest));
        break;
      case "USER":
        spec.user = rest;
        break;
      case "ENTRYPOINT":
        spec.entrypoint = execForm.parse(JSON.parse(rest));
        break;
      case "CMD":
        spec.cmd = execForm.parse(JSON.parse(rest));
        break;
      case "COPY": {
        const words = rest.split(/\s+/);
        const flags = words.filter((w) => w.startsWith("--"));
        const paths = words.filter((w) => !w.startsWith("--"));
        const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
        const dest = paths.pop();
        if (dest === undefined || paths.length === 0)
          throw new Error(`COPY needs a source and a destination: ${rest}`);
        spec.copies.push({ from, sources: paths, dest: resolvePath(spec.workdir, dest) });
        break;
      }
      case "ARG":
      case "RUN":
      case "LABEL":
      case "EXPOSE":
        break;
      default:
        throw new Error(`scripts/dockerfile.ts does not handle ${keyword} in the final stage`);
    }
  }
  return spec;
}

/**
 * Where a COPY puts one source: `COPY a b ./` puts files a and b into the directory; `COPY dir ./dir`
 * puts dir's contents at ./dir; `COPY file ./file` renames. Returns the target of `source`.
 */
export function copyTarget(copy: CopyInstruction, source: string, sourceIsDir: boolean): string {
  const base = source.replace(/\/$/, "").split("/").at(-1) ?? source;
  if (copy.dest.endsWith("/")) return sourceIsDir ? copy.dest.replace(/\/$/, "") : `${copy.dest}${base}`;
  return copy.dest;
}
