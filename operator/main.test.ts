import { describe, expect, it } from "vitest";
import { InputError } from "../functions/runtime/errors.ts";
import { parseOperatorConfig } from "./main.ts";

describe("parseOperatorConfig", () => {
  it("reads the environment with defaults, and flags override it", () => {
    const config = parseOperatorConfig(
      { QUESTA_OPERATOR_IMAGE: "questa:1", QUESTA_METRICS_PORT: "9000", QUESTA_WATCH_NAMESPACE: "" },
      ["--leader-elect=false", "--watch-namespace=ml"],
    );
    expect(config).toMatchObject({
      QUESTA_OPERATOR_IMAGE: "questa:1",
      QUESTA_METRICS_PORT: 9000,
      QUESTA_LEADER_ELECT: "false",
      QUESTA_WATCH_NAMESPACE: "ml",
      QUESTA_LEADER_ELECTION_LEASE: "questa-operator",
      QUESTA_AUTOSCALE_INTERVAL_MS: 15_000,
    });
  });

  it("names every invalid setting and how to set it", () => {
    let error: unknown;
    try {
      parseOperatorConfig({ QUESTA_METRICS_PORT: "http" }, []);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InputError);
    const issues = (error as InputError).issues;
    expect(issues.map((i) => i.path).sort()).toEqual(["QUESTA_METRICS_PORT", "QUESTA_OPERATOR_IMAGE"]);
    expect(issues.find((i) => i.path === "QUESTA_OPERATOR_IMAGE")?.hint).toContain("--operator-image=");
  });
});
