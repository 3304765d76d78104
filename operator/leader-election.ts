import type { Clock } from "../functions/runtime/clock.ts";
import { isConflict, type KubeApi, type KubeObject, type ResourceKind } from "./kube-api.ts";

export const LEASE: ResourceKind = {
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
};

export interface LeaderElectionOptions {
  api: KubeApi;
  namespace: string;
  name: string;
  identity: string;
  /** how long a lease stays valid without renewal */
  leaseDurationMs?: number;
  /** a leader that cannot renew within this long steps down */
  renewDeadlineMs?: number;
  /** how often to try to acquire or renew */
  retryPeriodMs?: number;
  clock: Clock;
  sleep?: (ms: number) => Promise<void>;
  onStartedLeading: () => void | Promise<void>;
  onStoppedLeading: () => void | Promise<void>;
  onError?: (error: unknown) => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** RFC 3339 with microseconds, as Lease's MicroTime fields expect. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");

/**
 * Lease-based leader election (coordination.k8s.io/v1), the algorithm of client-go's leaderelection:
 * a candidate takes the lease when it is free or when its holder has not renewed it for a whole lease
 * duration, measured on the candidate's own clock from when it last saw the lease change (no clock
 * skew between replicas matters). Writes use the lease's resourceVersion, so two candidates never both win.
 */
export class LeaderElector {
  readonly #options: LeaderElectionOptions;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  #observed: { record: string; at: number } | undefined;
  #leading = false;
  #running = false;
  #loop: Promise<void> | undefined;
  #lastRenew = 0;
  #wake: (() => void) | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#options = options;
    this.#leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.#retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.#sleep =
      options.sleep ??
      ((ms) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, ms);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        }));
  }

  get isLeader(): boolean {
    return this.#leading;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** stops campaigning; a leader steps down and, with `release`, frees the lease for a fast failover */
  async stop(options: { release?: boolean } = { release: true }): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    if (this.#leading) {
      this.#leading = false;
      if (options.release !== false) await this.#release().catch((error) => this.#options.onError?.(error));
      await this.#options.onStoppedLeading();
    }
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let ok = false;
      try {
        ok = await this.#tryAcquireOrRenew();
      } catch (error) {
        this.#options.onError?.(error);
      }
      const now = this.#options.clock.now();
      if (ok) {
        this.#lastRenew = now;
        if (!this.#leading && this.#running) {
          this.#leading = true;
          await this.#options.onStartedLeading();
        }
      } else if (this.#leading && now - this.#lastRenew > this.#renewDeadlineMs) {
        // could not renew in time: another replica may take over any moment, so stop acting now
        this.#leading = false;
        await this.#options.onStoppedLeading();
      }
      if (this.#running) await this.#sleep(this.#retryPeriodMs);
    }
  }

  #desired(previous: LeaseSpec | undefined, now: number): LeaseSpec {
    const holding = previous?.holderIdentity === this.#options.identity;
    return {
      holderIdentity: this.#options.identity,
      leaseDurationSeconds: Math.max(1, Math.round(this.#leaseDurationMs / 1000)),
      acquireTime: holding && previous?.acquireTime ? previous.acquireTime : microTime(now),
      renewTime: microTime(now),
      leaseTransitions: holding ? (previous?.leaseTransitions ?? 0) : (previous?.leaseTransitions ?? -1) + 1,
    };
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, clock } = this.#options;
    const now = clock.now();
    const lease = await api.get(LEASE, name, namespace);
    if (!lease) {
      try {
        await api.create(LEASE, {
          apiVersion: "coordination.k8s.io/v1",
          kind: "Lease",
          metadata: { name, namespace },
          spec: this.#desired(undefined, now),
        });
        return true;
      } catch (error) {
        if (isConflict(error) || (error as { code?: number }).code === 409) return false;
        throw error;
      }
    }
    const spec = (lease.spec ?? {}) as LeaseSpec;
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.leaseTransitions]);
    if (this.#observed?.record !== record) this.#observed = { record, at: now };
    const heldByOther =
      spec.holderIdentity !== undefined &&
      spec.holderIdentity !== "" &&
      spec.holderIdentity !== this.#options.identity;
    const durationMs = (spec.leaseDurationSeconds ?? this.#leaseDurationMs / 1000) * 1000;
    if (heldByOther && now - this.#observed.at < durationMs) return false;
    const updated: KubeObject = { ...lease, spec: this.#desired(spec, now) };
    try {
      await api.replace(LEASE, updated);
      return true;
    } catch (error) {
      if (isConflict(error)) return false;
      throw error;
    }
  }

  async #release(): Promise<void> {
    const { api, namespace, name } = this.#options;
    const lease = await api.get(LEASE, name, namespace);
    const spec = (lease?.spec ?? {}) as LeaseSpec;
    if (!lease || spec.holderIdentity !== this.#options.identity) return;
    await api.replace(LEASE, {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: "",
        leaseDurationSeconds: 1,
        renewTime: microTime(this.#options.clock.now()),
      },
    });
  }
}
