import { InputError } from "../functions/runtime/errors.ts";

export interface ParsedArgs {
  positionals: string[];
  /** `--name value` and `--name=value`; a flag declared boolean maps to "true" */
  options: Map<string, string>;
}

/**
 * A small argument parser: positionals, `--flag`, `--key value`, `--key=value`. Unknown options
 * are an input error naming the option, so typos don't pass silently.
 */
export function parseArgs(
  args: readonly string[],
  spec: { booleans?: readonly string[]; values?: readonly string[] },
): ParsedArgs {
  const booleans = new Set(spec.booleans ?? []);
  const values = new Set(spec.values ?? []);
  const positionals: string[] = [];
  const options = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith("--") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (booleans.has(name)) {
      options.set(name, eq === -1 ? "true" : arg.slice(eq + 1));
    } else if (values.has(name)) {
      const value = eq === -1 ? args[++i] : arg.slice(eq + 1);
      if (value === undefined) {
        throw new InputError("missing_option_value", [{ path: `--${name}`, message: "needs a value" }]);
      }
      options.set(name, value);
    } else {
      const known = [...booleans, ...values].map((o) => `--${o}`).join(", ") || "none";
      throw new InputError("unknown_option", [
        { path: `--${name}`, message: "unknown option", hint: `options of this command: ${known}` },
      ]);
    }
  }
  return { positionals, options };
}
