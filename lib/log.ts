import { AsyncLocalStorage } from "node:async_hooks";

/** Severity of a log line. */
export type Level = "debug" | "info" | "warn" | "error";

/** A structured logger: one JSON object per line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/**
 * Fields that every line logged while handling one request carries (its
 * request id).
 */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

/** Runs `fn` with `fields` added to every line it logs. */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return logContext.run({ ...logContext.getStore(), ...fields }, fn);
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const NAMES: Record<Level, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
};

/** Where the lines of this isolate go: set once by {@linkcode setupLogging}. */
let output: { min: number; write: (line: string, level: Level) => void } | null = null;

/**
 * Sends this isolate's logs to stdout as JSON lines (called once per isolate
 * by the process entry points; each worker is an isolate). Until it is
 * called, {@linkcode createLogger}'s default logger writes nothing.
 *
 * With `console` (Deno Deploy, or Deno's OpenTelemetry capturing the
 * console), each line goes through `console.log`, which is what those
 * collect. Otherwise lines are gathered and written to stdout a few KiB at a
 * time: a socket's authentication and close are two lines, and a write per
 * line cost more CPU per connect than anything else Lookout adds
 * (bench/README.md). A warning or error, and everything before it, is
 * written at once; the rest within 10 ms, and at exit.
 */
export function setupLogging(level: Level = "info", options: { console?: boolean } = {}): void {
  const lines = options.console ? null : new StdoutLines();
  output = {
    min: ORDER[level],
    write: lines
      ? (line, level) => lines.push(line, ORDER[level] >= ORDER.warn)
      : (line) => console.log(line),
  };
  globalThis.removeEventListener("unload", flushLogs);
  flushOutput = lines ? () => lines.flush() : () => {};
  if (lines) globalThis.addEventListener("unload", flushLogs);
}

let flushOutput = () => {};

/** Writes out the lines gathered so far (before a worker reports it stopped). */
export function flushLogs(): void {
  flushOutput();
}

/**
 * Creates a logger. By default it logs where {@linkcode setupLogging} said,
 * in the JSON Lines shape of docs/deploy.md; with `write`, each finished JSON
 * line goes to that function instead, which is how tests read what was
 * logged.
 */
export function createLogger(
  options: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const { write } = options;
  if (!write) {
    const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
      if (output === null || ORDER[level] < output.min) return;
      output.write(
        JSON.stringify(
          {
            "@timestamp": new Date().toISOString(),
            level: NAMES[level],
            message: msg,
            logger: "lookout",
            properties: { ...logContext.getStore(), ...fields },
          },
          replacer,
        ),
        level,
      );
    };
    return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
  }
  const min = ORDER[options.level ?? "info"];
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify(
      { ts: new Date().toISOString(), level, msg, ...logContext.getStore(), ...fields },
      replacer,
    ));
  };
  return { debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error") };
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message };
  }
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * Up to this many bytes go to stdout in one write. Writes to a pipe of at
 * most PIPE_BUF (4,096 bytes on Linux) are atomic, so the workers' lines,
 * written from several threads to one pipe, never interleave mid-line.
 */
const WRITE_BYTES = 4096;

/**
 * Lines wait at most this long for more to join them. Flushed at every
 * turn of the event loop instead, a busy server wrote one or two lines per
 * write: the writes cost as much as before.
 */
const FLUSH_MS = 10;

const encoder = new TextEncoder();

/** Lines gathered for stdout; see {@linkcode setupLogging}. */
class StdoutLines {
  #lines: string[] = [];
  #bytes = 0;
  #scheduled = false;

  push(line: string, now: boolean): void {
    const text = line + "\n";
    // A line over the limit is written alone, as console.log would.
    if (this.#bytes + text.length > WRITE_BYTES) this.flush();
    this.#lines.push(text);
    this.#bytes += text.length;
    if (now) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setTimeout(() => {
        this.#scheduled = false;
        this.flush();
      }, FLUSH_MS);
    }
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    const lines = this.#lines;
    this.#lines = [];
    this.#bytes = 0;
    const bytes = encoder.encode(lines.join(""));
    // Counted in UTF-16 units: lines with wider characters go one by one.
    if (bytes.length <= WRITE_BYTES || lines.length === 1) writeAll(bytes);
    else for (const line of lines) writeAll(encoder.encode(line));
  }
}

function writeAll(bytes: Uint8Array): void {
  try {
    for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
  } catch {
    // Nobody reads stdout any more (a closed pipe): the lines are lost, the
    // server goes on, as it did with console.log.
  }
}
