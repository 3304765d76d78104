/**
 * Every name a run gets outside Kubernetes (Kafka topics, consumer groups, object-store keys)
 * derives here from the run's namespace and name, so no spec value can make one run's names
 * another run's. The operator, `questa run --kafka --s3` and `questa validate` all use this module.
 *
 * Why the names cannot collide:
 * - topics: `questa.<namespace>.<name>[.<suffix>].<logical>`; namespaces and run names are DNS
 *   labels (no dots), so the first three dot-separated parts name exactly one run.
 * - objects: `<storage.prefix>/namespaces/<namespace>/<name>/...`; `storage.prefix` may not contain
 *   a `namespaces` segment, so the first `namespaces` segment of any key is the one written here,
 *   and the two segments after it name exactly one run: no run's keys lie under another's.
 */
import { InputError } from "../runtime/errors.ts";

export interface RunIdentity {
  namespace: string;
  name: string;
}

export const TOPIC_ROOT = "questa";
/** the reserved key segment after which the namespace and the run name follow */
export const NAMESPACES_SEGMENT = "namespaces";

/** the run's own topic prefix, `questa.<namespace>.<name>` */
export const derivedTopicPrefix = (run: RunIdentity): string => `${TOPIC_ROOT}.${run.namespace}.${run.name}`;

/** why `topicPrefix` cannot be this run's (undefined when it can: its own prefix or under it) */
export function topicPrefixProblem(run: RunIdentity, topicPrefix: string | undefined): string | undefined {
  if (topicPrefix === undefined) return undefined;
  const own = derivedTopicPrefix(run);
  if (topicPrefix === own || topicPrefix.startsWith(`${own}.`)) return undefined;
  return `${JSON.stringify(topicPrefix)} is not this run's: topic prefixes must be ${own} or begin with ${own}.`;
}

/** the run's topic prefix: the spec's when it is the run's own, else an InputError saying the fix */
export function runTopicPrefix(run: RunIdentity, topicPrefix: string | undefined): string {
  const problem = topicPrefixProblem(run, topicPrefix);
  if (problem !== undefined) {
    throw new InputError("foreign_topic_prefix", [
      {
        path: "spec.kafka.topicPrefix",
        message: problem,
        hint: `remove it (the default is ${derivedTopicPrefix(run)}) or use ${derivedTopicPrefix(run)}.<suffix>`,
      },
    ]);
  }
  return topicPrefix ?? derivedTopicPrefix(run);
}

/** consumer group of a function's workers */
export const functionGroup = (topicPrefix: string, fn: string): string => `${topicPrefix}.${fn}`;
/** consumer group the operator folds the run's result events with */
export const operatorGroup = (topicPrefix: string): string => `questa-operator.${topicPrefix}`;

/** `prefix` without leading/trailing slashes, "" for the bucket's root */
const trimmed = (prefix: string): string => prefix.replace(/^\/+|\/+$/g, "");

/** why `prefix` cannot be a storage prefix (undefined when it can) */
export function storagePrefixProblem(prefix: string): string | undefined {
  if (prefix.startsWith("/")) return "starts with /";
  if (/[\\\0]/.test(prefix)) return "contains a backslash or NUL";
  const inner = trimmed(prefix);
  if (inner === "") return undefined;
  for (const segment of inner.split("/")) {
    if (segment === "..") return "climbs out with a .. segment";
    if (segment === "" || segment === ".") return "has an empty or . segment";
    if (segment === NAMESPACES_SEGMENT) {
      return `has a ${NAMESPACES_SEGMENT} segment, which is reserved for the operator's <namespace>/<name> layout`;
    }
  }
  return undefined;
}

/**
 * The key prefix of the store the run's functions write through (`QUESTA_S3_PREFIX`): their keys
 * are `<run name>/...` under it.
 */
export function runStorePrefix(storagePrefix: string, namespace: string): string {
  const base = trimmed(storagePrefix);
  return `${base === "" ? "" : `${base}/`}${NAMESPACES_SEGMENT}/${namespace}/`;
}

/** every key of the run starts with this: `<storage.prefix>/namespaces/<namespace>/<name>/` */
export const runObjectRoot = (storagePrefix: string, run: RunIdentity): string =>
  `${runStorePrefix(storagePrefix, run.namespace)}${run.name}/`;

/** the store prefix of runs created before namespaces were part of the layout: `<storage.prefix>/` */
export function legacyStorePrefix(storagePrefix: string): string {
  const base = trimmed(storagePrefix);
  return base === "" ? "" : `${base}/`;
}

/** the store prefix a recorded run root implies: the root without its last `<name>/` segment */
export function storePrefixOfRoot(root: string, name: string): string {
  return root.endsWith(`${name}/`) ? root.slice(0, root.length - name.length - 1) : root;
}

/** true when `root` is `<prefix>/namespaces/<namespace>/<name>/` for this run (never another's) */
export function isOwnObjectRoot(root: string, run: RunIdentity): boolean {
  const suffix = `${NAMESPACES_SEGMENT}/${run.namespace}/${run.name}/`;
  if (root !== suffix && !root.endsWith(`/${suffix}`)) return false;
  const prefix = root.slice(0, root.length - suffix.length);
  return storagePrefixProblem(prefix) === undefined;
}

/** why `dir` cannot be the embedded mode's local directory (undefined when it can) */
export function localDirProblem(dir: string): string | undefined {
  if (dir.startsWith("/") || /^[A-Za-z]:[\\/]/.test(dir)) return "is absolute";
  if (dir.split(/[\\/]/).some((segment) => segment === "..")) return "climbs out with a .. segment";
  if (dir.includes("\0")) return "contains NUL";
  return undefined;
}
