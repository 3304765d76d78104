import { request as httpRequest } from "node:http";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { KubeConfig, Watch } from "@kubernetes/client-node";
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

/**
 * The only module that imports @kubernetes/client-node. It loads the kubeconfig (in-cluster service
 * account or a file), authenticates requests with it, streams watches with the library's `Watch`, and
 * implements our `KubeApi` with plain JSON in and out (no generated model classes, so objects stay
 * exactly as the API server sent them).
 */
export function loadKubeConfig(
  options: { kubeconfigPath?: string | undefined; inCluster?: boolean } = {},
): KubeConfig {
  const config = new KubeConfig();
  if (options.kubeconfigPath) config.loadFromFile(options.kubeconfigPath);
  else if (options.inCluster) config.loadFromCluster();
  else config.loadFromDefault();
  if (!config.getCurrentCluster()) {
    throw new Error(
      "no Kubernetes cluster configured: set KUBECONFIG or run in a pod with a service account",
    );
  }
  return config;
}

export function resourcePath(kind: ResourceKind, namespace: string | undefined, name?: string): string {
  const base = kind.group === "" ? `/api/${kind.version}` : `/apis/${kind.group}/${kind.version}`;
  const scoped = kind.namespaced && namespace ? `${base}/namespaces/${encodeURIComponent(namespace)}` : base;
  const collection = `${scoped}/${kind.plural}`;
  return name === undefined ? collection : `${collection}/${encodeURIComponent(name)}`;
}

const apiVersionOf = (kind: ResourceKind) =>
  kind.group === "" ? kind.version : `${kind.group}/${kind.version}`;

interface RawResponse {
  status: number;
  body: string;
}

export class ClientNodeKubeApi implements KubeApi {
  readonly #config: KubeConfig;
  readonly #server: URL;
  readonly #requestTimeoutMs: number;

  constructor(config: KubeConfig, options: { requestTimeoutMs?: number } = {}) {
    this.#config = config;
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error("kubeconfig has no current cluster");
    this.#server = new URL(cluster.server);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
  }

