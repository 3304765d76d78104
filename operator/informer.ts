import { isGone, type KubeApi, type KubeObject, type ResourceKind, WatchEventType } from "./kube-api.ts";

export type ChangeType = "added" | "modified" | "deleted";
export type ChangeHandler = (type: ChangeType, object: KubeObject) => void;

export interface InformerOptions {
  api: KubeApi;
  kind: ResourceKind;
  namespace?: string | undefined;
  labelSelector?: string | undefined;
  onChange: ChangeHandler;
  /** called when the informer lists again: after a 410 Gone ("expired") or a failed watch start */
  onRelist?: (reason: "initial" | "expired" | "error") => void;
  onError?: (error: unknown, retryInMs: number) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

export const objectKey = (object: KubeObject): string =>
  object.metadata.namespace ? `${object.metadata.namespace}/${object.metadata.name}` : object.metadata.name;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * One list-watch loop for one kind, with a cache of the objects it has seen. It lists, then watches from
 * the list's resourceVersion; when the watch ends it resumes from the last version seen; when the server
 * answers 410 Gone it lists again (and reports objects that vanished meanwhile as deleted); on any other
 * failure it waits with exponential backoff and reconnects.
 */
export class Informer {
  readonly #options: InformerOptions;
  readonly #cache = new Map<string, KubeObject>();
  readonly #sleep: (ms: number) => Promise<void>;
  #running = false;
  #stopWatch: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #synced: Promise<void>;
  #markSynced: () => void = () => {};

  constructor(options: InformerOptions) {
    this.#options = options;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#synced = new Promise((resolve) => {
      this.#markSynced = resolve;
    });
  }

  get(key: string): KubeObject | undefined {
    return this.#cache.get(key);
  }

  list(): KubeObject[] {
    return [...this.#cache.values()];
  }

  /** starts the loop; resolves after the first successful list */
  async start(): Promise<void> {
    if (this.#running) return await this.#synced;
    this.#running = true;
    this.#loop = this.#run();
    await this.#synced;
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#stopWatch?.();
    this.#markSynced();
    await this.#loop;
  }

  #upsert(object: KubeObject): void {
    const key = objectKey(object);
    const previous = this.#cache.get(key);
    this.#cache.set(key, object);
    if (!previous) this.#options.onChange("added", object);
    else if (previous.metadata.resourceVersion !== object.metadata.resourceVersion) {
      this.#options.onChange("modified", object);
    }
  }

  async #relist(): Promise<string> {
    const { items, resourceVersion } = await this.#options.api.list(
      this.#options.kind,
      this.#options.namespace,
      this.#options.labelSelector,
    );
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(objectKey(item));
      this.#upsert(item);
    }
    for (const [key, object] of this.#cache) {
      if (!seen.has(key)) {
        this.#cache.delete(key);
        this.#options.onChange("deleted", object);
      }
    }
    return resourceVersion;
  }

  async #run(): Promise<void> {
    const initialBackoff = this.#options.initialBackoffMs ?? 200;
    const maxBackoff = this.#options.maxBackoffMs ?? 30_000;
    let backoff = initialBackoff;
    let resourceVersion: string | undefined;
    let relistReason: "initial" | "expired" | "error" = "initial";
    while (this.#running) {
      try {
        if (resourceVersion === undefined) {
          this.#options.onRelist?.(relistReason);
          resourceVersion = await this.#relist();
          this.#markSynced();
        }
        let lastVersion: string = resourceVersion;
        let sawEvent = false;
        const handle = await this.#options.api.watch(
          this.#options.kind,
          { resourceVersion, namespace: this.#options.namespace, labelSelector: this.#options.labelSelector },
          (event) => {
            sawEvent = true;
            lastVersion = event.object.metadata.resourceVersion ?? lastVersion;
            if (event.type === WatchEventType.bookmark) return;
            if (event.type === WatchEventType.deleted) {
              const key = objectKey(event.object);
              this.#cache.delete(key);
              this.#options.onChange("deleted", event.object);
              return;
            }
            this.#upsert(event.object);
          },
        );
        this.#stopWatch = handle.stop;
        try {
          await handle.done;
        } finally {
          resourceVersion = lastVersion;
        }
        if (sawEvent) backoff = initialBackoff;
      } catch (error) {
        if (!this.#running) break;
        if (isGone(error)) {
          // our resourceVersion is older than what the server keeps: start over from a fresh list
          resourceVersion = undefined;
          relistReason = "expired";
          continue;
        }
        this.#options.onError?.(error, backoff);
        await this.#sleep(backoff);
        backoff = Math.min(maxBackoff, backoff * 2);
        // a list that failed leaves resourceVersion undefined, so the next round lists again
        if (resourceVersion === undefined) relistReason = "error";
      }
    }
  }
}
