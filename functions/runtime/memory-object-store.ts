import { assertObjectKey } from "./object-key.ts";
import type { ObjectInfo, ObjectStore, PutOptions, PutResult } from "./object-store.ts";
import { sha256Hex } from "./sha256.ts";

/** An object store held in memory: for unit tests and single-process experiments. */
export class MemoryObjectStore implements ObjectStore {
  readonly #objects = new Map<string, { body: Uint8Array; info: ObjectInfo }>();

  async put(key: string, body: Uint8Array | string, options: PutOptions = {}): Promise<PutResult> {
    assertObjectKey(key);
    const existing = this.#objects.get(key);
    if (options.ifAbsent && existing) return { created: false, info: existing.info };
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : Uint8Array.from(body);
    const info: ObjectInfo = { key, size: bytes.byteLength, sha256: sha256Hex(bytes) };
    this.#objects.set(key, { body: bytes, info });
    return { created: true, info };
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    assertObjectKey(key);
    const found = this.#objects.get(key);
    return found ? Uint8Array.from(found.body) : undefined;
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    assertObjectKey(key);
    return this.#objects.get(key)?.info;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    return [...this.#objects.values()]
      .map((o) => o.info)
      .filter((info) => info.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    assertObjectKey(key);
    this.#objects.delete(key);
  }

  uri(key: string): string {
    return `memory:///${key}`;
  }
}
