/**
 * Errors say what the caller should do with them:
 * - `RetryableError`: transient (network, throttling, a peer not ready); retry later with backoff.
 * - `DeadLetterError`: this message can never succeed (poison, schema-invalid); park it with the reason.
 * - `InputError`: the user's input is wrong; reject it and tell them which field and how to fix it.
 * Anything else thrown is a bug and is treated as retryable up to the attempt limit, then dead-lettered.
 */
export const ErrorAction = {
  retry: "retry",
  deadLetter: "dead-letter",
  reject: "reject",
} as const;
export type ErrorAction = (typeof ErrorAction)[keyof typeof ErrorAction];

abstract class QuestaError extends Error {
  abstract readonly action: ErrorAction;
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

export class RetryableError extends QuestaError {
  override readonly action = ErrorAction.retry;
  /** minimum delay the caller should wait before retrying, when the source said so */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(code, message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * A dependency (the object store, the broker) is unreachable, throttling or answering 5xx. Not
 * the message's fault: the runtime waits for the dependency (on a time budget measured in
 * minutes) instead of counting the failure against the message, and never dead-letters it.
 */
export class UnavailableError extends RetryableError {}

/** true when `error` or one of its causes says a dependency is unavailable */
export function isUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && depth < 8; depth++) {
    if (current instanceof UnavailableError) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}

export class DeadLetterError extends QuestaError {
  override readonly action = ErrorAction.deadLetter;
}

/** One problem with user input: where it is (dotted path) and how to fix it. */
export interface InputIssue {
  path: string;
  message: string;
  hint?: string;
}

export class InputError extends QuestaError {
  override readonly action = ErrorAction.reject;
  readonly issues: readonly InputIssue[];

  constructor(code: string, issues: readonly InputIssue[], options?: { cause?: unknown }) {
    super(code, issues.map(formatInputIssue).join("\n"), options);
    this.issues = issues;
  }
}

export function formatInputIssue(issue: InputIssue): string {
  const where = issue.path === "" ? "(root)" : issue.path;
  return issue.hint ? `${where}: ${issue.message} (fix: ${issue.hint})` : `${where}: ${issue.message}`;
}

/** What to do with an error of unknown origin; unknown errors are retried (they may be transient bugs). */
export function actionFor(error: unknown): ErrorAction {
  if (error instanceof QuestaError) return error.action;
  return ErrorAction.retry;
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/** the part of a zod issue an `InputIssue` needs (any zod version's issues have it) */
interface SchemaIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

/**
 * A schema's failure as an `InputError`: one issue per zod issue, its path dotted (under `under`,
 * e.g. `data` for an event's data), zod's message, and `hint` (one for all, or per issue).
 */
export function schemaInputError(
  code: string,
  failure: { readonly issues: readonly SchemaIssue[] },
  options: { under?: string; hint?: string | ((issue: SchemaIssue) => string) } = {},
): InputError {
  const { under, hint } = options;
  return new InputError(
    code,
    failure.issues.map((issue) => {
      const path = [...(under === undefined ? [] : [under]), ...issue.path.map(String)].join(".");
      const fix = typeof hint === "function" ? hint(issue) : hint;
      return fix === undefined
        ? { path, message: issue.message }
        : { path, message: issue.message, hint: fix };
    }),
  );
}
