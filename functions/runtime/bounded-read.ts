import { open } from "node:fs/promises";
import { InputError, type InputIssue } from "./errors.ts";

/** the words for the errno codes a user can do something about */
const ERRNO_WORDS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EISDIR: "is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ELOOP: "too many symbolic links",
  ENAMETOOLONG: "name too long",
};

/** "cannot read: ENOENT (no such file or directory)" as an issue at `label` */
export function unreadableIssue(label: string, error: unknown): InputIssue {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const words = code === undefined ? undefined : ERRNO_WORDS[code];
  return {
    path: label,
    message: `cannot read: ${code ?? (error instanceof Error ? error.message : String(error))}${words ? ` (${words})` : ""}`,
  };
}

/**
 * Reads a whole file of at most `maxBytes` bytes without ever holding more than `maxBytes + 1`
 * (a FIFO or a growing file has no trustworthy size). Every failure is an InputError naming
 * `label` (the path as the user wrote it): missing, unreadable, a directory, too large.
 */
export async function readBoundedFile(
  path: string,
  options: { maxBytes: number; label?: string; tooLarge?: (size: number | undefined) => InputIssue },
): Promise<Uint8Array> {
  const label = options.label ?? path;
  const tooLarge = (size: number | undefined) =>
    new InputError("file.too_large", [
      options.tooLarge?.(size) ?? {
        path: label,
        message: `${size === undefined ? "larger than" : `${size} bytes, over`} the limit of ${options.maxBytes} bytes`,
      },
    ]);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (error) {
    throw new InputError("file.unreadable", [unreadableIssue(label, error)], { cause: error });
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) {
      throw new InputError("file.is_directory", [
        { path: label, message: "is a directory", hint: "give a file in it" },
      ]);
    }
    if (info.isFile() && info.size > options.maxBytes) throw tooLarge(info.size);
    const buffer = Buffer.alloc(
      (info.isFile() ? Math.min(info.size, options.maxBytes) : options.maxBytes) + 1,
    );
    let total = 0;
    while (total < buffer.length) {
      const { bytesRead } = await handle.read(buffer, total, buffer.length - total, null);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
    if (total > options.maxBytes) throw tooLarge(undefined);
    return buffer.subarray(0, total);
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError("file.unreadable", [unreadableIssue(label, error)], { cause: error });
  } finally {
    await handle.close();
  }
}
