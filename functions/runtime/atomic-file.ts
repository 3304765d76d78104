import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
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

/** Writes bytes to a fresh temporary file in `tempDir` and fsyncs it; returns its path. */
export async function writeDurableTemp(tempDir: string, body: Uint8Array | string): Promise<string> {
  await mkdir(tempDir, { recursive: true });
  const tempPath = join(tempDir, `.tmp-${process.pid}-${randomBytes(8).toString("hex")}`);
  const handle = await open(tempPath, "wx", 0o644);
  try {
    await handle.writeFile(body);
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

export function isErrno(error: unknown, code: string): boolean {
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === code;
}
