import { assertObjectKey } from "../runtime/object-key.ts";

/** Object keys of a run, all under one base (`<storage.prefix>/<run>` on S3, empty locally). */
export class RunKeys {
  constructor(readonly base: string) {}

  key(...parts: string[]): string {
    const joined = [this.base, ...parts].filter((p) => p !== "").join("/");
    return assertObjectKey(joined);
  }

  /** prefix (ending in `/`) of a folder-like group of keys */
  folder(...parts: string[]): string {
    return `${this.key(...parts)}/`;
  }

  /** folder (no trailing `/`) of the full checkpoint at a step */
  checkpoint(step: number): string {
    return this.key("checkpoints", `step-${String(step).padStart(6, "0")}`);
  }

  /** folder (no trailing `/`) of the weights-only policy update at a step */
  policy(step: number): string {
    return this.key("policy", `step-${String(step).padStart(6, "0")}`);
  }
}
