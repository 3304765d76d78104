/**
 * The slice of the Kubernetes API the operator uses, as an interface of ours: operator/kube-client.ts
 * implements it with @kubernetes/client-node; the controller, informers and leader election only see this.
 */
export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  deletionTimestamp?: string;
  creationTimestamp?: string;
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** Identifies a kind: the resource path segments come from it. */
export interface ResourceKind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
}

export const WatchEventType = {
  added: "ADDED",
  modified: "MODIFIED",
  deleted: "DELETED",
  bookmark: "BOOKMARK",
} as const;
export type WatchEventType = (typeof WatchEventType)[keyof typeof WatchEventType];

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface WatchOptions {
  resourceVersion: string;
  namespace?: string | undefined;
  labelSelector?: string | undefined;
}

export interface WatchHandle {
  /** resolves when the stream ends (server closed it, or stop()); rejects with a KubeApiError or network error */
  readonly done: Promise<void>;
  stop(): void;
}

/** The API server answered with an error status. `code` is the HTTP status (404, 409, 410, 422, ...). */
export class KubeApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: unknown;

  constructor(code: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.name = "KubeApiError";
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

export const isNotFound = (error: unknown): boolean => error instanceof KubeApiError && error.code === 404;
export const isConflict = (error: unknown): boolean => error instanceof KubeApiError && error.code === 409;
export const isGone = (error: unknown): boolean => error instanceof KubeApiError && error.code === 410;

export interface KubeEvent {
  involved: KubeObject;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  /** the reporting component, e.g. questa-operator */
  component: string;
  /** the reporting instance (pod name) */
  instance: string;
}

export interface DeleteOptions {
  uid?: string | undefined;
  propagation?: "Background" | "Foreground" | undefined;
}

export interface KubeApi {
  list(kind: ResourceKind, namespace?: string, labelSelector?: string): Promise<ListResult>;
  /** streams changes after `resourceVersion`; a 410 arrives as a rejected `done` with code 410 */
  watch(
    kind: ResourceKind,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
  ): Promise<WatchHandle>;
  /** returns undefined when the object does not exist */
  get(kind: ResourceKind, name: string, namespace?: string): Promise<KubeObject | undefined>;
  create(kind: ResourceKind, object: KubeObject): Promise<KubeObject>;
  /** PUT with the object's resourceVersion (optimistic concurrency: 409 on a stale version) */
  replace(kind: ResourceKind, object: KubeObject): Promise<KubeObject>;
  /** server-side apply with the given field manager (force: this manager owns what it writes) */
  apply(kind: ResourceKind, object: KubeObject, fieldManager: string): Promise<KubeObject>;
  /** JSON merge patch of the status subresource */
  patchStatus(kind: ResourceKind, name: string, namespace: string, status: unknown): Promise<KubeObject>;
  /**
   * deletes the object; resolves false when it was already gone. `uid` is a precondition (a 409
   * when the object by that name is another one); `propagation` Foreground keeps the object, with a
   * deletionTimestamp, until its dependents (a Job's pods) are gone
   */
  delete(kind: ResourceKind, name: string, namespace?: string, options?: DeleteOptions): Promise<boolean>;
  /** whether the API server serves the kind (discovery): false when its group/version or resource is not installed */
  served(kind: ResourceKind): Promise<boolean>;
  recordEvent(event: KubeEvent): Promise<void>;
}
