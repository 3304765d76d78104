import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger };

/** The production logger: JSON lines on stdout, level from the caller (e.g. `QUESTA_LOG_LEVEL`). */
export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  const config: LoggerOptions = { level: options.level ?? "info", base: { name: options.name ?? "questa" } };
  return pino(config);
}

/** A logger that discards everything (tests). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

export interface CapturedLog {
  level: number;
  msg?: string;
  [field: string]: unknown;
}

/** A logger that keeps every record in `records` (tests that assert on logs). */
export function capturingLogger(level = "debug"): { logger: Logger; records: CapturedLog[] } {
  const records: CapturedLog[] = [];
  const logger = pino(
    { level },
    {
      write(line: string) {
        records.push(JSON.parse(line) as CapturedLog);
      },
    },
  );
  return { logger, records };
}
