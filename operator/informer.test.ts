import { describe, expect, it, vi } from "vitest";
import { type ChangeType, Informer } from "./informer.ts";
import {
  type KubeApi,
  KubeApiError,
  type KubeObject,
  type ListResult,
  type ResourceKind,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
} from "./kube-api.ts";

const KIND: ResourceKind = {
  group: "questa.dev",
  version: "v1alpha1",
  kind: "QuestATraining",
  plural: "questatrainings",
  namespaced: true,
};
const object = (name: string, resourceVersion: string): KubeObject => ({
  apiVersion: "questa.dev/v1alpha1",
  kind: "QuestATraining",
  metadata: { name, namespace: "ml", resourceVersion },
});

type WatchScript = (options: WatchOptions, emit: (event: WatchEvent) => void) => Promise<void>;

/** A KubeApi of our own whose list results and watch streams the test scripts, one per call. */
class ScriptedApi implements Partial<KubeApi> {
  readonly lists: ListResult[] = [];
  readonly watches: WatchScript[] = [];
  readonly watchCalls: WatchOptions[] = [];
  listCalls = 0;

  async list(): Promise<ListResult> {
    this.listCalls += 1;
    const next = this.lists.shift();
    if (!next) throw new Error("no more scripted lists");
    return next;
  }

  async watch(
    _kind: ResourceKind,
    options: WatchOptions,
    onEvent: (event: WatchEvent) => void,
  ): Promise<WatchHandle> {
    this.watchCalls.push(options);
    const script = this.watches.shift();
    if (script) return { done: script(options, onEvent), stop: () => {} };
    // out of script: an idle stream that ends when the informer stops it
    let end = () => {};
    const done = new Promise<void>((resolve) => {
      end = resolve;
    });
    return { done, stop: () => end() };
  }
}

function informerWith(api: ScriptedApi) {
  const changes: [ChangeType, string, string][] = [];
  const relists: string[] = [];
  const errors: unknown[] = [];
  const informer = new Informer({
    api: api as unknown as KubeApi,
    kind: KIND,
    onChange: (type, o) => changes.push([type, o.metadata.name, o.metadata.resourceVersion ?? ""]),
    onRelist: (reason) => relists.push(reason),
    onError: (error) => errors.push(error),
    sleep: async () => {},
  });
  return { informer, changes, relists, errors };
}

/** waits until `condition` holds; the timeout only bounds a hang */
const until = (condition: () => boolean) =>
  vi.waitFor(() => expect(condition()).toBe(true), { timeout: 10_000, interval: 1 });

describe("Informer", () => {
  it("lists, then watches from the list's resourceVersion and resumes from the last event seen", async () => {
    const api = new ScriptedApi();
    api.lists.push({ items: [object("a", "5")], resourceVersion: "10" });
    api.watches.push(async (_options, emit) => {
      emit({ type: "MODIFIED", object: object("a", "11") });
      emit({ type: "ADDED", object: object("b", "12") });
      emit({ type: "BOOKMARK", object: object("", "15") });
    });
    const { informer, changes } = informerWith(api);
    await informer.start();
    await until(() => api.watchCalls.length === 2);
    await informer.stop();
    expect(api.watchCalls.map((w) => w.resourceVersion)).toEqual(["10", "15"]);
    expect(changes).toEqual([
      ["added", "a", "5"],
      ["modified", "a", "11"],
      ["added", "b", "12"],
    ]);
    expect(informer.get("ml/b")?.metadata.resourceVersion).toBe("12");
    expect(api.listCalls).toBe(1);
  });

  it("relists on 410 Gone and reports objects that vanished meanwhile as deleted", async () => {
    const api = new ScriptedApi();
    api.lists.push({ items: [object("a", "1"), object("b", "2")], resourceVersion: "2" });
    api.watches.push(async () => {
      throw new KubeApiError(410, "Expired", "too old resource version: 2 (40)");
    });
    api.lists.push({ items: [object("a", "30")], resourceVersion: "40" });
    const { informer, changes, relists, errors } = informerWith(api);
    await informer.start();
    await until(() => api.watchCalls.length === 2);
    await informer.stop();
    expect(relists).toEqual(["initial", "expired"]);
    expect(errors).toEqual([]);
    expect(api.watchCalls[1]?.resourceVersion).toBe("40");
    expect(changes).toContainEqual(["modified", "a", "30"]);
    expect(changes).toContainEqual(["deleted", "b", "2"]);
    expect(informer.list().map((o) => o.metadata.name)).toEqual(["a"]);
  });

  it("reconnects with backoff after other failures, resuming from the same resourceVersion", async () => {
    const api = new ScriptedApi();
    api.lists.push({ items: [], resourceVersion: "7" });
    api.watches.push(async () => {
      throw new Error("ECONNREFUSED");
    });
    api.watches.push(async (_options, emit) => {
      emit({ type: "DELETED", object: object("gone", "9") });
    });
    const { informer, errors, relists, changes } = informerWith(api);
    await informer.start();
    await until(() => api.watchCalls.length === 3);
    await informer.stop();
    expect(errors).toHaveLength(1);
    expect(relists).toEqual(["initial"]);
    expect(api.watchCalls.map((w) => w.resourceVersion)).toEqual(["7", "7", "9"]);
    expect(changes).toEqual([["deleted", "gone", "9"]]);
  });
});
