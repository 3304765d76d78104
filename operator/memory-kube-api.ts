import { randomUUID } from "node:crypto";
import {
  type DeleteOptions,
  type KubeApi,
  KubeApiError,
  type KubeEvent,
  type KubeObject,
  type ListResult,
  type ResourceKind,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
} from "./kube-api.ts";

const kindKey = (kind: ResourceKind) => `${kind.group}/${kind.plural}`;
const objectName = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;
const clone = <T>(value: T): T => structuredClone(value);

function matchesSelector(object: KubeObject, selector: string | undefined): boolean {
  if (!selector) return true;
  return selector.split(",").every((term) => {
    const [key, value] = term.split("=") as [string, string | undefined];
    return object.metadata.labels?.[key.trim()] === value?.trim();
  });
}

function sameIgnoringVersion(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

/** RFC 7386 JSON merge patch */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/**
 * An in-memory KubeApi for unit tests of the controller: objects with uids, resource versions,
 * generations, finalizers and deletion timestamps, watches that replay what happened since a
 * version, a status that only patchStatus writes (the CRD's status subresource), and Events kept
 * in a list. Server-side apply is a replacement of the fields sent, with the `uid` precondition.
 */
export class MemoryKubeApi implements KubeApi {
  readonly #objects = new Map<string, Map<string, KubeObject>>();
  readonly #log: { version: number; kind: string; event: WatchEvent }[] = [];
  readonly #watchers = new Set<{ kind: string; options: WatchOptions; onEvent: (e: WatchEvent) => void }>();
  readonly events: KubeEvent[] = [];
  /** kinds whose objects keep `status` out of create/replace (a status subresource) */
  readonly #statusKinds = new Set<string>();
  /** API groups not installed (their CRDs absent): not served, and creating in them is a 404 */
  readonly #missingGroups: Set<string>;
  #version = 0;

  constructor(
    options: { statusSubresource?: readonly ResourceKind[]; missingGroups?: readonly string[] } = {},
  ) {
    for (const kind of options.statusSubresource ?? []) this.#statusKinds.add(kindKey(kind));
    this.#missingGroups = new Set(options.missingGroups ?? []);
  }

  /** installs an API group that was missing (its CRDs applied) */
  installGroup(group: string): void {
    this.#missingGroups.delete(group);
  }

  #bucket(kind: ResourceKind): Map<string, KubeObject> {
    let bucket = this.#objects.get(kindKey(kind));
    if (!bucket) {
      bucket = new Map();
      this.#objects.set(kindKey(kind), bucket);
    }
    return bucket;
  }

  #emit(kind: ResourceKind, type: WatchEvent["type"], object: KubeObject): void {
    const event: WatchEvent = { type, object: clone(object) };
    this.#log.push({ version: this.#version, kind: kindKey(kind), event });
    for (const watcher of this.#watchers) {
      if (watcher.kind !== kindKey(kind)) continue;
      if (!this.#visible(watcher.options, event.object)) continue;
      watcher.onEvent(clone(event));
    }
  }

  #visible(
    options: { namespace?: string | undefined; labelSelector?: string | undefined },
    object: KubeObject,
  ) {
    if (options.namespace && object.metadata.namespace !== options.namespace) return false;
    return matchesSelector(object, options.labelSelector);
  }

  #store(kind: ResourceKind, object: KubeObject, type: "ADDED" | "MODIFIED"): KubeObject {
    const current = this.#bucket(kind).get(objectName(object.metadata.namespace, object.metadata.name));
    if (type === "MODIFIED" && current && sameIgnoringVersion(current, object)) {
      // as the API server: a write that changes nothing keeps the version and sends no event
      return clone(current);
    }
    this.#version++;
    object.metadata.resourceVersion = String(this.#version);
    this.#bucket(kind).set(objectName(object.metadata.namespace, object.metadata.name), object);
    this.#emit(kind, type, object);
    return clone(object);
  }

  #remove(kind: ResourceKind, object: KubeObject): void {
    this.#version++;
    this.#bucket(kind).delete(objectName(object.metadata.namespace, object.metadata.name));
    this.#emit(kind, "DELETED", {
      ...object,
      metadata: { ...object.metadata, resourceVersion: String(this.#version) },
    });
  }

  async list(kind: ResourceKind, namespace?: string, labelSelector?: string): Promise<ListResult> {
    const items = [...this.#bucket(kind).values()]
      .filter((o) => this.#visible({ namespace, labelSelector }, o))
      .map(clone);
    return { items, resourceVersion: String(this.#version) };
  }

  async watch(
    kind: ResourceKind,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
  ): Promise<WatchHandle> {
    const watcher = { kind: kindKey(kind), options, onEvent };
    const since = Number(options.resourceVersion || "0");
    for (const entry of this.#log) {
      if (
        entry.kind === watcher.kind &&
        entry.version > since &&
        this.#visible(options, entry.event.object)
      ) {
        onEvent(clone(entry.event));
      }
    }
    this.#watchers.add(watcher);
    let stop: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      stop = () => {
        this.#watchers.delete(watcher);
        resolve();
      };
    });
    return { done, stop };
  }

  async get(kind: ResourceKind, name: string, namespace?: string): Promise<KubeObject | undefined> {
    const found = this.#bucket(kind).get(objectName(namespace, name));
    return found ? clone(found) : undefined;
  }

  async create(kind: ResourceKind, object: KubeObject): Promise<KubeObject> {
    if (this.#missingGroups.has(kind.group)) {
      throw new KubeApiError(404, "NotFound", "the server could not find the requested resource");
    }
    const key = objectName(object.metadata.namespace, object.metadata.name);
    if (this.#bucket(kind).has(key)) {
      throw new KubeApiError(409, "AlreadyExists", `${kind.plural} "${object.metadata.name}" already exists`);
    }
    const created = clone(object);
    if (this.#statusKinds.has(kindKey(kind))) delete created.status;
    created.metadata.uid = randomUUID();
    created.metadata.generation = 1;
    created.metadata.creationTimestamp = new Date().toISOString();
    return this.#store(kind, created, "ADDED");
  }

  async replace(kind: ResourceKind, object: KubeObject): Promise<KubeObject> {
    const current = this.#bucket(kind).get(objectName(object.metadata.namespace, object.metadata.name));
    if (!current)
      throw new KubeApiError(404, "NotFound", `${kind.plural} "${object.metadata.name}" not found`);
    const version = object.metadata.resourceVersion;
    if (version !== undefined && version !== current.metadata.resourceVersion) {
      throw new KubeApiError(
        409,
        "Conflict",
        "the object has been modified; apply your changes to the latest version",
      );
    }
    const next = clone(object);
    next.metadata.uid = current.metadata.uid ?? randomUUID();
    if (current.metadata.deletionTimestamp)
      next.metadata.deletionTimestamp = current.metadata.deletionTimestamp;
    if (this.#statusKinds.has(kindKey(kind))) {
      if (current.status === undefined) delete next.status;
      else next.status = clone(current.status);
    }
    const specChanged = JSON.stringify(current.spec) !== JSON.stringify(next.spec);
    next.metadata.generation = (current.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.#remove(kind, next);
      return clone(next);
    }
    return this.#store(kind, next, "MODIFIED");
  }

  async apply(kind: ResourceKind, object: KubeObject, _fieldManager: string): Promise<KubeObject> {
    const current = this.#bucket(kind).get(objectName(object.metadata.namespace, object.metadata.name));
    if (!current) {
      const { uid: _uid, ...metadata } = object.metadata;
      return await this.create(kind, { ...object, metadata });
    }
    if (object.metadata.uid !== undefined && object.metadata.uid !== current.metadata.uid) {
      // what the API server answers: the uid of an existing object cannot change
      throw new KubeApiError(
        422,
        "Invalid",
        `metadata.uid: Invalid value: "${object.metadata.uid}": field is immutable`,
      );
    }
    const next = { ...clone(current), ...clone(object) } as KubeObject;
    next.metadata = { ...clone(current.metadata), ...clone(object.metadata) };
    delete next.metadata.resourceVersion;
    return await this.replace(kind, next);
  }

  async patchStatus(
    kind: ResourceKind,
    name: string,
    namespace: string,
    status: unknown,
  ): Promise<KubeObject> {
    const current = this.#bucket(kind).get(objectName(namespace, name));
    if (!current) throw new KubeApiError(404, "NotFound", `${kind.plural} "${name}" not found`);
    const next = clone(current);
    next.status = mergePatch(current.status, status);
    return this.#store(kind, next, "MODIFIED");
  }

  async delete(
    kind: ResourceKind,
    name: string,
    namespace?: string,
    options: DeleteOptions = {},
  ): Promise<boolean> {
    const current = this.#bucket(kind).get(objectName(namespace, name));
    if (!current) return false;
    if (options.uid !== undefined && options.uid !== current.metadata.uid) {
      throw new KubeApiError(409, "Conflict", `Precondition failed: UID in precondition: ${options.uid}`);
    }
    if ((current.metadata.finalizers ?? []).length === 0) {
      this.#remove(kind, current);
      return true;
    }
    if (!current.metadata.deletionTimestamp) {
      const next = clone(current);
      next.metadata.deletionTimestamp = new Date().toISOString();
      this.#store(kind, next, "MODIFIED");
    }
    return true;
  }

  async served(kind: ResourceKind): Promise<boolean> {
    return !this.#missingGroups.has(kind.group);
  }

  async recordEvent(event: KubeEvent): Promise<void> {
    this.events.push({ ...event, involved: clone(event.involved) });
  }
}
