/**
 * The evaluate function's process (a pod in the cluster, `questa function evaluate`), started by
 * the shared start-up (openFunctionProcess).
 */

import { evaluateFunction } from "../evaluate/handler.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import { type FunctionMainOptions, openFunctionProcess } from "./function-process.ts";
import { evaluateServices } from "./function-services.ts";

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const proc = await openFunctionProcess("evaluate", env);
  const services = evaluateServices({ spec: proc.resource.spec, keys: proc.keys, open: proc.open });
  try {
    const runner = bindFunction(evaluateFunction, { ...proc.bindOptions, services });
    return await serveFunction(runner, {
      port: proc.settings.QUESTA_METRICS_PORT,
      host: proc.settings.QUESTA_METRICS_HOST,
      ...options,
    });
  } finally {
    await services.sampler.dispose();
    await proc.close();
  }
}
