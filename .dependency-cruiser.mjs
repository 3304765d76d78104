/**
 * The layers of questa and the rules between them, checked by dependency-cruiser in `npm run lint`
 * (`depcruise functions cli operator`). README.md (Layout) says the same in words. Bottom to top:
 *
 *   bottom     functions/runtime (generic: imports nothing of ours), functions/contracts (imports runtime)
 *   domain     functions/model, functions/grading, functions/questa, functions/rl
 *   functions  functions/augment, functions/rollout, functions/learn, functions/evaluate
 *   host       functions/host (process start-up, services, warm start, the embedded run)
 *   top        cli, operator
 *
 * A folder imports from the layers below and, without cycles, from folders of its own layer; never
 * from a layer above. The functions never import each other (what two processes share is a contract
 * or a domain port). No cycles, between modules or between folders;
 * each external system is imported by exactly one module of ours (and that module's own test).
 * bench/, scripts/ and test/ are not checked: they may import anything.
 */

/** a path regex for the folders of a layer (their files, at any depth) */
const under = (...folders) => `^(${folders.join("|")})/`;

const LAYERS = [
  { name: "bottom", folders: ["functions/runtime", "functions/contracts"] },
  { name: "domain", folders: ["functions/model", "functions/grading", "functions/questa", "functions/rl"] },
  {
    name: "functions",
    folders: ["functions/augment", "functions/rollout", "functions/learn", "functions/evaluate"],
  },
  { name: "host", folders: ["functions/host"] },
  { name: "top", folders: ["cli", "operator"] },
];

const upwardRules = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `no-upward-from-${layer.name}`,
  comment: `${layer.name} (${layer.folders.join(", ")}) must not import a layer above it`,
  severity: "error",
  from: { path: under(...layer.folders) },
  to: { path: under(...LAYERS.slice(index + 1).flatMap((above) => above.folders)) },
}));

/** an external system, the one module of ours that imports it, and its packages (a path regex) */
const EXTERNAL_SYSTEMS = [
  { system: "kafka", module: "functions/runtime/kafka-bus", packages: "kafkajs" },
  { system: "s3", module: "functions/runtime/s3-object-store", packages: "@aws-sdk/[^/]+" },
  { system: "onnxruntime", module: "functions/model/ort-backend", packages: "onnxruntime-[^/]+" },
  { system: "kubernetes", module: "operator/kube-client", packages: "@kubernetes/client-node" },
  // the plotting library of `questa report` (vega, vega-lite and their vega-* packages)
  { system: "vega", module: "cli/report-charts", packages: "vega[^/]*" },
  // the browser driver of the report's test; listed so that nothing questa ships imports it
  { system: "chromium", module: "test/browser/chromium", packages: "playwright-core" },
];

const externalSystemRules = EXTERNAL_SYSTEMS.map(({ system, module, packages }) => ({
  name: `only-one-module-imports-${system}`,
  comment: `${system} is imported by ${module}.ts alone (and its test): the rest of questa uses what it exports`,
  severity: "error",
  from: { pathNot: `^${module}(\\.test)?\\.ts$` },
  to: { path: `(^|/)node_modules/${packages}/` },
}));

export default {
  forbidden: [
    {
      name: "runtime-imports-nothing-of-ours",
      comment: "functions/runtime is the generic function runtime: it knows no questa schema",
      severity: "error",
      from: { path: under("functions/runtime") },
      to: { path: "^(functions|cli|operator)/", pathNot: under("functions/runtime") },
    },
    {
      name: "every-folder-has-a-layer",
      comment: "a folder under functions/ that no layer names would escape the rules: add it to LAYERS",
      severity: "error",
      from: { path: "^functions/", pathNot: under(...LAYERS.flatMap((layer) => layer.folders)) },
      to: {},
    },
    ...upwardRules,
    {
      name: "functions-do-not-import-each-other",
      comment:
        "each function is its own process: what two share goes down to contracts (a boundary) or a domain folder",
      severity: "error",
      from: { path: "^functions/(augment|rollout|learn|evaluate)/" },
      to: { path: "^functions/(augment|rollout|learn|evaluate)/", pathNot: "^functions/$1/" },
    },
    {
      name: "no-circular",
      comment: "modules import each other in one direction",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    {
      name: "no-circular-between-folders",
      comment: "folders of questa import each other in one direction",
      severity: "error",
      scope: "folder",
      from: { path: "^(functions/[^/]+|cli|operator)$" },
      to: { circular: true },
    },
    ...externalSystemRules,
    {
      name: "only-the-process-modules-start-processes",
      comment:
        "the functions start two kinds of process, the torch learner's (torchrun and its venv install: functions/host/torch-process.ts) and the local vLLM server of `questa run` (its probe: functions/host/vllm-process.ts; the server under a watchdog: functions/host/server-process.ts); these alone import child_process",
      severity: "error",
      from: {
        path: "^functions/",
        pathNot: "^functions/host/(torch-process|vllm-process|server-process)(\\.test)?\\.ts$",
      },
      to: { dependencyTypes: ["core"], path: "^(node:)?child_process$" },
    },
    {
      name: "not-to-unresolvable",
      comment: "an import that resolves to nothing is a typo or a missing dependency",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "(^|/)node_modules/" },
    // type-only imports are dependencies too
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
