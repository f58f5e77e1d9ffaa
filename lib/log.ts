/** Severity of a log line. */
export type Level = "debug" | "info" | "warn" | "error";

/** A structured logger: one JSON object per line. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Creates a JSON-lines logger. `write` receives each finished line (stdout by
 * default); tests pass their own to read what was logged.
 */
export function createLogger(
  options: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const min = ORDER[options.level ?? "info"];
  const write = options.write ?? ((line: string) => console.log(line));
  const emit = (level: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }, replacer));
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
  };
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message };
  }
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * Shows enough of a token to tell two apart in a log, never enough to use:
 * its first 8 characters and its length.
 */
export function maskToken(token: unknown): string {
  if (typeof token !== "string") return `<${typeof token}>`;
  return `${token.slice(0, 8)}…(${token.length} chars)`;
}
