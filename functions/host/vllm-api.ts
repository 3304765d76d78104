/**
 * vLLM's HTTP API: the only module of questa that talks to a vLLM server (checked by
 * vllm-api.test.ts). Written against vLLM 0.32's OpenAI-compatible server, started with
 * VLLM_SERVER_DEV_MODE=1 for the weight routes (/pause, /collective_rpc, /update_weight_version,
 * /resume, /weight_info). Requests go over node:http rather than fetch: a completion of many long
 * responses can take longer than fetch's fixed 300 s wait for response headers.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { z } from "zod";
import { DeadLetterError, RetryableError, UnavailableError } from "../runtime/errors.ts";

/** one completion request: `samples` continuations of the same prompt tokens */
export interface CompletionRequest {
  promptTokens: readonly number[];
  samples: number;
  /** the request's seed; vLLM gives continuation i the seed `seed + i` */
  seed: number;
  maxTokens: number;
  temperature: number;
  /** 1 = off */
  topP: number;
  /** 0 = off */
  topK: number;
  stopTokens: readonly number[];
}

export interface CompletionChoice {
  /** generated token ids, the stop token included when one ended the response */
  tokens: number[];
  /** log-prob of each generated token as the server reports it (raw: before temperature, top-k, top-p) */
  logProbs: number[];
  /** stop, length; abort when a pause (a weight reload) cut the request short */
  finishReason: string;
}

/** what the server serves: the model name to send and its context length */
export interface ServedModel {
  name: string;
  maxModelLength: number;
}

/**
 * A vLLM server as questa uses it (the sampler samples, the weight sync reloads). The port the
 * sampler and sync are written against; VllmHttpServer implements it, the unit tests a fake.
 */
export interface VllmEndpoint {
  /** base URL, e.g. http://10.0.0.7:8000 */
  readonly url: string;
  health(): Promise<boolean>;
  servedModel(): Promise<ServedModel>;
  /** the tag last set by /update_weight_version ("default" until then) */
  weightVersion(): Promise<string>;
  complete(request: CompletionRequest): Promise<CompletionChoice[]>;
  /** stops scheduling: in-flight requests end with finish reason abort, new ones queue until resume */
  pause(): Promise<void>;
  /** reloads the weights from a Hugging Face folder on the server's file system */
  reloadWeights(folder: string): Promise<void>;
  setWeightVersion(tag: string): Promise<void>;
  resume(): Promise<void>;
}

const ModelsResponse = z.object({
  data: z.array(z.object({ id: z.string(), max_model_len: z.int().positive() })).min(1),
});
const WeightInfoResponse = z.object({ weight_version: z.string() });
const CompletionResponse = z.object({
  choices: z.array(
    z.object({
      index: z.int().min(0),
      finish_reason: z.string().nullable(),
      token_ids: z.array(z.int().min(0)).nullable(),
      logprobs: z.object({ token_logprobs: z.array(z.number().nullable()) }).nullable(),
    }),
  ),
});

/** requests that wait for the model (completions, reloads) get this long; others a few seconds */
const LONG_REQUEST_MS = 60 * 60_000;
const SHORT_REQUEST_MS = 10_000;

interface HttpAnswer {
  status: number;
  body: string;
}

function send(
  url: URL,
  method: "GET" | "POST",
  body: string | undefined,
  timeoutMs: number,
): Promise<HttpAnswer> {
  const request = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<HttpAnswer>((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

/** vLLM's error body: {"error": {"message": ...}} or {"detail": ...} */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: unknown } | string; detail?: unknown };
    const message = typeof parsed.error === "object" ? parsed.error.message : (parsed.error ?? parsed.detail);
    if (typeof message === "string") return message;
  } catch {
    // not JSON: the raw text below
  }
  return body.slice(0, 500);
}

/** A vLLM server over HTTP. */
export class VllmHttpServer implements VllmEndpoint {
  readonly url: string;
  #served: ServedModel | undefined;

  constructor(url: string) {
    this.url = url.replace(/\/+$/, "");
  }

