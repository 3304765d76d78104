import { open, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { eventDefinition } from "../functions/contracts/registry.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { describeJsonError } from "../functions/runtime/json-text.ts";
import { parseArgs } from "./args.ts";
import type { CommandDefinition, CommandRun } from "./io.ts";

const POLL_MS = 500;
/** bytes read from one file per poll */
const CHUNK_BYTES = 1024 * 1024;
/** longest event line kept (questa's events are a few KiB; dead letters at most 256 KiB) */
export const MAX_EVENT_LINE_BYTES = 4 * 1024 * 1024;
/** warnings about bad lines printed before the rest are only counted */
const MAX_WARNINGS = 20;

interface LogLine {
  file: string;
  text: string;
}

interface Pending {
  offset: number;
  parts: Buffer[];
  length: number;
  /** the line in progress is over MAX_EVENT_LINE_BYTES: skipped to its newline */
  overflow: boolean;
}

/**
 * Reads the lines appended to each `*.jsonl` file since the last call, CHUNK_BYTES at a time and
 * at most MAX_EVENT_LINE_BYTES of one line in memory.
 */
class EventLogReader {
  readonly #files = new Map<string, Pending>();

  constructor(
    readonly dir: string,
    readonly warn: (text: string) => void,
  ) {}

  #line(name: string, pending: Pending, out: LogLine[]): void {
    if (pending.overflow) this.warn(`${name}: skipping a line longer than ${MAX_EVENT_LINE_BYTES} bytes`);
    else {
      const text = Buffer.concat(pending.parts, pending.length).toString("utf8");
      if (text.trim() !== "") out.push({ file: name, text });
    }
    pending.parts = [];
    pending.length = 0;
    pending.overflow = false;
  }

  #take(pending: Pending, bytes: Buffer): void {
    if (pending.overflow || bytes.length === 0) return;
    if (pending.length + bytes.length > MAX_EVENT_LINE_BYTES) {
      pending.overflow = true;
      pending.parts = [];
      pending.length = 0;
      return;
    }
    pending.parts.push(Buffer.from(bytes));
    pending.length += bytes.length;
  }

  async readNew(): Promise<LogLine[]> {
    let names: string[];
    try {
      names = (await readdir(this.dir)).filter((n) => n.endsWith(".jsonl")).sort();
    } catch {
      return [];
    }
    const lines: LogLine[] = [];
    for (const name of names) {
      const path = join(this.dir, name);
      const pending = this.#files.get(path) ?? { offset: 0, parts: [], length: 0, overflow: false };
      this.#files.set(path, pending);
      let handle: Awaited<ReturnType<typeof open>>;
      try {
        handle = await open(path, "r");
      } catch {
        continue; // removed between readdir and open
      }
      try {
        const info = await handle.stat();
        if (!info.isFile()) continue;
        const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, Math.max(0, info.size - pending.offset)));
        while (pending.offset < info.size) {
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, pending.offset);
          if (bytesRead === 0) break;
          pending.offset += bytesRead;
          let bytes = buffer.subarray(0, bytesRead);
          for (let end = bytes.indexOf(10); end !== -1; end = bytes.indexOf(10)) {
            this.#take(pending, bytes.subarray(0, end));
            this.#line(name, pending, lines);
            bytes = bytes.subarray(end + 1);
          }
          // a line still being written stays buffered until its newline arrives
          this.#take(pending, bytes);
        }
      } finally {
        await handle.close();
      }
    }
    return lines;
  }

  /** the last lines of the files that end without a newline */
  flush(): LogLine[] {
    const lines: LogLine[] = [];
    for (const [path, pending] of this.#files) {
      if (pending.length > 0 || pending.overflow) this.#line(path.split("/").pop() ?? path, pending, lines);
    }
    return lines;
  }
}

interface ParsedEvent {
  time: string;
  id: string;
  type: string;
  json: string;
}

