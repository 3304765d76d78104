import { readBoundedFile } from "../runtime/bounded-read.ts";
import { InputError } from "../runtime/errors.ts";
import {
  type DocumentResult,
  decodeResourceText,
  RESOURCE_LIMITS,
  tooLargeIssue,
  validateYaml,
} from "./validate.ts";

/**
 * Reads and validates a QuestATraining file within RESOURCE_LIMITS: every document's result.
 * A file that cannot be read (missing, a directory, over the size limit, not UTF-8 text) is an
 * InputError whose issue is at `label` (the path as the user wrote it).
 */
export async function readResourceFile(path: string, label: string = path): Promise<DocumentResult[]> {
  const bytes = await readBoundedFile(path, {
    maxBytes: RESOURCE_LIMITS.maxBytes,
    label,
    tooLarge: (size) => ({ ...tooLargeIssue(size), path: label }),
  });
  const decoded = decodeResourceText(bytes);
  if (!decoded.ok) throw new InputError("file.not_text", [{ ...decoded.issue, path: label }]);
  return validateYaml(decoded.text);
}
