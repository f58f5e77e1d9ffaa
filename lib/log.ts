import { AsyncLocalStorage } from "node:async_hooks";
import {
  configure,
  getConsoleSink,
  getLogger,
  jsonLinesFormatter,
  type LogLevel,
} from "@logtape/logtape";

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
 * request id). LogTape reads it as its implicit context; the test writer
 * below reads it too.
 */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

/** Runs `fn` with `fields` added to every line it logs. */
export function withLogContext<T>(fields: Record<string, unknown>, fn: () => T): T {
  return logContext.run({ ...logContext.getStore(), ...fields }, fn);
}

const LOGTAPE_LEVELS: Record<Level, LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/**
 * Sends Lookout's logs to stdout as JSON lines through LogTape. Called once
 * per isolate by the process entry points (each worker is an isolate).
 */
export async function setupLogging(level: Level = "info"): Promise<void> {
  await configure({
    sinks: { console: getConsoleSink({ formatter: jsonLinesFormatter }) },
    loggers: [
      { category: ["lookout"], lowestLevel: LOGTAPE_LEVELS[level], sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
    contextLocalStorage: logContext,
  });
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/**
 * Creates a logger. By default it logs through LogTape (see
 * {@linkcode setupLogging}); with `write`, each finished JSON line goes to
 * that function instead, which is how tests read what was logged.
 */
export function createLogger(
  options: { level?: Level; write?: (line: string) => void } = {},
): Logger {
  const { write } = options;
  if (!write) {
    const logtape = getLogger(["lookout"]);
    return {
      debug: (msg, fields) => logtape.debug(msg, serializable(fields)),
      info: (msg, fields) => logtape.info(msg, serializable(fields)),
      warn: (msg, fields) => logtape.warn(msg, serializable(fields)),
      error: (msg, fields) => logtape.error(msg, serializable(fields)),
    };
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

/** LogTape's JSON formatter does not know errors or bigints: give it plain values. */
function serializable(fields?: Record<string, unknown>): Record<string, unknown> {
  if (!fields) return {};
  // The hot path (a socket line per authentication and per close) has only
  // plain values: no round trip through JSON for those.
  for (const key in fields) {
    const value = fields[key];
    if (value !== null && (typeof value === "object" || typeof value === "bigint")) {
      return JSON.parse(JSON.stringify(fields, replacer));
    }
  }
  return fields;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message };
  }
  return typeof value === "bigint" ? value.toString() : value;
}
