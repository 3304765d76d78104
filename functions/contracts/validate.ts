import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments } from "yaml";
import type { z } from "zod";
import type { InputIssue } from "../runtime/errors.ts";
import {
  API_VERSION,
  KIND,
  type QuestATraining,
  QuestATrainingSchema,
  type QuestATrainingSpec,
  QuestATrainingSpecSchema,
} from "./questatraining.ts";

export type Validated<T> = { ok: true; value: T } | { ok: false; issues: InputIssue[] };

function joinPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

function describeValue(value: unknown): string {
  return JSON.stringify(value)?.slice(0, 60) ?? String(value);
}

/** zod's type names as a user reads them, with their article */
const TYPE_WORDS: Record<string, string> = {
  object: "a mapping (key: value lines)",
  array: "a list",
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  bigint: "a whole number",
  null: "null",
};

function typeWords(expected: string): string {
  return TYPE_WORDS[expected] ?? (/^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`);
}

/** what a value is, in the words of a YAML user */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return "a string";
  if (typeof value === "number") return "a number";
  if (typeof value === "boolean") return "a boolean";
  return typeof value;
}

/** zod's "received X" in the same words */
function receivedWords(received: string): string {
  const words: Record<string, string> = {
    array: "a list",
    object: "a mapping",
    string: "a string",
    number: "a number",
    boolean: "a boolean",
    null: "null",
  };
  return words[received] ?? received;
}

/** the patterns of the schema, said in words (zod reports the regular expression) */
const PATTERN_HINTS: Record<string, string> = {
  "/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/":
    "use a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. my-run",
  "/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/":
    "use a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
  "/^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/":
    "use a Kubernetes quantity such as 2, 500m, 8Gi or 1.5",
  "/^[^\\s:]+:\\d+$/": "use host:port",
  "/^[0-9a-f]{64}$/": "use 64 lowercase hex digits (a sha256)",
};

/** One zod issue -> field path, message and a hint that says how to fix it. */
export function toInputIssues(issues: readonly z.core.$ZodIssue[], prefix = ""): InputIssue[] {
  const out: InputIssue[] = [];
  for (const issue of issues) {
    const base = joinPath(issue.path);
    const path = prefix === "" ? base : base === "" ? prefix : `${prefix}.${base}`;
    switch (issue.code) {
      case "unrecognized_keys":
        for (const key of issue.keys) {
          out.push({
            path: path === "" ? key : `${path}.${key}`,
            message: "unknown field",
            hint: "remove it or fix its spelling (see `kubectl explain questatraining.spec` or manifests/schemas)",
          });
        }
        break;
      case "invalid_type": {
        const received = /received (\w+)/.exec(issue.message)?.[1];
        out.push({
          path,
          message:
            received === "undefined"
              ? "missing (a required field)"
              : `expected ${typeWords(issue.expected)}, got ${received === undefined ? "something else" : receivedWords(received)}`,
          hint: `give ${typeWords(issue.expected)}`,
        });
        break;
      }
      case "too_big":
        out.push({
          path,
          message: issue.message,
          hint: `use a value ${issue.inclusive === false ? "<" : "<="} ${String(issue.maximum)}`,
        });
        break;
      case "too_small":
        out.push({
          path,
          message: issue.message,
          hint: `use a value ${issue.inclusive === false ? ">" : ">="} ${String(issue.minimum)}`,
        });
        break;
      case "invalid_value":
        out.push({
          path,
          message: issue.message,
          hint: `use one of ${issue.values.map(describeValue).join(", ")}`,
        });
        break;
      case "invalid_format": {
        const pattern = "pattern" in issue && typeof issue.pattern === "string" ? issue.pattern : undefined;
        const hint =
          issue.format === "regex"
            ? ((pattern === undefined ? undefined : PATTERN_HINTS[pattern]) ??
              `match the pattern ${pattern ?? "(unknown)"}`)
            : `give a valid ${issue.format}`;
        out.push({
          path,
          message: issue.format === "regex" ? "does not have the required form" : issue.message,
          hint,
        });
        break;
      }
      case "not_multiple_of":
        out.push({ path, message: issue.message, hint: `use a multiple of ${String(issue.divisor)}` });
        break;
      case "invalid_union":
      case "invalid_key":
      case "invalid_element":
      case "custom":
        out.push({ path, message: issue.message });
        break;
      default: {
        const unknownIssue: { message: string } = issue;
        out.push({ path, message: unknownIssue.message });
      }
    }
  }
  return out;
}

/** Validates one parsed document as a QuestATraining and fills in every default. */
export function validateQuestATraining(document: unknown): Validated<QuestATraining> {
  if (document === null || typeof document !== "object" || Array.isArray(document)) {
    return {
      ok: false,
      issues: [
        {
          path: "",
          message: `expected a mapping with apiVersion, kind, metadata and spec, got ${kindOf(document)}`,
          hint: "give a QuestATraining resource, e.g. manifests/examples/quickstart.yaml",
        },
      ],
    };
  }
  const { apiVersion, kind } = document as Record<string, unknown>;
  // a wrong kind or apiVersion: the rest of the document is about something else, so only these
  const identity: InputIssue[] = [];
  if (kind !== undefined && kind !== KIND) {
    identity.push({
      path: "kind",
      message: `expected ${KIND}, got ${describeValue(kind)}`,
      hint: `set kind: ${KIND}`,
    });
  }
  if (apiVersion !== undefined && apiVersion !== API_VERSION) {
    identity.push({
      path: "apiVersion",
      message: `unsupported apiVersion ${describeValue(apiVersion)}`,
      hint: `set apiVersion: ${API_VERSION}`,
    });
  }
  if (identity.length > 0) return { ok: false, issues: identity };
  const result = QuestATrainingSchema.safeParse(document);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: toInputIssues(result.error.issues) };
}

/**
 * Validates a spec alone, every default filled in (issue paths start with `spec.`). The rules that
 * need the run's namespace and name (its topic prefix) are the caller's: run-names.ts.
 */
export function validateSpec(spec: unknown): Validated<QuestATrainingSpec> {
  const result = QuestATrainingSpecSchema.safeParse(spec);
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, issues: toInputIssues(result.error.issues, "spec") };
}

/**
 * The bounds of a QuestATraining file. A resource is a few KiB (datasets are referenced, not
 * inlined); these keep a hostile or mistaken file (a log, a dataset, an alias bomb) from costing
 * more than a fraction of a second and some tens of MiB.
 */
export const RESOURCE_LIMITS = {
  /** largest file, in bytes (the YAML library needs ~0.5 KiB of memory per byte of a dense list) */
  maxBytes: 256 * 1024,
  /** documents in one file */
  maxDocuments: 100,
  /** alias nodes (`*name`) in one document; each expands to at most maxAliasCount nodes */
  maxAliases: 100,
  /** nesting of mappings and lists */
  maxDepth: 64,
} as const;

export interface DocumentResult {
  /** 0-based index of the document within the file */
  index: number;
  /** 1-based line where the document starts */
  line: number;
  result: Validated<QuestATraining>;
}

function sizeText(bytes: number): string {
  return bytes >= 1024 * 1024
    ? `${(bytes / (1024 * 1024)).toFixed(1)} MiB`
    : bytes >= 1024
      ? `${(bytes / 1024).toFixed(1)} KiB`
      : `${bytes} bytes`;
}

/** the issue of a file over RESOURCE_LIMITS.maxBytes */
export function tooLargeIssue(
  bytes: number | undefined,
  maxBytes: number = RESOURCE_LIMITS.maxBytes,
): InputIssue {
  return {
    path: "(file)",
    message: `${bytes === undefined ? "larger than" : `${sizeText(bytes)}, over`} the limit of ${sizeText(maxBytes)} for a QuestATraining file`,
    hint: "give the resource itself (datasets are referenced by uri, not inlined)",
  };
}

/**
 * Bytes of a resource file -> text. YAML files are UTF-8: UTF-16 (a Windows editor's
 * "Unicode"), bytes that are not UTF-8 and binary files are named as such instead of being parsed
 * into a string.
 */
export function decodeResourceText(
  bytes: Uint8Array,
): { ok: true; text: string } | { ok: false; issue: InputIssue } {
  const fail = (message: string, hint: string) => ({
    ok: false as const,
    issue: { path: "(file)", message, hint },
  });
  if (bytes.length > RESOURCE_LIMITS.maxBytes) return { ok: false, issue: tooLargeIssue(bytes.length) };
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return fail("is UTF-16 text", "save it as UTF-8");
  }
  const nul = bytes.indexOf(0);
  if (nul !== -1) {
    return fail(
      `is a binary file (a NUL byte at offset ${nul}), not YAML`,
      "give a QuestATraining YAML file",
    );
  }
  try {
    return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    return fail("is not UTF-8 text", "save it as UTF-8");
  }
}

interface Position {
  line: number;
  col: number;
}

/**
 * The structure checks the YAML library would do in quadratic time or not at all: duplicate keys
 * (one Set per mapping), nesting depth and alias count. Iterative, so a deep document cannot
 * exhaust the stack.
 */
function structureIssues(contents: unknown, where: (node: unknown) => Position | undefined): InputIssue[] {
  const issues: InputIssue[] = [];
  const at = (node: unknown) => {
    const p = where(node);
    return p === undefined ? "" : `line ${p.line}, column ${p.col}: `;
  };
  let aliases = 0;
  const stack: { node: unknown; depth: number }[] = [{ node: contents, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (isAlias(node)) {
      if (++aliases > RESOURCE_LIMITS.maxAliases) {
        issues.push({
          path: "(yaml)",
          message: `${at(node)}more than ${RESOURCE_LIMITS.maxAliases} aliases`,
          hint: "write the values out instead of repeating *aliases",
        });
        return issues;
      }
      continue;
    }
    if (!isMap(node) && !isSeq(node)) continue;
    if (depth > RESOURCE_LIMITS.maxDepth) {
      issues.push({
        path: "(yaml)",
        message: `${at(node)}nested deeper than ${RESOURCE_LIMITS.maxDepth} levels`,
        hint: "a QuestATraining is a few levels deep; is this the right file?",
      });
      return issues;
    }
    const seen = isMap(node) ? new Set<unknown>() : undefined;
    for (const item of node.items as unknown[]) {
      if (isPair(item)) {
        if (seen !== undefined) {
          const key = isScalar(item.key) ? item.key.value : item.key;
          if (seen.has(key)) {
            issues.push({
              path: "(yaml)",
              message: `${at(item.key)}duplicate key ${describeValue(key)}`,
              hint: "keep one of them",
            });
          } else {
            seen.add(key);
          }
        }
        stack.push({ node: item.key, depth: depth + 1 }, { node: item.value, depth: depth + 1 });
      } else {
        stack.push({ node: item, depth: depth + 1 });
      }
    }
  }
  return issues;
}

function yamlIssue(message: string, position: Position | undefined): InputIssue {
  const text = message.includes("Maximum call stack size exceeded") ? "nested too deeply" : message;
  return {
    path: "(yaml)",
    message: position === undefined ? text : `line ${position.line}, column ${position.col}: ${text}`,
    hint: "fix the YAML syntax there (indentation, quoting, a missing bracket or colon)",
  };
}

function invalidFile(issue: InputIssue): DocumentResult[] {
  return [{ index: 0, line: 1, result: { ok: false, issues: [issue] } }];
}

/**
 * Parses YAML (one or more `---`-separated documents) and validates each document, within
 * RESOURCE_LIMITS. YAML syntax errors are issues at path `(yaml)` with their line and column.
 * Linear in the size of the text (line numbers from one line table, duplicate keys by a Set).
 */
export function validateYaml(text: string): DocumentResult[] {
  // a UTF-16 length above the limit may still fit in UTF-8 bytes only when it is not larger
  if (text.length > RESOURCE_LIMITS.maxBytes || Buffer.byteLength(text, "utf8") > RESOURCE_LIMITS.maxBytes) {
    return invalidFile(tooLargeIssue(Buffer.byteLength(text, "utf8")));
  }
  const lineCounter = new LineCounter();
  let documents: Document.Parsed[];
  try {
    const parsed = parseAllDocuments(text, { prettyErrors: false, uniqueKeys: false, lineCounter });
    documents = Array.isArray(parsed) ? parsed : [];
  } catch (error) {
    return invalidFile(yamlIssue(error instanceof Error ? error.message : String(error), undefined));
  }
  const position = (offset: number | undefined): Position | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset);
  const nodePosition = (node: unknown): Position | undefined => {
    const range = (node as { range?: readonly number[] } | null)?.range;
    return position(range?.[0]);
  };
  const results: DocumentResult[] = [];
  let index = 0;
  for (const document of documents) {
    if (index >= RESOURCE_LIMITS.maxDocuments) {
      results.push({
        index,
        line: position(document.range[0])?.line ?? 1,
        result: {
          ok: false,
          issues: [
            {
              path: "(file)",
              message: `more than ${RESOURCE_LIMITS.maxDocuments} documents; the rest are not read`,
              hint: "split the file",
            },
          ],
        },
      });
      break;
    }
    const line = position(document.range[0])?.line ?? 1;
    const syntax = document.errors.map((e) => yamlIssue(e.message, position(e.pos[0])));
    const issues = syntax.length > 0 ? syntax : structureIssues(document.contents, nodePosition);
    if (issues.length > 0) {
      results.push({ index, line, result: { ok: false, issues } });
      index++;
      continue;
    }
    let value: unknown;
    try {
      value = document.toJS({ maxAliasCount: RESOURCE_LIMITS.maxAliases });
    } catch (error) {
      // the YAML library's alias-expansion guard ("Excessive alias count") or a deep expansion
      results.push({
        index,
        line,
        result: {
          ok: false,
          issues: [
            {
              path: "(yaml)",
              message: `aliases expand to too many values (${error instanceof Error ? error.message : String(error)})`,
              hint: "write the values out instead of nesting *aliases",
            },
          ],
        },
      });
      index++;
      continue;
    }
    if (value === null || value === undefined) continue; // an empty document between separators
    results.push({ index, line, result: validateQuestATraining(value) });
    index++;
  }
  if (results.length === 0) {
    results.push({
      index: 0,
      line: 1,
      result: {
        ok: false,
        issues: [{ path: "", message: "no YAML document found", hint: "the file is empty or only comments" }],
      },
    });
  }
  return results;
}
