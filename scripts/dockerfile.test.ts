import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { copyTarget, finalImage, parseDockerfile } from "./dockerfile.ts";

const root = join(import.meta.dirname, "..");

describe("scripts/dockerfile.ts", () => {
  it("reads the project's Dockerfile: two stages, the final one's user, env, entrypoint and copies", () => {
    const stages = parseDockerfile(readFileSync(join(root, "Dockerfile"), "utf8"));
    expect(stages.map((s) => s.name)).toEqual(["deps", undefined]);
    const spec = finalImage(stages);
    expect(spec).toMatchObject({
      user: "node",
      workdir: "/app",
      entrypoint: ["node", "bin/questa.js"],
      cmd: ["--help"],
      // a comment line inside the ENV continuation is dropped, as docker does
      env: {
        NODE_ENV: "production",
        ONNXRUNTIME_NODE_INSTALL: "skip",
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
      },
    });
    expect(spec.copies[0]).toEqual({
      from: "deps",
      sources: ["/app/node_modules"],
      dest: "/app/node_modules",
    });
    expect(spec.copies).toContainEqual({ from: undefined, sources: ["bin"], dest: "/app/bin" });
  });

  it("follows docker's COPY rules for directories, files and a trailing slash", () => {
    const spec = finalImage(
      parseDockerfile(
        [
          "FROM base",
          "WORKDIR /srv",
          "WORKDIR app",
          'ENV A=1 B="two words"',
          "COPY a.json b.json ./",
          "COPY src ./src",
          "COPY lib/x.mjs ./lib/y.mjs",
          'ENTRYPOINT ["x"]',
        ].join("\n"),
      ),
    );
    expect(spec.workdir).toBe("/srv/app");
    expect(spec.env).toEqual({ A: "1", B: "two words" });
    const [files, dir, renamed] = spec.copies;
    if (!files || !dir || !renamed) throw new Error("three copies expected");
    expect(copyTarget(files, "a.json", false)).toBe("/srv/app/a.json");
    expect(copyTarget(dir, "src", true)).toBe("/srv/app/src");
    expect(copyTarget(renamed, "lib/x.mjs", false)).toBe("/srv/app/lib/y.mjs");
  });

  it("refuses an instruction it does not understand rather than building a different image", () => {
    expect(() => finalImage(parseDockerfile("FROM base\nVOLUME /data\n"))).toThrow(/VOLUME/);
  });
});
