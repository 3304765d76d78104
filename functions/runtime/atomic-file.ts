import { type Hash, randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

/** fsyncs a directory so a rename or link inside it survives a power loss (best effort on platforms without it). */
export async function fsyncDirectory(path: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, "r");
    await handle.sync();
  } catch (error) {
    // some platforms cannot fsync a directory; the rename itself is still atomic
    if (!isErrno(error, "EISDIR") && !isErrno(error, "EINVAL") && !isErrno(error, "EPERM")) throw error;
  } finally {
    await handle?.close();
  }
}

export type FileHandle = Awaited<ReturnType<typeof open>>;

/*
 * Whole-buffer reads and writes, one request to the thread pool each (the kernel may still split
 * them): fs's readFile/writeFile go 512 KiB per event-loop turn, and a loop held for ~100 ms at a
 * time by synchronous onnxruntime runs (sampling in the same process) starved a 538 MB checkpoint
 * write to ~5 MB/s (bench/object-store-io.bench.ts).
 */
async function writeWhole(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

/**
 * A file's bytes, read with as few requests as the kernel allows (see writeWhole). For files that
 * are replaced by rename, never written in place: the open handle keeps the version it opened.
 */
export async function readWhole(path: string): Promise<Uint8Array> {
  const handle = await open(path, "r");
  try {
    return await readOpened(handle, Number((await handle.stat()).size));
  } finally {
    await handle.close();
  }
}

/**
 * The first `size` bytes of an open file (fewer if it was truncated under us), read as readWhole
 * does; `hash`, if given, is fed each chunk as it arrives, so checking a sum costs no second pass.
 */
export async function readOpened(handle: FileHandle, size: number, hash?: Hash): Promise<Uint8Array> {
  const bytes = new Uint8Array(size);
  let offset = 0;
  while (offset < size) {
    const { bytesRead } = await handle.read(bytes, offset, size - offset, offset);
    if (bytesRead === 0) break; // truncated under us: return what is there
    hash?.update(bytes.subarray(offset, offset + bytesRead));
    offset += bytesRead;
  }
  return offset === size ? bytes : bytes.subarray(0, offset);
}

/** Writes bytes to a fresh temporary file in `tempDir` and fsyncs it; returns its path. */
export async function writeDurableTemp(tempDir: string, body: Uint8Array | string): Promise<string> {
  await mkdir(tempDir, { recursive: true });
  const tempPath = join(tempDir, `.tmp-${process.pid}-${randomBytes(8).toString("hex")}`);
  const handle = await open(tempPath, "wx", 0o644);
  try {
    await writeWhole(handle, typeof body === "string" ? new TextEncoder().encode(body) : body);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(tempPath, { force: true });
    throw error;
  }
  await handle.close();
  return tempPath;
}

/** Replaces `path` atomically: readers see the old file or the new one, never a partial write. */
export async function writeFileAtomic(path: string, body: Uint8Array | string): Promise<void> {
  const dir = dirname(path);
  const tempPath = await writeDurableTemp(dir, body);
  try {
    await rename(tempPath, path);
  } catch (error) {
    await rm(tempPath, { force: true });
    throw error;
  }
  await fsyncDirectory(dir);
}

/** a local file's text, or undefined when there is no such file (other errors are thrown) */
export async function readTextIfPresent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
}

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}
