/**
 * An in-memory VllmEndpoint for the unit tests of the vLLM sampler, the weight sync and the
 * rollout handler: a toy model whose tokens follow from the request's seed, the prompt and the
 * loaded folder, with vLLM's pause semantics (in-flight requests end as `abort`, new ones wait for
 * resume), its weight-version tag, restarts and refused requests.
 */
import { UnavailableError } from "../runtime/errors.ts";
import { sha256Hex } from "../runtime/sha256.ts";
import type { CompletionChoice, CompletionRequest, ServedModel, VllmEndpoint } from "./vllm-api.ts";

export class MemoryVllmEndpoint implements VllmEndpoint {
  readonly url: string;
  readonly maxModelLength: number;
  /** the folder the weights came from (the initial folder until a reload) */
  folder = "initial";
  tag = "default";
  paused = false;
  down = false;
  /** requests refused (as if the server were unreachable) before the next ones are answered */
  refuseNext = 0;
  /** every call, in order: "complete", "pause", "reload <folder>", "version <tag>", "resume" */
  readonly calls: string[] = [];
  /** awaited in the middle of each completion (tests pause or restart the server there) */
  duringCompletion: (() => Promise<void>) | undefined;
  #epoch = 0;
  #incarnation = 0;
  #resumed: (() => void)[] = [];

  constructor(url: string, options: { maxModelLength?: number } = {}) {
    this.url = url;
    this.maxModelLength = options.maxModelLength ?? 4096;
  }

  #check(): void {
    if (this.down) throw new UnavailableError("vllm_unavailable", `${this.url} is down`);
    if (this.refuseNext > 0) {
      this.refuseNext--;
      throw new UnavailableError("vllm_unavailable", `${this.url} refused the connection`);
    }
  }

  async health(): Promise<boolean> {
    return !this.down;
  }

  async servedModel(): Promise<ServedModel> {
    this.#check();
    return { name: "memory", maxModelLength: this.maxModelLength };
  }

  async weightVersion(): Promise<string> {
    this.#check();
    return this.tag;
  }

  async complete(request: CompletionRequest): Promise<CompletionChoice[]> {
    this.#check();
    this.calls.push("complete");
    while (this.paused) await new Promise<void>((resolve) => this.#resumed.push(resolve));
    const epoch = this.#epoch;
    const incarnation = this.#incarnation;
    const folder = this.folder;
    await this.duringCompletion?.();
    if (this.down || incarnation !== this.#incarnation)
      throw new UnavailableError("vllm_unavailable", `${this.url} went down mid-request`);
    const aborted = epoch !== this.#epoch;
    return Array.from({ length: request.samples }, (_, i) => {
      const tokens: number[] = [];
      const logProbs: number[] = [];
      let finishReason = "length";
      for (let t = 0; t < request.maxTokens; t++) {
        const h = sha256Hex(`${folder}|${request.seed + i}|${request.promptTokens.join(",")}|${t}`);
        const token = Number.parseInt(h.slice(0, 6), 16) % 50;
        tokens.push(token);
        logProbs.push(-(Number.parseInt(h.slice(6, 10), 16) / 0xffff) * 3);
        if (request.stopTokens.includes(token)) {
          finishReason = "stop";
          break;
        }
        if (aborted && t >= 1) {
          finishReason = "abort";
          break;
        }
      }
      return { tokens, logProbs, finishReason };
    });
  }

  async pause(): Promise<void> {
    this.#check();
    this.calls.push("pause");
    this.paused = true;
    this.#epoch++;
  }

  async reloadWeights(folder: string): Promise<void> {
    this.#check();
    this.calls.push(`reload ${folder}`);
    this.folder = folder;
  }

  async setWeightVersion(tag: string): Promise<void> {
    this.#check();
    this.calls.push(`version ${tag}`);
    this.tag = tag;
  }

  async resume(): Promise<void> {
    this.#check();
    this.calls.push("resume");
    this.paused = false;
    for (const wake of this.#resumed.splice(0)) wake();
  }

  /** a restarted server: the initial folder, the default tag, in-flight requests cut off */
  restart(): void {
    this.folder = "initial";
    this.tag = "default";
    this.paused = false;
    this.#incarnation++;
    for (const wake of this.#resumed.splice(0)) wake();
  }
}
