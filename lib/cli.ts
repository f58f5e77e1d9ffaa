import { type Config, ConfigError, loadConfig } from "./config.ts";

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
