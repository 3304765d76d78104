import { createServer, type Server } from "node:http";
import type { Logger } from "pino";
import type { Clock } from "../functions/runtime/clock.ts";
import type { KubeApi } from "./kube-api.ts";
import { LeaderElector } from "./leader-election.ts";
import type { OperatorMetrics } from "./metrics.ts";
import {
  type ControllerDeps,
  type ControllerOptions,
  QuestATrainingController,
} from "./questatraining-controller.ts";

export interface OperatorOptions extends ControllerOptions {
  leaderElection: {
    enabled: boolean;
    namespace: string;
    leaseName: string;
    leaseDurationMs?: number;
    renewDeadlineMs?: number;
    retryPeriodMs?: number;
  };
}

/**
 * One operator replica: campaigns for the leader lease and runs the controller only while it leads
 * (standby replicas keep no watches open). Losing the lease stops the controller at once.
 */
export class Operator {
  readonly #deps: ControllerDeps & { api: KubeApi; clock: Clock; metrics: OperatorMetrics; log: Logger };
  readonly #options: OperatorOptions;
  readonly #elector: LeaderElector | undefined;
  #controller: QuestATrainingController | undefined;
  #transition: Promise<void> = Promise.resolve();

  constructor(deps: ControllerDeps, options: OperatorOptions) {
    this.#deps = deps;
    this.#options = options;
    const election = options.leaderElection;
    if (election.enabled) {
      const electionOptions = {
        api: deps.api,
        namespace: election.namespace,
        name: election.leaseName,
        identity: options.instance,
        clock: deps.clock,
        onStartedLeading: () => this.#lead(),
        onStoppedLeading: () => this.#follow(),
        onError: (error: unknown) => deps.log.warn({ err: error }, "leader election request failed"),
        ...(election.leaseDurationMs === undefined ? {} : { leaseDurationMs: election.leaseDurationMs }),
        ...(election.renewDeadlineMs === undefined ? {} : { renewDeadlineMs: election.renewDeadlineMs }),
        ...(election.retryPeriodMs === undefined ? {} : { retryPeriodMs: election.retryPeriodMs }),
      };
      this.#elector = new LeaderElector(electionOptions);
    }
  }

  get isLeader(): boolean {
    return this.#controller !== undefined;
  }

  get metrics(): OperatorMetrics {
    return this.#deps.metrics;
  }

  async start(): Promise<void> {
    if (this.#elector) this.#elector.start();
    else await this.#lead();
  }

  /** stops the controller; with `release` (default) a leader frees its lease so a standby takes over now */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.#elector) await this.#elector.stop({ release: options.release ?? true });
    await this.#follow();
  }

  #lead(): Promise<void> {
    this.#transition = this.#transition.then(async () => {
      if (this.#controller) return;
      this.#deps.log.info({ identity: this.#options.instance }, "leading: starting the controller");
      this.#deps.metrics.leader.set(1);
      const controller = new QuestATrainingController(this.#deps, this.#options);
      this.#controller = controller;
      await controller.start();
    });
    return this.#transition;
  }

  #follow(): Promise<void> {
    this.#transition = this.#transition.then(async () => {
      const controller = this.#controller;
      if (!controller) return;
      this.#controller = undefined;
      this.#deps.metrics.leader.set(0);
      this.#deps.log.info({ identity: this.#options.instance }, "not leading: stopping the controller");
      await controller.stop();
    });
    return this.#transition;
  }
}

/** `/metrics` (Prometheus text), `/healthz` and `/readyz` for the operator pod. */
export function startHttpServer(metrics: OperatorMetrics, port: number, host = "0.0.0.0"): Promise<Server> {
  const server = createServer((request, response) => {
    if (request.url === "/metrics") {
      metrics.text().then(
        (text) => response.writeHead(200, { "Content-Type": metrics.registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
      return;
    }
    if (request.url === "/healthz" || request.url === "/readyz") {
      response.writeHead(200, { "Content-Type": "text/plain" }).end("ok\n");
      return;
    }
    response.writeHead(404).end();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server));
  });
}
