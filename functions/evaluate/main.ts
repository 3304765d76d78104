/**
 * The evaluate function's process (a pod in the cluster): the only place that reads the
 * environment and builds clients for it.
 */
import { type FunctionMainOptions, openFunctionProcess } from "../pipeline/function-process.ts";
import { evaluateServices } from "../pipeline/function-services.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import { evaluateFunction } from "./handler.ts";

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