  async #raw(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<RawResponse> {
    const url = new URL(path, this.#server);
    const options: RequestOptions = { method, headers: { Accept: "application/json" } };
    await this.#config.applyToHTTPSOptions(options);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = { ...(options.headers as Record<string, string>) };
    if (payload !== undefined) {
      headers["Content-Type"] = contentType;
      headers["Content-Length"] = String(Buffer.byteLength(payload));
    }
    const send = url.protocol === "http:" ? httpRequest : httpsRequest;
    return await new Promise<RawResponse>((resolve, reject) => {
      const req = send(url, { ...options, headers, timeout: this.#requestTimeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      });
      req.on("timeout", () =>
        req.destroy(new Error(`${method} ${path} timed out after ${this.#requestTimeoutMs} ms`)),
      );
      req.on("error", reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  async #json(method: string, path: string, body?: unknown, contentType?: string): Promise<KubeObject> {
    const response = await this.#raw(method, path, body, contentType);
    if (response.status >= 200 && response.status < 300) return JSON.parse(response.body) as KubeObject;
    throw toApiError(response.status, response.body, `${method} ${path}`);
  }

  async list(kind: ResourceKind, namespace?: string, labelSelector?: string): Promise<ListResult> {
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : "";
    const list = (await this.#json("GET", resourcePath(kind, namespace) + query)) as unknown as {
      items?: KubeObject[];
      metadata?: { resourceVersion?: string };
    };
    // list items omit apiVersion/kind; put them back so every object is self-describing
    const items = (list.items ?? []).map((item) => ({
      ...item,
      apiVersion: apiVersionOf(kind),
      kind: kind.kind,
    }));
    return { items, resourceVersion: list.metadata?.resourceVersion ?? "" };
  }

  async watch(
    kind: ResourceKind,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
  ): Promise<WatchHandle> {
    let settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
    const done = new Promise<void>((resolve, reject) => {
      settle = { resolve, reject };
    });
    let failure: unknown;
    let stopped = false;
    let controller: AbortController | undefined;
    const watch = new Watch(this.#config);
    controller = await watch.watch(
      resourcePath(kind, options.namespace),
      {
        resourceVersion: options.resourceVersion,
        labelSelector: options.labelSelector,
        allowWatchBookmarks: true,
        timeoutSeconds: 240,
      },
      (type: string, object: unknown) => {
        if (type === "ERROR") {
          // e.g. 410 Gone "too old resource version": the stream is dead, the informer relists
          const status = object as { code?: number; reason?: string; message?: string };
          failure = new KubeApiError(
            status.code ?? 500,
            status.reason ?? "Unknown",
            status.message ?? "watch error",
          );
          controller?.abort();
          return;
        }
        if (type === "ADDED" || type === "MODIFIED" || type === "DELETED" || type === "BOOKMARK") {
          onEvent({ type, object: object as KubeObject });
        }
      },
      (error: unknown) => {
        const reason = failure ?? error;
        if (reason && !stopped) {
          const code = (reason as { statusCode?: number }).statusCode;
          settle?.reject(
            code !== undefined && !(reason instanceof KubeApiError)
              ? new KubeApiError(code, "WatchFailed", `watch ${kind.plural}: HTTP ${code}`)
              : reason,
          );
        } else settle?.resolve();
      },
    );
    if (failure) controller.abort();
    return {
      done,
      stop: () => {
        stopped = true;
        controller?.abort();
        settle?.resolve();
      },
    };
  }

  async get(kind: ResourceKind, name: string, namespace?: string): Promise<KubeObject | undefined> {
    const response = await this.#raw("GET", resourcePath(kind, namespace, name));
    if (response.status === 404) return undefined;
    if (response.status >= 200 && response.status < 300) return JSON.parse(response.body) as KubeObject;
    throw toApiError(response.status, response.body, `GET ${kind.plural}/${name}`);
  }

  async create(kind: ResourceKind, object: KubeObject): Promise<KubeObject> {
    return await this.#json("POST", resourcePath(kind, object.metadata.namespace), object);
  }

  async replace(kind: ResourceKind, object: KubeObject): Promise<KubeObject> {
    return await this.#json(
      "PUT",
      resourcePath(kind, object.metadata.namespace, object.metadata.name),
      object,
    );
  }

  async apply(kind: ResourceKind, object: KubeObject, fieldManager: string): Promise<KubeObject> {
    const path = `${resourcePath(kind, object.metadata.namespace, object.metadata.name)}?fieldManager=${encodeURIComponent(fieldManager)}&force=true`;
    return await this.#json("PATCH", path, object, "application/apply-patch+yaml");
  }

  async patchStatus(
    kind: ResourceKind,
    name: string,
    namespace: string,
    status: unknown,
  ): Promise<KubeObject> {
    const path = `${resourcePath(kind, namespace, name)}/status`;
    return await this.#json("PATCH", path, { status }, "application/merge-patch+json");
  }

  async delete(
    kind: ResourceKind,
    name: string,
    namespace?: string,
    options: DeleteOptions = {},
  ): Promise<boolean> {
    const response = await this.#raw("DELETE", resourcePath(kind, namespace, name), {
      kind: "DeleteOptions",
      apiVersion: "v1",
      propagationPolicy: options.propagation ?? "Background",
      ...(options.uid === undefined ? {} : { preconditions: { uid: options.uid } }),
    });
    if (response.status === 404) return false;
    if (response.status >= 200 && response.status < 300) return true;
    throw toApiError(response.status, response.body, `DELETE ${kind.plural}/${name}`);
  }

  async served(kind: ResourceKind): Promise<boolean> {
    // the group/version's discovery document lists the resources it serves (readable by any user)
    const path = kind.group === "" ? `/api/${kind.version}` : `/apis/${kind.group}/${kind.version}`;
    const response = await this.#raw("GET", path);
    if (response.status === 404) return false;
    if (response.status < 200 || response.status >= 300) {
      throw toApiError(response.status, response.body, `GET discovery of ${apiVersionOf(kind)}`);
    }
    const list = JSON.parse(response.body) as { resources?: { name?: string }[] };
    return (list.resources ?? []).some((resource) => resource.name === kind.plural);
  }

  async recordEvent(event: KubeEvent): Promise<void> {
    const involved = event.involved;
    const now = new Date();
    const namespace = involved.metadata.namespace ?? "default";
    const body = {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      // client-go's naming: <object>.<hex timestamp>, unique enough and a valid subdomain
      metadata: { name: `${involved.metadata.name}.${eventSuffix(now)}`, namespace },
      eventTime: microTime(now),
      reportingController: event.component,
      reportingInstance: event.instance,
      action: event.reason,
      reason: event.reason,
      note: event.message.slice(0, 1024),
      type: event.type,
      regarding: {
        apiVersion: involved.apiVersion,
        kind: involved.kind,
        name: involved.metadata.name,
        namespace,
        uid: involved.metadata.uid,
        resourceVersion: involved.metadata.resourceVersion,
      },
    };
    await this.#json(
      "POST",
      `/apis/events.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/events`,
      body,
    );
  }
}

const eventSuffix = (now: Date): string =>
  (BigInt(now.getTime()) * 1_000_000n + BigInt(Math.floor(Math.random() * 1_000_000))).toString(16);

/** RFC 3339 with exactly six fractional digits, as the API server's MicroTime expects. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

function toApiError(status: number, body: string, what: string): KubeApiError {
  try {
    const parsed = JSON.parse(body) as { reason?: string; message?: string; details?: unknown };
    return new KubeApiError(
      status,
      parsed.reason ?? "Unknown",
      parsed.message ?? `${what}: HTTP ${status}`,
      parsed.details,
    );
  } catch {
    return new KubeApiError(status, "Unknown", `${what}: HTTP ${status}: ${body.slice(0, 200)}`);
  }
}
