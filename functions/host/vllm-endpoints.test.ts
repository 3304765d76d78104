import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import { parseVllmEndpoints, resolvingEndpoints } from "./vllm-endpoints.ts";
import { MemoryVllmEndpoint } from "./vllm-memory-endpoint.ts";

describe("QUESTA_VLLM_ENDPOINTS", () => {
  it("reads comma-separated base URLs and names the variable and the fix when it is wrong", () => {
    expect(parseVllmEndpoints(" http://vllm:8000, https://10.0.0.2:9000/ ").map((u) => u.href)).toEqual([
      "http://vllm:8000/",
      "https://10.0.0.2:9000/",
    ]);
    expect(() => parseVllmEndpoints(undefined)).toThrow(InputError);
    expect(() => parseVllmEndpoints("")).toThrow(
      /QUESTA_VLLM_ENDPOINTS: rollout.engine is vllm but no vLLM server/,
    );
    expect(() => parseVllmEndpoints("vllm:8000")).toThrow(/"vllm:8000" is not an http\(s\) base URL \(fix:/);
  });

  it("makes one server of each address a host resolves to, looked up again every few seconds", async () => {
    let now = 0;
    const answers: Record<string, string[]> = { vllm: ["10.0.0.1", "10.0.0.2"], other: ["fd00::1"] };
    const looked: string[] = [];
    const endpoints = resolvingEndpoints(
      parseVllmEndpoints("http://vllm:8000,http://other:8000,http://127.0.0.1:9"),
      {
        lookup: async (host) => {
          looked.push(host);
          return answers[host] ?? [];
        },
        now: () => now,
        connect: (url) => new MemoryVllmEndpoint(url),
      },
    );
    const first = await endpoints();
    expect(first.map((e) => e.url)).toEqual([
      "http://10.0.0.1:8000",
      "http://10.0.0.2:8000",
      "http://[fd00::1]:8000",
      "http://127.0.0.1:9",
    ]);
    expect(await endpoints()).toBe(first);
    // a pod went away and another came: the same server keeps its client
    answers.vllm = ["10.0.0.2", "10.0.0.3"];
    now += 6000;
    const second = await endpoints();
    expect(second.map((e) => e.url).slice(0, 2)).toEqual(["http://10.0.0.2:8000", "http://10.0.0.3:8000"]);
    expect(second[0]).toBe(first[1]);
    expect(looked).toEqual(["vllm", "other", "vllm", "other"]);
  });
});
