/**
 * The augment function's process (a pod in the cluster): the only place that reads the environment
 * and builds clients. Settings come from the variables the operator sets on every function pod.
 */
import { readFile, stat } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { readResourceFile } from "../contracts/resource-file.ts";
import { charTokenizer, loadTokenizer } from "../model/tokenizer.ts";
import type { Tokenizer } from "../questa/augmentation.ts";
import { InputError } from "../runtime/errors.ts";
import { describeJsonError } from "../runtime/json-text.ts";
import { KafkaBus, kafkaConnectionConfigFromEnv } from "../runtime/kafka-bus.ts";
import { createLogger } from "../runtime/logger.ts";
import { bindFunction } from "../runtime/runner.ts";
import { S3ObjectStore, type S3StoreConfig, s3StoreConfigFromEnv } from "../runtime/s3-object-store.ts";
import { serveFunction } from "../runtime/serve.ts";
import { augmentConfigFromSpec } from "./config.ts";
import type { OpenDataset } from "./dataset-source.ts";
import { augmentFunction } from "./handler.ts";

const EnvSchema = z.object({
  QUESTA_RUN: z.string().min(1),
  QUESTA_CONFIG: z.string().min(1).describe("path of the run's training.yaml (the validated spec)"),
  QUESTA_TOPIC_PREFIX: z.string().min(1),
  QUESTA_CONSUMER_GROUP: z.string().min(1).optional(),
  QUESTA_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  /** "object-store" (what the operator sets on pods): datasets and models only from s3:// URIs */
  QUESTA_DATA_SOURCES: z.enum(["object-store", "any"]).default("any"),
});

export async function main(env: Record<string, string | undefined> = process.env): Promise<number> {
  const logger = createLogger({ name: "augment" });
  const parsedEnv = EnvSchema.safeParse(env);
  if (!parsedEnv.success) {
    throw new InputError(
      "invalid_environment",
      parsedEnv.error.issues.map((issue) => ({ path: issue.path.join("."), message: issue.message })),
    );
  }
  const settings = parsedEnv.data;
  const documents = await readResourceFile(settings.QUESTA_CONFIG, "QUESTA_CONFIG");
  const first = documents[0]?.result;
  if (first === undefined || !first.ok) {
    throw new InputError(
      "invalid_training_config",
      first?.ok === false ? first.issues : [{ path: "", message: "empty" }],
    );
  }
  const spec = first.value.spec;
  const storeConfig = s3StoreConfigFromEnv(env);
  const store = new S3ObjectStore(storeConfig);
  const openDataset = datasetOpener(storeConfig, {
    localFiles: settings.QUESTA_DATA_SOURCES !== "object-store",
  });
  const tokenizer =
    spec.augmentation.unit !== "tokens"
      ? undefined
      : spec.model.source === "synthetic"
        ? charTokenizer()
        : await checkpointTokenizer(openDataset, spec.model.uri ?? "");
  const runner = bindFunction(augmentFunction, {
    bus: new KafkaBus(kafkaConnectionConfigFromEnv(env)),
    store,
    run: settings.QUESTA_RUN,
    topicPrefix: settings.QUESTA_TOPIC_PREFIX,
    seed: String(spec.seed),
    logger,
    ...(settings.QUESTA_CONSUMER_GROUP === undefined ? {} : { groupId: settings.QUESTA_CONSUMER_GROUP }),
    services: {
      config: augmentConfigFromSpec(settings.QUESTA_RUN, spec),
      openDataset,
      ...(tokenizer === undefined ? {} : { tokenizer }),
    },
  });
  return serveFunction(runner, { port: settings.QUESTA_METRICS_PORT, host: "0.0.0.0" });
}

/** What a function may open besides its own store: object-store URIs only (a pod), or local files too. */
export interface DatasetOpenerOptions {
  /** false in a cluster: a local path would read the pod's own files (mounted secrets) */
  localFiles: boolean;
}

/**
 * `s3://bucket/key` through an S3 store on that bucket (hand-uploaded files carry no sha256); else a
 * local file when `localFiles`. Sizes are checked before bytes are read (the store's maxObjectBytes).
 */
export function datasetOpener(
  base: S3StoreConfig,
  options: DatasetOpenerOptions = { localFiles: true },
): OpenDataset {
  const buckets = new Map<string, S3ObjectStore>();
  return async (uri) => {
    const s3 = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
    if (s3) {
      const [, bucket, key] = s3 as unknown as [string, string, string];
      let store = buckets.get(bucket);
      if (store === undefined) {
        store = new S3ObjectStore({ ...base, bucket, prefix: "", verify: "if-present" });
        buckets.set(bucket, store);
      }
      return store.get(key);
    }
    if (!options.localFiles) {
      throw new InputError("local_path_refused", [
        {
          path: "uri",
          message: `${JSON.stringify(uri)} is not an object-store URI; functions in a cluster read datasets and models from the object store only`,
          hint: "upload the file and give s3://BUCKET/KEY",
        },
      ]);
    }
    const path = uri.startsWith("file://") ? fileURLToPath(uri) : uri;
    try {
      const size = (await stat(path)).size;
      if (size > base.maxObjectBytes) {
        throw new InputError("file_too_large", [
          {
            path: "uri",
            message: `${path} is ${size} bytes, over the limit of ${base.maxObjectBytes}`,
            hint: "split the dataset, or raise QUESTA_S3_MAX_OBJECT_BYTES",
          },
        ]);
      }
      return new Uint8Array(await readFile(path));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  };
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

if (process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      console.error(error instanceof Error ? error.message : error);
      process.exitCode = 1;
    },
  );
}
