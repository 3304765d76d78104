import { describe, expect, it } from "vitest";
import { ManualClock } from "../functions/runtime/clock.ts";
import { type KubeApi, KubeApiError, type KubeObject } from "./kube-api.ts";
import { LeaderElector } from "./leader-election.ts";

/** Leases in memory with the API server's optimistic concurrency (409 on a stale resourceVersion). */
class LeaseStore implements Pick<KubeApi, "get" | "create" | "replace"> {
  readonly leases = new Map<string, KubeObject>();
  failing = new Set<string>();
  #version = 0;

  #check(identity: unknown) {
    if (typeof identity === "string" && this.failing.has(identity)) throw new Error("connection refused");
  }

  async get(_kind: unknown, name: string): Promise<KubeObject | undefined> {
    const lease = this.leases.get(name);
    return lease ? structuredClone(lease) : undefined;
  }

  async create(_kind: unknown, object: KubeObject): Promise<KubeObject> {
    this.#check((object.spec as { holderIdentity?: string }).holderIdentity);
    if (this.leases.has(object.metadata.name)) throw new KubeApiError(409, "AlreadyExists", "exists");
    this.#version += 1;
    const stored = { ...object, metadata: { ...object.metadata, resourceVersion: String(this.#version) } };
    this.leases.set(object.metadata.name, stored);
    return structuredClone(stored);
  }

  async replace(_kind: unknown, object: KubeObject): Promise<KubeObject> {
    this.#check((object.spec as { holderIdentity?: string }).holderIdentity);
    const current = this.leases.get(object.metadata.name);
    if (!current || current.metadata.resourceVersion !== object.metadata.resourceVersion) {
      throw new KubeApiError(409, "Conflict", "the object has been modified");
    }
    this.leases.delete(object.metadata.name);
    return await this.create(_kind, object);
  }
}

const yieldOnce = () => new Promise<void>((resolve) => setImmediate(resolve));

function candidate(store: LeaseStore, clock: ManualClock, identity: string) {
  const log: string[] = [];
  const elector = new LeaderElector({
    api: store as unknown as KubeApi,
    namespace: "questa-system",
    name: "questa-operator",
    identity,
    leaseDurationMs: 15_000,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    clock,
    // each retry advances the shared manual clock a little and lets the other candidate run
    sleep: async (ms) => {
      clock.advance(ms / 2);
      await yieldOnce();
    },
    onStartedLeading: () => {
      log.push(`lead@${clock.now()}`);
    },
    onStoppedLeading: () => {
      log.push(`follow@${clock.now()}`);
    },
  });
  return { elector, log };
}

async function until(condition: () => boolean) {
  for (let i = 0; i < 5000 && !condition(); i += 1) await yieldOnce();
  expect(condition()).toBe(true);
}

const holder = (store: LeaseStore) =>
  (store.leases.get("questa-operator")?.spec as
    | { holderIdentity?: string; leaseTransitions?: number }
    | undefined) ?? {};

describe("LeaderElector", () => {
  it("one candidate leads; the other waits while the lease is renewed", async () => {
    const store = new LeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, "a");
    const b = candidate(store, clock, "b");
    a.elector.start();
    await until(() => a.elector.isLeader);
    b.elector.start();
    const start = clock.now();
    await until(() => clock.now() - start > 60_000);
    expect(b.elector.isLeader).toBe(false);
    expect(holder(store)).toMatchObject({ holderIdentity: "a", leaseTransitions: 0 });
    await a.elector.stop({ release: false });
    await b.elector.stop();
  });

  it("a standby takes over a lease its holder stopped renewing, only after the lease duration", async () => {
    const store = new LeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, "a");
    const b = candidate(store, clock, "b");
    a.elector.start();
    await until(() => a.elector.isLeader);
    b.elector.start();
    await a.elector.stop({ release: false });
    const stoppedAt = clock.now();
    await until(() => b.elector.isLeader);
    expect(clock.now() - stoppedAt).toBeGreaterThanOrEqual(15_000);
    expect(holder(store)).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    expect(a.log).toHaveLength(2);
    await b.elector.stop();
  });

  it("a graceful stop releases the lease so the standby leads at its next retry", async () => {
    const store = new LeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, "a");
    const b = candidate(store, clock, "b");
    a.elector.start();
    await until(() => a.elector.isLeader);
    b.elector.start();
    await a.elector.stop();
    expect(holder(store).holderIdentity).toBe("");
    const releasedAt = clock.now();
    await until(() => b.elector.isLeader);
    expect(clock.now() - releasedAt).toBeLessThan(15_000);
    await b.elector.stop();
  });

  it("a leader that cannot renew within the renew deadline steps down", async () => {
    const store = new LeaseStore();
    const clock = new ManualClock();
    const a = candidate(store, clock, "a");
    a.elector.start();
    await until(() => a.elector.isLeader);
    store.failing.add("a");
    const failingSince = clock.now();
    await until(() => !a.elector.isLeader);
    expect(clock.now() - failingSince).toBeGreaterThan(10_000);
    expect(a.log.at(-1)).toMatch(/^follow@/);
    await a.elector.stop();
  });
});
