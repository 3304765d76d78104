#!/usr/bin/env node
// Entry of the `questa` CLI. Installs dependencies on a fresh clone, then runs the TypeScript
// sources through tsx so there is no build step between a checkout and a run.
import { ensureInstall } from "../scripts/ensure-install.mjs";

ensureInstall();
const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
