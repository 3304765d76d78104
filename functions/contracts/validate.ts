import { parseAllDocuments } from "yaml";
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
      case "invalid_type":
        out.push({ path, message: issue.message, hint: `give a ${issue.expected}` });
        break;
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
      case "invalid_format":
        out.push({ path, message: issue.message, hint: `give a valid ${issue.format}` });
        break;
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
  if (document !== null && typeof document === "object" && !Array.isArray(document)) {
    const { apiVersion, kind } = document as Record<string, unknown>;
    if (kind !== undefined && kind !== KIND) {
      return {
        ok: false,
        issues: [
          {
            path: "kind",
            message: `expected ${KIND}, got ${describeValue(kind)}`,
            hint: `set kind: ${KIND}`,
          },
        ],
      };
    }
    if (apiVersion !== undefined && apiVersion !== API_VERSION) {
      return {
        ok: false,
        issues: [
          {
            path: "apiVersion",
            message: `unsupported apiVersion ${describeValue(apiVersion)}`,
            hint: `set apiVersion: ${API_VERSION}`,
          },
        ],
      };
    }
  }
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

export interface DocumentResult {
  /** 0-based index of the document within the file */
  index: number;
  /** 1-based line where the document starts */
  line: number;
  result: Validated<QuestATraining>;
}

/**
 * Parses YAML (one or more `---`-separated documents) and validates each document. YAML syntax
 * errors are reported as issues at path `(yaml)` with their line and column.
 */
export function validateYaml(text: string): DocumentResult[] {
  const results: DocumentResult[] = [];
  const documents = parseAllDocuments(text, { prettyErrors: true });
  const list = Array.isArray(documents) ? documents : [documents];
  let index = 0;
  for (const document of list) {
    const line = lineOf(text, document.range?.[0] ?? 0);
    if (document.errors.length > 0) {
      results.push({
        index,
        line,
        result: {
          ok: false,
          issues: document.errors.map((e) => ({
            path: "(yaml)",
            message: e.message.split("\n")[0] ?? e.message,
          })),
        },
      });
    } else {
      const value: unknown = document.toJS();
      if (value === null || value === undefined) continue; // an empty document between separators
      results.push({ index, line, result: validateQuestATraining(value) });
    }
    index++;
  }
  if (results.length === 0) {
    results.push({
      index: 0,
      line: 1,
      result: { ok: false, issues: [{ path: "", message: "no YAML document found" }] },
    });
  }
  return results;
}

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}
