/**
 * Compiled graph sessions keyed by shape, least-recently-used first out: every (graph kind, rows,
 * length bucket) keeps an onnxruntime arena, so an unbounded cache grows for the whole run.
 * Sessions in use are never released.
 */
import type { GraphSession } from "./ort-backend.ts";

interface Entry {
  readonly session: Promise<GraphSession>;
  inUse: number;
  lastUsed: number;
}

export interface Lease {
  readonly session: GraphSession;
  release(): void;
}

export class SessionCache {
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  #tick = 0;

  constructor(maxEntries: number) {
    if (!(maxEntries >= 1)) throw new Error("SessionCache needs room for at least one session");
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  async acquire(key: string, create: () => Promise<GraphSession>): Promise<Lease> {
    let entry = this.#entries.get(key);
    if (!entry) {
      const session = create();
      entry = { session, inUse: 0, lastUsed: 0 };
      this.#entries.set(key, entry);
      session.catch(() => this.#entries.delete(key));
    }
    entry.inUse++;
    entry.lastUsed = ++this.#tick;
    const held = entry;
    let session: GraphSession;
    try {
      session = await held.session;
    } catch (error) {
      held.inUse--;
      throw error;
    }
    let released = false;
    return {
      session,
      release: () => {
        if (released) return;
        released = true;
        held.inUse--;
        void this.#evict();
      },
    };
  }

  async #evict(): Promise<void> {
    while (this.#entries.size > this.#maxEntries) {
      let oldestKey: string | undefined;
      let oldest = Number.POSITIVE_INFINITY;
      for (const [key, e] of this.#entries) {
        if (e.inUse === 0 && e.lastUsed < oldest) {
          oldest = e.lastUsed;
          oldestKey = key;
        }
      }
      if (oldestKey === undefined) return;
      const entry = this.#entries.get(oldestKey)!;
      this.#entries.delete(oldestKey);
      await (await entry.session).release();
    }
  }

  /** releases every session (callers must be done with them) */
  async clear(): Promise<void> {
    const entries = [...this.#entries.values()];
    this.#entries.clear();
    for (const e of entries) await (await e.session.catch(() => undefined))?.release();
  }
}
