/**
 * Copies a Hugging Face model folder out of an object store into a local directory, as it is (no
 * conversion): what a vLLM server loads at start (the operator's init container runs
 * `questa model fetch s3://BUCKET/PREFIX /models/initial`). The directory appears only complete.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { InputError, type InputIssue } from "../functions/runtime/errors.ts";
import type { ObjectStore } from "../functions/runtime/object-store.ts";

/** the top-level files a server reads: config, tokenizer and generation files, and safetensors weights */
const SERVED_FILE = /^[^/]+\.(json|jinja|txt|model|tiktoken|safetensors)$/;
const INDEX_FILE = "model.safetensors.index.json";

const IndexSchema = z.object({ weight_map: z.record(z.string(), z.string()) });

export interface CopiedFolder {
  /** false when the directory was already there (copied before) */
  copied: boolean;
  files: number;
  bytes: number;
}

/** absent or empty: copy; holding config.json: a finished copy (they are renamed into place whole) */
async function destinationState(dir: string): Promise<"free" | "copied"> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return [] as string[];
    throw error;
  });
  if (entries.includes("config.json")) return "copied";
  if (entries.length === 0) return "free";
  throw new InputError("model.fetch_target_exists", [
    {
      path: dir,
      message: "exists and holds something else than a model folder",
      hint: "give an empty or new DIR",
    },
  ]);
}

/** which files to copy, or every problem with the folder (missing config or weights) */
async function filesToCopy(source: ObjectStore, where: string): Promise<string[]> {
  const keys = (await source.list("")).map((o) => o.key).filter((key) => SERVED_FILE.test(key));
  const issues: InputIssue[] = [];
  const missing = (message: string, hint: string) => issues.push({ path: where, message, hint });
  if (!keys.includes("config.json")) {
    missing("no config.json", "point model.uri at a Hugging Face model folder");
  }
  if (!keys.includes("tokenizer.json") && !keys.includes("tokenizer.model")) {
    missing("no tokenizer.json (or tokenizer.model)", "copy the tokenizer files into the folder");
  }
  const indexBytes = keys.includes(INDEX_FILE) ? await source.get(INDEX_FILE) : undefined;
  if (indexBytes !== undefined) {
    let index: z.infer<typeof IndexSchema> | undefined;
    try {
      const parsed = IndexSchema.safeParse(JSON.parse(new TextDecoder().decode(indexBytes)));
      if (parsed.success) index = parsed.data;
    } catch {
      // reported below
    }
    if (index === undefined) {
      missing(`${INDEX_FILE} is not a safetensors index (a weight_map of tensor -> file)`, "restore it");
    } else {
      for (const shard of [...new Set(Object.values(index.weight_map))].sort()) {
        if (!keys.includes(shard)) {
          missing(`${shard} is missing (listed in ${INDEX_FILE})`, "copy every shard of the model");
        }
      }
    }
  } else if (!keys.includes("model.safetensors")) {
    missing(
      "no weights: neither model.safetensors nor model.safetensors.index.json",
      "save the model with safe_serialization (safetensors)",
    );
  }
  if (issues.length > 0) throw new InputError("model.invalid_folder", issues);
  return keys;
}

/** copies the folder at `source` (named `where` in messages) into `dir`, unless a copy is there */
export async function copyModelFolder(
  source: ObjectStore,
  where: string,
  dir: string,
): Promise<CopiedFolder> {
  if ((await destinationState(dir)) === "copied") return { copied: false, files: 0, bytes: 0 };
  const keys = await filesToCopy(source, where);
  const partial = `${dir}.partial-${randomBytes(4).toString("hex")}`;
  await mkdir(partial, { recursive: true });
  let bytes = 0;
  try {
    for (const key of keys) {
      const body = await source.get(key);
      if (body === undefined) {
        throw new InputError("model.invalid_folder", [
          { path: `${where}/${key}`, message: "disappeared while the folder was copied", hint: "copy again" },
        ]);
      }
      await writeFile(join(partial, key), body);
      bytes += body.byteLength;
    }
    await mkdir(dirname(dir), { recursive: true });
    // an empty directory at dir gives way to the copy
    await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "ENOENT") throw error;
    });
    await rename(partial, dir);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    throw error;
  }
  return { copied: true, files: keys.length, bytes };
}
