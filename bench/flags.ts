/**
 * The command line of the benchmark and the soak runners: node:util's
 * parseArgs with `--help` added, and lib/cli/cli.ts's one-line usage errors.
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { numberFlag, usageError } from "../lib/cli/cli.ts";

/**
 * Reads `args` by `options`. `--help` (`-h`) prints `usage` and exits 0; an
 * unknown flag, a missing value or a number out of range prints one line
 * saying what `doing` needs, then the usage, and exits 2.
 */
export function readFlags<T extends ParseArgsOptionsConfig>(
  args: string[],
  options: T,
  cli: { usage: string; doing: string },
) {
  const fail: (message: string) => never = usageError(cli.usage);
  const parse = () =>
    parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
    }).values;
  let values: ReturnType<typeof parse>;
  try {
    values = parse();
  } catch (error) {
    fail(`Cannot ${cli.doing}: ${(error as Error).message}`);
  }
  const given: Record<string, unknown> = values;
  if (given.help) {
    console.log(cli.usage);
    Deno.exit(0);
  }
  return {
    values,
    fail,
    /** The number given as `--name`, or `fallback`; out of `check`'s range, a usage error. */
    number(
      name: keyof T & string,
      fallback: number,
      check: { min: number; max?: number; integer?: boolean },
    ): number {
      const value = given[name];
      return numberFlag(
        fail,
        cli.doing,
        name,
        value === undefined ? undefined : String(value),
        fallback,
        check,
      );
    },
  };
}
