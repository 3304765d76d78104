import { describe, expect, it } from "vitest";
import { InputError } from "../runtime/errors.ts";
import {
  derivedTopicPrefix,
  isOwnObjectRoot,
  legacyStorePrefix,
  runObjectRoot,
  runStorePrefix,
  runTopicPrefix,
  storePrefixOfRoot,
} from "./run-names.ts";

const victim = { namespace: "ml", name: "demo" };

describe("run names", () => {
  it("derive topics and consumer groups from the namespace and the name", () => {
    expect(derivedTopicPrefix(victim)).toBe("questa.ml.demo");
    expect(runTopicPrefix(victim, undefined)).toBe("questa.ml.demo");
    expect(runTopicPrefix(victim, "questa.ml.demo.v2")).toBe("questa.ml.demo.v2");
    expect(() => runTopicPrefix({ namespace: "evil", name: "demo" }, "questa.ml.demo")).toThrow(InputError);
  });

  it("put the namespace and the name in every object key", () => {
    expect(runStorePrefix("questa", "ml")).toBe("questa/namespaces/ml/");
    expect(runStorePrefix("teams/a/", "ml")).toBe("teams/a/namespaces/ml/");
    expect(runStorePrefix("", "ml")).toBe("namespaces/ml/");
    expect(runObjectRoot("questa", victim)).toBe("questa/namespaces/ml/demo/");
    expect(storePrefixOfRoot("questa/namespaces/ml/demo/", "demo")).toBe("questa/namespaces/ml/");
    expect(legacyStorePrefix("questa")).toBe("questa/");
    expect(legacyStorePrefix("")).toBe("");
  });

  it("no run's object root lies under another run's, whatever prefixes they choose", () => {
    // exhaustive over small prefixes: a hostile run picks any allowed prefix, in its own namespace
    const segments = ["questa", "namespaces", "ml", "evil", "demo", "x"];
    const prefixes = [""];
    for (const a of segments) {
      prefixes.push(a);
      for (const b of segments) {
        prefixes.push(`${a}/${b}`);
        for (const c of segments) prefixes.push(`${a}/${b}/${c}`);
      }
    }
    const runs = [victim, { namespace: "evil", name: "demo" }, { namespace: "ml", name: "x" }];
    const roots = prefixes.flatMap((prefix) =>
      runs.flatMap((run) =>
        isOwnObjectRoot(runObjectRoot(prefix, run), run) ? [{ run, root: runObjectRoot(prefix, run) }] : [],
      ),
    );
    expect(roots.length).toBeGreaterThan(100);
    for (const a of roots) {
      for (const b of roots) {
        if (a.run === b.run) continue;
        expect(b.root.startsWith(a.root), `${a.root} contains ${b.root}`).toBe(false);
      }
    }
    // prefixes with a namespaces segment are exactly the ones refused
    expect(
      isOwnObjectRoot("questa/namespaces/ml/demo/namespaces/evil/demo/", { namespace: "evil", name: "demo" }),
    ).toBe(false);
  });
});