  /**
   * One request. Unreachable, 5xx and 429 mean the server is down, restarting or busy
   * (UnavailableError: waited for, never held against the message); any other refusal is about the
   * request (DeadLetterError).
   */
  async #call<T>(
    method: "GET" | "POST",
    path: string,
    schema: z.ZodType<T>,
    body?: unknown,
    timeoutMs = SHORT_REQUEST_MS,
  ): Promise<T> {
    let answer: HttpAnswer;
    try {
      answer = await send(
        new URL(`${this.url}${path}`),
        method,
        body === undefined ? undefined : JSON.stringify(body),
        timeoutMs,
      );
    } catch (error) {
      this.#served = undefined;
      throw new UnavailableError(
        "vllm_unavailable",
        `vLLM server ${this.url} did not answer ${method} ${path}: ${String(error)}`,
        { cause: error },
      );
    }
    if (answer.status >= 500 || answer.status === 429 || answer.status === 404) {
      // 404: a restarted server without the dev-mode routes, or serving another model name, yet
      this.#served = undefined;
      throw new UnavailableError(
        "vllm_unavailable",
        `vLLM server ${this.url} answered ${method} ${path} with ${answer.status}: ${errorText(answer.body)}`,
      );
    }
    if (answer.status >= 400) {
      throw new DeadLetterError(
        "vllm_rejected",
        `vLLM server ${this.url} refused ${method} ${path} (${answer.status}): ${errorText(answer.body)}`,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.body);
    } catch (error) {
      throw new RetryableError("vllm_bad_answer", `vLLM server ${this.url}: ${path} answered no JSON`, {
        cause: error,
      });
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new RetryableError(
        "vllm_bad_answer",
        `vLLM server ${this.url}: unexpected answer to ${path}: ${parsed.error.message}`,
      );
    }
    return parsed.data;
  }

  async health(): Promise<boolean> {
    try {
      const answer = await send(new URL(`${this.url}/health`), "GET", undefined, SHORT_REQUEST_MS);
      return answer.status === 200;
    } catch {
      return false;
    }
  }

  async servedModel(): Promise<ServedModel> {
    if (this.#served) return this.#served;
    const models = await this.#call("GET", "/v1/models", ModelsResponse);
    const first = models.data[0]!;
    this.#served = { name: first.id, maxModelLength: first.max_model_len };
    return this.#served;
  }

  async weightVersion(): Promise<string> {
    return (await this.#call("GET", "/weight_info", WeightInfoResponse)).weight_version;
  }

  async complete(request: CompletionRequest): Promise<CompletionChoice[]> {
    const { name } = await this.servedModel();
    const answer = await this.#call(
      "POST",
      "/v1/completions",
      CompletionResponse,
      {
        model: name,
        prompt: [...request.promptTokens],
        n: request.samples,
        seed: request.seed,
        max_tokens: request.maxTokens,
        temperature: request.temperature,
        top_p: request.topP,
        // vLLM spells "off" as -1 (0 is refused)
        top_k: request.topK > 0 ? request.topK : -1,
        stop_token_ids: [...request.stopTokens],
        // the sampled token's own log-prob, none of the alternatives
        logprobs: 0,
        return_tokens_as_token_ids: true,
        return_token_ids: true,
        // (not ignore_eos: in vLLM 0.32 it also stops the EOS ids listed in stop_token_ids from
        // ending a response; the model's EOS ids are among questa's stop tokens anyway)
      },
      LONG_REQUEST_MS,
    );
    const choices = [...answer.choices].sort((a, b) => a.index - b.index);
    if (choices.length !== request.samples) {
      throw new RetryableError(
        "vllm_bad_answer",
        `vLLM server ${this.url} returned ${choices.length} completions for n=${request.samples}`,
      );
    }
    return choices.map((choice) => {
      const tokens = choice.token_ids ?? [];
      const logProbs = (choice.logprobs?.token_logprobs ?? []).map((x) => x ?? Number.NaN);
      if (logProbs.length !== tokens.length || logProbs.some((x) => !Number.isFinite(x))) {
        throw new RetryableError(
          "vllm_bad_answer",
          `vLLM server ${this.url} returned ${tokens.length} tokens with ${logProbs.length} finite log-probs`,
        );
      }
      return { tokens, logProbs, finishReason: choice.finish_reason ?? "abort" };
    });
  }

  async pause(): Promise<void> {
    await this.#call("POST", "/pause?mode=abort&clear_cache=true", z.unknown());
  }

  async reloadWeights(folder: string): Promise<void> {
    await this.#call(
      "POST",
      "/collective_rpc",
      z.unknown(),
      { method: "reload_weights", kwargs: { weights_path: folder } },
      LONG_REQUEST_MS,
    );
  }

  async setWeightVersion(tag: string): Promise<void> {
    await this.#call("POST", "/update_weight_version", z.unknown(), { new_version: tag });
  }

  async resume(): Promise<void> {
    await this.#call("POST", "/resume", z.unknown());
  }
}
