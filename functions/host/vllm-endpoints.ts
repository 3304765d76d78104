/**
 * Where the vLLM servers are: QUESTA_VLLM_ENDPOINTS, comma-separated base URLs (the operator sets
 * the run's headless service, http://<service>:8000). A host name that resolves to several
 * addresses is one server per address, so requests spread over the pods behind the service.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { InputError } from "../runtime/errors.ts";
import { type VllmEndpoint, VllmHttpServer } from "./vllm-api.ts";

export const VLLM_ENDPOINTS_ENV = "QUESTA_VLLM_ENDPOINTS";

/** how long a resolution is used before the host names are looked up again */
const RESOLVE_EVERY_MS = 5_000;

/** the base URLs of QUESTA_VLLM_ENDPOINTS, each checked */
export function parseVllmEndpoints(value: string | undefined): URL[] {
  const items = (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (items.length === 0) {
    throw new InputError("vllm_endpoints_missing", [
      {
        path: VLLM_ENDPOINTS_ENV,
        message: "rollout.engine is vllm but no vLLM server is named",
        hint: "set it to the servers' base URLs, comma-separated (e.g. http://vllm:8000); the operator sets it on rollout pods",
      },
    ]);
  }
  return items.map((item) => {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      url = new URL("invalid:");
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") {
      throw new InputError("vllm_endpoints_invalid", [
        {
          path: VLLM_ENDPOINTS_ENV,
          message: `${JSON.stringify(item)} is not an http(s) base URL`,
          hint: "give base URLs like http://vllm:8000, comma-separated",
        },
      ]);
    }
    return url;
  });
}

export type HostLookup = (host: string) => Promise<string[]>;

const systemLookup: HostLookup = async (host) =>
  (await lookup(host, { all: true })).map((entry) => entry.address);

/**
 * The servers behind `urls`, looked up again every few seconds; the same server keeps the same
 * client (its cached model name). A host that does not resolve right now counts as no server.
 */
export function resolvingEndpoints(
  urls: readonly URL[],
  options: {
    lookup?: HostLookup;
    now?: () => number;
    connect?: (url: string) => VllmEndpoint;
  } = {},
): () => Promise<VllmEndpoint[]> {
  const resolveHost = options.lookup ?? systemLookup;
  const now = options.now ?? Date.now;
  const connect = options.connect ?? ((url: string) => new VllmHttpServer(url));
  const clients = new Map<string, VllmEndpoint>();
  let resolved: { at: number; endpoints: VllmEndpoint[] } | undefined;
  return async () => {
    if (resolved && now() - resolved.at < RESOLVE_EVERY_MS && resolved.endpoints.length > 0) {
      return resolved.endpoints;
    }
    const perUrl = await Promise.all(
      urls.map(async (url) => {
        const host = url.hostname.replace(/^\[|\]$/g, "");
        const addresses = isIP(host) ? [host] : await resolveHost(host).catch(() => []);
        return addresses.map((address) => {
          const copy = new URL(url.href);
          copy.hostname = isIP(address) === 6 ? `[${address}]` : address;
          return copy.href.replace(/\/+$/, "");
        });
      }),
    );
    const endpoints = [...new Set(perUrl.flat())].map((href) => {
      let client = clients.get(href);
      if (!client) {
        client = connect(href);
        clients.set(href, client);
      }
      return client;
    });
    resolved = { at: now(), endpoints };
    return endpoints;
  };
}