function parseLine(line: LogLine, warn: (text: string) => void): ParsedEvent | undefined {
  let event: unknown;
  try {
    event = JSON.parse(line.text);
  } catch (error) {
    warn(`${line.file}: skipping a line that is not JSON (${describeJsonError(error)})`);
    return undefined;
  }
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    warn(`${line.file}: skipping a line that is not a JSON object`);
    return undefined;
  }
  const record = event as { type?: unknown; time?: unknown; id?: unknown; data?: unknown };
  const type = typeof record.type === "string" ? record.type : "";
  const definition = eventDefinition(type);
  if (definition) {
    const check = definition.data.safeParse(record.data);
    if (!check.success) {
      warn(
        `${line.file}: event ${String(record.id).slice(0, 100)} of type ${type} does not match its schema`,
      );
    }
  }
  return {
    time: typeof record.time === "string" ? record.time : "",
    id: typeof record.id === "string" ? record.id : "",
    type,
    json: line.text.trim(),
  };
}

const HELP = `usage: questa events RUN_DIR [--type TYPE] [--follow]

Prints a local run's events (RUN_DIR/events/*.jsonl, e.g. RUN_DIR = .questa/runs/quickstart) as
JSON lines, oldest first.
  --type TYPE   only events whose type is TYPE or contains .TYPE. (e.g. run.status)
  --follow      keep printing new events until Ctrl-C (waits for RUN_DIR/events to appear)
Lines that are not JSON objects, or longer than ${MAX_EVENT_LINE_BYTES / 2 ** 20} MiB, are skipped with a warning on stderr
(at most ${MAX_WARNINGS} warnings, then a count).
`;

/** `questa events DIR [--type T] [--follow]`: a local run's events as JSON lines, oldest first. */
const runEvents: CommandRun = async (args, io) => {
  const parsed = parseArgs(args, {
    booleans: ["follow"],
    values: ["type"],
    positionals: { min: 1, max: 1, what: "a run directory, e.g. .questa/runs/quickstart" },
  });
  const runDir = parsed.positionals[0] as string;
  const follow = parsed.options.has("follow");
  const dir = resolve(io.cwd, runDir);
  const eventsDir = join(dir, "events");
  const isDirectory = (path: string) =>
    stat(path).then(
      (s) => s.isDirectory(),
      () => false,
    );
  if (!(await isDirectory(eventsDir))) {
    if (!follow || !(await isDirectory(dir))) {
      throw new InputError("events.no_run", [
        {
          path: runDir,
          message: `${eventsDir} does not exist`,
          hint: "give a run directory, e.g. .questa/runs/<name> (questa run prints it)",
        },
      ]);
    }
    io.stderr(`questa events: waiting for ${eventsDir} to appear (the run has written no events yet)\n`);
  }
  let warnings = 0;
  const warn = (text: string) => {
    warnings++;
    if (warnings <= MAX_WARNINGS) io.stderr(`questa events: ${text}\n`);
    else if (warnings === MAX_WARNINGS + 1) io.stderr("questa events: further warnings are only counted\n");
  };
  const wanted = parsed.options.get("type");
  const matches = (type: string) => wanted === undefined || type === wanted || type.includes(`.${wanted}.`);
  const reader = new EventLogReader(eventsDir, warn);
  const print = (lines: LogLine[]) => {
    const events = lines.map((l) => parseLine(l, warn)).filter((e): e is ParsedEvent => e !== undefined);
    events.sort((a, b) =>
      a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    for (const event of events) if (matches(event.type)) io.stdout(`${event.json}\n`);
  };
  const summary = () => {
    if (warnings > MAX_WARNINGS) io.stderr(`questa events: ${warnings} warnings in all\n`);
  };
  if (!follow) {
    print([...(await reader.readNew()), ...reader.flush()]);
    summary();
    return 0;
  }
  print(await reader.readNew());
  let stopped = false;
  void io.interrupted.then(() => {
    stopped = true;
  });
  while (!stopped) {
    await Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), io.interrupted]);
    print(await reader.readNew());
  }
  print(reader.flush());
  summary();
  return 0;
};

export const eventsCommand: CommandDefinition = { help: HELP, run: runEvents };
