import { describe, expect, it } from "vitest";
import { z } from "zod";
import { InputError, schemaInputError } from "./errors.ts";

describe("schemaInputError", () => {
  const Schema = z.object({ brokers: z.array(z.string().min(1)), port: z.int() });
  const failure = Schema.safeParse({ brokers: [""], port: "x" }).error!;

  it("keeps every issue with its dotted path and zod's message", () => {
    const error = schemaInputError("invalid_config", failure);
    expect(error).toBeInstanceOf(InputError);
    expect(error.code).toBe("invalid_config");
    expect(error.issues.map((i) => i.path)).toEqual(["brokers.0", "port"]);
    expect(error.issues.every((i) => i.hint === undefined && i.message.length > 0)).toBe(true);
  });

  it("puts paths under a prefix and adds a hint, shared or per issue", () => {
    expect(schemaInputError("c", failure, { under: "data", hint: "fix it" }).issues).toMatchObject([
      { path: "data.brokers.0", hint: "fix it" },
      { path: "data.port", hint: "fix it" },
    ]);
    const perIssue = schemaInputError("c", failure, { hint: (issue) => `set ${String(issue.path[0])}` });
    expect(perIssue.issues.map((i) => i.hint)).toEqual(["set brokers", "set port"]);
  });
});
