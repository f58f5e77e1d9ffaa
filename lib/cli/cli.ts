import { parseArgs } from "node:util";
import { type Config, ConfigError, loadConfig } from "../config.ts";

/** What a CLI does on a usage error: one line, the usage, exit status 2. */
export function usageError(usage: string): (message: string) => never {
  return (message) => {
    console.error(message);
    console.error(usage);
    Deno.exit(2);
  };
}

/** The configuration from the environment, or `fail` with its one-line error. */
export function configOrFail(fail: (message: string) => never): Config {
  try {
    return loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}

/**
 * The number given as `--name` (`value`), or `fallback` when it was not
 * given; out of range, `fail`s with one line saying what `doing` needs.
 */
export function numberFlag(
  fail: (message: string) => never,
  doing: string,
  name: string,
  value: string | undefined,
  fallback: number,
  check: { min: number; max?: number; integer?: boolean },
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  const max = check.max ?? Infinity;
  if (!Number.isFinite(n) || n < check.min || n > max || (check.integer && n % 1 !== 0)) {
    const range = max === Infinity ? `of at least ${check.min}` : `from ${check.min} to ${max}`;
    fail(
      `Cannot ${doing} as --${name} must be ${
        check.integer ? "an integer" : "a number"
      } ${range}: current value is ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** The options of a CLI, as `node:util` `parseArgs` takes them. */
type CliOptions = Record<string, { type: "string" | "boolean"; short?: string; default?: string }>;

/**
 * Parses `Deno.args` for a CLI that takes `options` (plus `--help`/`-h`,
 * which prints `usage` and exits 0) and positionals. A bad flag fails with
 * one line, `Cannot <doing>: <why>`, and the usage (exit 2).
 */
export function parseCliArgs<O extends CliOptions>(
  usage: string,
  doing: string,
  options: O,
): {
  values: { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string };
  positionals: string[];
  fail: (message: string) => never;
} {
  const fail: (message: string) => never = usageError(usage);
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: { ...options, help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    fail(`Cannot ${doing}: ${(error as Error).message}`);
  }
  if ((parsed.values as { help?: boolean }).help) {
    console.log(usage);
    Deno.exit(0);
  }
  return {
    values: parsed.values as { [K in keyof O]?: O[K]["type"] extends "boolean" ? boolean : string },
    positionals: parsed.positionals,
    fail,
  };
}
