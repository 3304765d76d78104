import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import {
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { type FileHandle, fsyncDirectory, isErrno, readOpened, writeDurableTemp } from "./atomic-file.ts";
import { DeadLetterError, InputError } from "./errors.ts";
import { assertObjectKey, objectKeyProblem } from "./object-key.ts";
import type { ObjectInfo, ObjectStore, PutOptions, PutResult } from "./object-store.ts";
import { sha256Hex } from "./sha256.ts";

/** first key segment reserved for the store's own temp files and checksum cache */
export const reservedKeyPrefix = ".questa/";

const ChecksumSidecarSchema = z.object({
  key: z.string(),
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** identity of the file the checksum was computed for; any change invalidates it */
  ino: z.string(),
  mtimeNs: z.string(),
});
type ChecksumSidecar = z.infer<typeof ChecksumSidecarSchema>;

/**
 * An `ObjectStore` in a directory: key `a/b/c` is the file `<root>/a/b/c`, so a run's objects can
 * be opened directly. Writes go to a fsynced temp file under `<root>/.questa/tmp` and are renamed
 * (or, for `ifAbsent`, hard-linked, which fails if the key exists) into place, so readers never see
 * a partial object. sha256 sums are cached in `<root>/.questa/sha256/` and trusted only while the
 * file's inode, size and mtime match; otherwise they are recomputed. `get` hashes the bytes as it
 * reads them and refuses (`DeadLetterError`, code `object_integrity`) bytes that no longer match
 * the sum recorded for that same file.
 * Unlike S3, a key cannot also be a "directory" of other keys (`a/b` and `a/b/c`): that put fails
 * with an `InputError`.
 */
export class FsObjectStore implements ObjectStore {
  readonly root: string;
  readonly #tempDir: string;
  readonly #sidecarDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.#tempDir = join(this.root, ".questa", "tmp");
    this.#sidecarDir = join(this.root, ".questa", "sha256");
  }

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    const path = this.#pathFor(key);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const sha256 = sha256Hex(bytes);
    const tempPath = await writeDurableTemp(this.#tempDir, bytes);
    try {
      const tempStat = await stat(tempPath, { bigint: true });
      const info: ObjectInfo = { key, size: bytes.byteLength, sha256 };
      const placed = await this.#place(key, tempPath, path, options.ifAbsent === true);
      if (!placed) {
        const existing = await this.head(key);
        if (existing) return { created: false, info: existing };
        if (await lstatBig(path).catch(() => undefined)) throw conflictError(key);
        // deleted between the failed link and head: the key is free again
        return this.put(key, bytes, options);
      }
      await this.#writeSidecar({
        key,
        size: info.size,
        sha256,
        ino: String(tempStat.ino),
        mtimeNs: String(tempStat.mtimeNs),
      });
      return { created: true, info };
    } finally {
      await rm(tempPath, { force: true });
    }
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const path = this.#pathFor(key);
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      // the identity of the file this handle reads (a concurrent put renames a new file into place)
      const fileStat = await handle.stat({ bigint: true });
      if (!fileStat.isFile()) return undefined;
      const hash = createHash("sha256");
      const bytes = await readOpened(handle, Number(fileStat.size), hash);
      // the recorded sum holds for this very file: bytes that no longer match it are rot or tampering.
      // A file replaced or edited by hand has a new identity, so its sum is computed afresh (head).
      const recorded = await this.#readSidecar(key);
      if (recorded && sidecarMatches(recorded, key, fileStat)) {
        const actual = hash.digest("hex");
        if (actual !== recorded.sha256) {
          throw new DeadLetterError(
            "object_integrity",
            `${this.uri(key)} failed its integrity check: its checksum record says sha256 ${recorded.sha256}, the ${bytes.byteLength} bytes read hash to ${actual} (tampered or corrupted)`,
          );
        }
      }
      return bytes;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    } finally {
      await handle.close();
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.#pathFor(key);
    let fileStat: Awaited<ReturnType<typeof lstatBig>>;
    try {
      fileStat = await lstatBig(path);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    if (!fileStat.isFile()) return undefined;
    const cached = await this.#readSidecar(key);
    if (cached && sidecarMatches(cached, key, fileStat)) {
      return { key, size: cached.size, sha256: cached.sha256 };
    }
    // changed behind our back (or no cache yet): recompute and cache
    const sha256 = await hashFile(path);
    const after = await lstatBig(path).catch(() => undefined);
    if (after && after.ino === fileStat.ino && after.mtimeNs === fileStat.mtimeNs) {
      await this.#writeSidecar({
        key,
        size: Number(fileStat.size),
        sha256,
        ino: String(fileStat.ino),
        mtimeNs: String(fileStat.mtimeNs),
      });
    }
    return { key, size: Number(fileStat.size), sha256 };
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    // the directory part of the prefix must be a valid key; its last segment may be partial
    const slash = prefix.lastIndexOf("/");
    const dirPart = slash < 0 ? "" : prefix.slice(0, slash);
    const lastPart = prefix.slice(slash + 1);
    const problem =
      (dirPart !== "" ? objectKeyProblem(dirPart) : prefix.startsWith("/") ? "starts with /" : undefined) ??
      (/[\\\0]/.test(lastPart) || lastPart === "." || lastPart === ".."
        ? "has a ., .. segment, a backslash or NUL"
        : undefined);
    if (problem) {
      throw new InputError("invalid_object_prefix", [
        {
          path: "prefix",
          message: `${JSON.stringify(prefix)} ${problem}`,
          hint: "use a relative a/b/ prefix",
        },
      ]);
    }
    const keys: string[] = [];
    if (!(await this.#isPlainDirectory(dirPart))) return [];
    await this.#walk(dirPart, keys);
    const matching = keys
      .filter((key) => key.startsWith(prefix) && !key.startsWith(reservedKeyPrefix))
      .sort();
    const infos: ObjectInfo[] = [];
    for (const key of matching) {
      const info = await this.head(key);
      if (info) infos.push(info);
    }
    return infos;
  }

  async delete(key: string): Promise<void> {
    const path = this.#pathFor(key);
    // a directory of other keys is not an object: deleting it, like a missing key, is a no-op
    const info = await lstat(path).catch(() => undefined);
    if (info && !info.isDirectory()) {
      try {
        await unlink(path);
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
    await rm(this.#sidecarPath(key), { force: true });
    await fsyncDirectory(dirname(path)).catch(() => {});
    await this.#pruneEmptyDirectories(dirname(path));
  }

  uri(key: string): string {
    return pathToFileURL(this.#pathFor(key)).href;
  }

  #pathFor(key: string): string {
    assertObjectKey(key);
    if (key.startsWith(reservedKeyPrefix) || key === ".questa") {
      throw new InputError("invalid_object_key", [
        {
          path: "key",
          message: `${JSON.stringify(key)} is reserved for the store itself`,
          hint: "use another prefix",
        },
      ]);
    }
    const path = join(this.root, ...key.split("/"));
    // belt and braces: validated keys cannot escape, but never touch a path outside the root
    if (!path.startsWith(this.root + sep)) throw new Error(`object key ${key} resolves outside ${this.root}`);
    return path;
  }

  /** moves the temp file into place; false when `ifAbsent` and the key exists */
  async #place(key: string, tempPath: string, path: string, ifAbsent: boolean): Promise<boolean> {
    // a concurrent delete may prune the parent directory between mkdir and rename: retry a few times
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(dirname(path), { recursive: true });
        if (ifAbsent) {
          try {
            await link(tempPath, path);
          } catch (error) {
            if (isErrno(error, "EEXIST")) return false;
            throw error;
          }
        } else {
          await rename(tempPath, path);
        }
        await fsyncDirectory(dirname(path));
        return true;
      } catch (error) {
        if (isErrno(error, "ENOENT") && attempt < 3) continue;
        if (isErrno(error, "ENOTDIR") || isErrno(error, "EEXIST") || isErrno(error, "EISDIR")) {
          throw conflictError(key, error);
        }
        throw error;
      }
    }
  }

  /** true when every segment of `relativeDir` is a real directory (no symlink leads out of the root) */
  async #isPlainDirectory(relativeDir: string): Promise<boolean> {
    let path = this.root;
    for (const segment of relativeDir === "" ? [] : relativeDir.split("/")) {
      path = join(path, segment);
      const info = await lstat(path).catch(() => undefined);
      if (!info?.isDirectory()) return false;
    }
    return true;
  }

  async #walk(relativeDir: string, keys: string[]): Promise<void> {
    const absolute = relativeDir === "" ? this.root : join(this.root, ...relativeDir.split("/"));
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(absolute, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const entry of entries) {
      const key = relativeDir === "" ? entry.name : `${relativeDir}/${entry.name}`;
      if (relativeDir === "" && entry.name === ".questa") continue;
      // symlinks are not followed: they could point outside the root
      if (entry.isDirectory()) await this.#walk(key, keys);
      else if (entry.isFile() && objectKeyProblem(key) === undefined) keys.push(key);
    }
  }

  async #pruneEmptyDirectories(dir: string): Promise<void> {
    while (dir.startsWith(this.root + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or gone): stop
      }
      dir = dirname(dir);
    }
  }

  #sidecarPath(key: string): string {
    return join(this.#sidecarDir, `${sha256Hex(key)}.json`);
  }

  async #readSidecar(key: string): Promise<ChecksumSidecar | undefined> {
    try {
      const parsed = ChecksumSidecarSchema.safeParse(
        JSON.parse(await readFile(this.#sidecarPath(key), "utf8")),
      );
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined; // missing or corrupt cache: recompute
    }
  }

  async #writeSidecar(sidecar: ChecksumSidecar): Promise<void> {
    // a cache, validated on read: atomic (no torn JSON) but not fsynced
    await mkdir(this.#sidecarDir, { recursive: true });
    await mkdir(this.#tempDir, { recursive: true });
    const tempPath = join(this.#tempDir, `.sidecar-${process.pid}-${randomBytes(8).toString("hex")}`);
    await writeFile(tempPath, JSON.stringify(sidecar));
    await rename(tempPath, this.#sidecarPath(sidecar.key)).catch(async (error: unknown) => {
      await rm(tempPath, { force: true });
      throw error;
    });
  }
}

function conflictError(key: string, cause?: unknown): InputError {
  return new InputError(
    "object_key_conflict",
    [
      {
        path: "key",
        message: `${JSON.stringify(key)} collides with another key (one key is a prefix directory of the other)`,
        hint: "a filesystem store cannot hold both a/b and a/b/c",
      },
    ],
    { cause },
  );
}

/** the sidecar was computed for this file: same key, inode, mtime and size */
function sidecarMatches(
  sidecar: ChecksumSidecar,
  key: string,
  fileStat: { ino: bigint; mtimeNs: bigint; size: bigint },
): boolean {
  return (
    sidecar.key === key &&
    sidecar.ino === String(fileStat.ino) &&
    sidecar.mtimeNs === String(fileStat.mtimeNs) &&
    BigInt(sidecar.size) === fileStat.size
  );
}

function lstatBig(path: string) {
  return lstat(path, { bigint: true });
}

function isMissing(error: unknown): boolean {
  return isErrno(error, "ENOENT") || isErrno(error, "ENOTDIR") || isErrno(error, "EISDIR");
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
