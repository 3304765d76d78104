import { open, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { eventDefinition } from "../functions/contracts/registry.ts";
import { InputError } from "../functions/runtime/errors.ts";
import { parseArgs } from "./args.ts";
import type { CliIO, CommandRun } from "./io.ts";

const POLL_MS = 500;

interface LogLine {
  file: string;
  text: string;
}

/** Reads the lines appended to each `*.jsonl` file since the last call. */
class EventLogReader {
  readonly #offsets = new Map<string, number>();
  readonly #partial = new Map<string, string>();

  constructor(readonly dir: string) {}

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
      const size = (await stat(path)).size;
      const from = this.#offsets.get(path) ?? 0;
      if (size <= from) continue;
      const handle = await open(path, "r");
      try {
        const buffer = Buffer.alloc(size - from);
        await handle.read(buffer, 0, buffer.length, from);
        this.#offsets.set(path, size);
        const text = (this.#partial.get(path) ?? "") + buffer.toString("utf8");
        const parts = text.split("\n");
        // a line still being written stays buffered until its newline arrives
        this.#partial.set(path, parts.pop() ?? "");
        for (const part of parts) if (part.trim() !== "") lines.push({ file: name, text: part });
      } finally {
        await handle.close();
      }
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

function parseLine(line: LogLine, io: CliIO): ParsedEvent | undefined {
  let event: unknown;
  try {
    event = JSON.parse(line.text);
  } catch {
    io.stderr(`questa events: ${line.file}: skipping a line that is not JSON\n`);
    return undefined;
  }
  const record = event as { type?: unknown; time?: unknown; id?: unknown; data?: unknown };
  const type = typeof record.type === "string" ? record.type : "";
  const definition = eventDefinition(type);
  if (definition) {
    const check = definition.data.safeParse(record.data);
    if (!check.success) {
      io.stderr(
        `questa events: ${line.file}: event ${String(record.id)} of type ${type} does not match its schema\n`,
      );
    }
  }
  return {
    time: typeof record.time === "string" ? record.time : "",
    id: typeof record.id === "string" ? record.id : "",
    type,
    json: JSON.stringify(event),
  };
}

/** `questa events DIR [--type T] [--follow]`: a local run's events as JSON lines, oldest first. */
export const runEvents: CommandRun = async (args, io) => {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(args, { booleans: ["follow", "help"], values: ["type"] });
  } catch (error) {
    if (error instanceof InputError) {
      io.stderr(`questa events: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const [runDir, ...extra] = parsed.positionals;
  if (parsed.options.has("help") || runDir === undefined || extra.length > 0) {
    io.stderr(
      "usage: questa events RUN_DIR [--type TYPE] [--follow]\n  RUN_DIR: e.g. .questa/runs/quickstart\n",
    );
    return 2;
  }
  const dir = resolve(io.cwd, runDir);
  const eventsDir = join(dir, "events");
  const exists = await stat(eventsDir).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!exists && !parsed.options.has("follow")) {
    io.stderr(
      `questa events: ${eventsDir} does not exist (is ${runDir} a run directory, e.g. .questa/runs/<name>?)\n`,
    );
    return 1;
  }
  const wanted = parsed.options.get("type");
  const matches = (type: string) => wanted === undefined || type === wanted || type.includes(`.${wanted}.`);
  const reader = new EventLogReader(eventsDir);
  const print = (lines: LogLine[]) => {
    const events = lines.map((l) => parseLine(l, io)).filter((e): e is ParsedEvent => e !== undefined);
    events.sort((a, b) =>
      a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    for (const event of events) if (matches(event.type)) io.stdout(`${event.json}\n`);
  };
  print(await reader.readNew());
  if (!parsed.options.has("follow")) return 0;
  let stopped = false;
  void io.interrupted.then(() => {
    stopped = true;
  });
  while (!stopped) {
    await Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), io.interrupted]);
    print(await reader.readNew());
  }
  return 0;
};
