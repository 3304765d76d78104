import { parseArgs as parseNodeArgs } from "node:util";
import { z } from "zod";
import { toInputIssues } from "../functions/contracts/validate.ts";
import { formatInputIssue, InputError } from "../functions/runtime/errors.ts";

/**
 * The command line itself is wrong (an unknown option, a flag without its value or with a value
 * its schema refuses, a missing or extra argument): `main` prints the message with the command's
 * usage on stderr and exits 2. Invalid input files and data are `InputError`s (exit 1).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
}

export interface ParsedArgs {
  positionals: string[];
  /** the options given; a boolean option maps to "true" */
  options: Map<string, string>;
}

/**
 * Parses a command's arguments with Node's own parser (node:util parseArgs, strict): positionals,
 * `--flag`, `--key value`, `--key=value`, `--` ends the options. `--help`/`-h` are `main`'s.
 * Anything it refuses is a UsageError that names the option.
 */
export function parseArgs(
  args: readonly string[],
  spec: {
    booleans?: readonly string[];
    values?: readonly string[];
    positionals?: { min: number; max: number; what: string };
  },
): ParsedArgs {
  const options: Record<string, OptionSpec> = {};
  for (const name of spec.booleans ?? []) options[name] = { type: "boolean" };
  for (const name of spec.values ?? []) options[name] = { type: "string" };
  const known = Object.keys(options).map((o) => `--${o}`);
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseNodeArgs({
      args: [...args],
      options,
      allowPositionals: true,
      strict: true,
    }) as typeof parsed;
  } catch (error) {
    throw new UsageError(describeParseError(error, known));
  }
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value !== undefined) values.set(name, value === true ? "true" : String(value));
  }
  const range = spec.positionals;
  if (range !== undefined) {
    if (parsed.positionals.length < range.min) throw new UsageError(`give ${range.what}`);
    if (parsed.positionals.length > range.max) {
      throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[range.max])}`);
    }
  }
  return { positionals: parsed.positionals, options: values };
}

/** node's parseArgs messages, said shortly and with the options this command knows */
function describeParseError(error: unknown, known: readonly string[]): string {
  const message = error instanceof Error ? error.message : String(error);
  const unknown = /Unknown option '([^']+)'/.exec(message)?.[1];
  if (unknown !== undefined) {
    return `${unknown}: unknown option (options of this command: ${known.length > 0 ? known.join(", ") : "none"})`;
  }
  const missing = /Option '(-\S+)(?: <value>)?' argument missing/.exec(message)?.[1];
  if (missing !== undefined) return `${missing.replace(/^-., /, "")}: needs a value`;
  const ambiguous = /Option '(-\S+)(?: <value>)?' argument is ambiguous/.exec(message)?.[1];
  if (ambiguous !== undefined) {
    return `${ambiguous.replace(/^-., /, "")}: needs a value (for a value that starts with '-', write ${ambiguous.replace(/^-., /, "")}=VALUE)`;
  }
  const noValue = /Option '(-\S+)' does not take an argument/.exec(message)?.[1];
  if (noValue !== undefined) return `${noValue.replace(/^-., /, "")}: takes no value`;
  return message.split(". ")[0] ?? message;
}

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** a flag's text as a number: decimal notation only ("", "0x10", " 1" and "Infinity" are refused) */
export const NumberText = z.string().transform((text, ctx) => {
  if (!DECIMAL.test(text)) {
    ctx.addIssue({ code: "custom", message: `expected a decimal number, got ${JSON.stringify(text)}` });
    return z.NEVER;
  }
  return Number(text);
});

/**
 * A flag's value checked by `schema`, the zod schema of the spec field it sets (so a flag takes
 * exactly what the resource file takes); undefined when the flag is absent.
 */
export function flagValue<T>(parsed: ParsedArgs, name: string, schema: z.ZodType<T, string>): T | undefined {
  const text = parsed.options.get(name);
  if (text === undefined) return undefined;
  const result = schema.safeParse(text);
  if (result.success) return result.data;
  throw new UsageError(toInputIssues(result.error.issues, `--${name}`).map(formatInputIssue).join("; "));
}

/** a number flag checked by the schema of the spec field it sets */
export function numberFlag<T>(parsed: ParsedArgs, name: string, schema: z.ZodType<T, number>): T | undefined {
  return flagValue(parsed, name, NumberText.pipe(schema));
}

/** an InputError about a flag (from a parser such as parseBrokers) as a UsageError */
export function asUsageError<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof InputError) throw new UsageError(error.issues.map(formatInputIssue).join("; "));
    throw error;
  }
}
