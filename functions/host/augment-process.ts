/**
 * The augment function's process (a pod in the cluster, `questa function augment`), started by the
 * shared start-up (openFunctionProcess) like every function's: the same environment, shutdown
 * signal, seed and dead-letter settings.
 */
import { augmentConfigFromSpec } from "../augment/config.ts";
import type { OpenDataset } from "../augment/dataset-source.ts";
import { augmentFunction } from "../augment/handler.ts";
import { charTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import type { Tokenizer } from "../questa/augmentation.ts";
import { InputError } from "../runtime/errors.ts";
import { describeJsonError } from "../runtime/json-text.ts";
import { bindFunction } from "../runtime/runner.ts";
import { serveFunction } from "../runtime/serve.ts";
import { type FunctionMainOptions, openFunctionProcess } from "./function-process.ts";

export async function main(
  env: Record<string, string | undefined> = process.env,
  options: FunctionMainOptions = {},
): Promise<number> {
  const proc = await openFunctionProcess("augment", env);
  const spec = proc.resource.spec;
  try {
    const tokenizer =
      spec.augmentation.unit !== "tokens"
        ? undefined
        : spec.model.source === "synthetic"
          ? charTokenizer()
          : await checkpointTokenizer(proc.open, spec.model.uri ?? "");
    const runner = bindFunction(augmentFunction, {
      ...proc.bindOptions,
      services: {
        config: augmentConfigFromSpec(proc.run, spec),
        openDataset: proc.open,
        ...(tokenizer === undefined ? {} : { tokenizer }),
      },
    });
    return await serveFunction(runner, {
      port: proc.settings.QUESTA_METRICS_PORT,
      host: proc.settings.QUESTA_METRICS_HOST,
      ...options,
    });
  } finally {
    await proc.close();
  }
}

async function checkpointTokenizer(open: OpenDataset, checkpointUri: string): Promise<Tokenizer> {
  const uri = `${checkpointUri.replace(/\/+$/, "")}/tokenizer.json`;
  const bytes = await open(uri);
  if (bytes === undefined) {
    throw new InputError("tokenizer_not_found", [
      {
        path: "model.uri",
        message: `no tokenizer.json at ${uri}`,
        hint: "the tokens unit needs the policy's tokenizer",
      },
    ]);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new InputError("tokenizer_invalid", [
      { path: "model.uri", message: `${uri} is ${describeJsonError(error)}` },
    ]);
  }
  return loadTokenizer(json);
}
