import { execFileSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromiumExecutable } from "../browser/chromium.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * vitest global setup of the `browser` project: makes sure a headless Chromium is there, installing
 * Debian's `chromium` with scripts/install-chromium.sh when it is missing. Fails, never skips, when
 * it cannot (the script says what to install by hand).
 */
export default function setup(): void {
  try {
    execFileSync("bash", [join(repoRoot, "scripts", "install-chromium.sh")], {
      stdio: ["ignore", "inherit", "inherit"],
    });
  } catch (error) {
    throw new Error(
      `Chromium is missing and scripts/install-chromium.sh could not install it: ${String(error)}`,
    );
  }
  chromiumExecutable();
}
