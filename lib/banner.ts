import type { Config } from "./config.ts";

/**
 * The start-up banner for a person at a terminal: where Lookout listens,
 * its store, its token issuers and the dashboard, in a few plain lines.
 * Only shown on a terminal (main.ts): elsewhere the JSON lines are the
 * interface, and the `listening` line carries the same address.
 */
export function startupBanner(
  config: Pick<Config, "kvPath" | "jwtIssuer" | "workers" | "logLevel">,
  url: URL,
): string {
  const base = url.href.replace(/\/$/, "");
  const workers = `${config.workers} worker${config.workers === 1 ? "" : "s"}`;
  return [
    `Lookout listening on ${base} (${workers})`,
    `KV: ${config.kvPath ?? "Deno Deploy KV"}`,
    `Issuers: ${config.jwtIssuer} (HS256)`,
    `Dashboard: ${base}/admin`,
    `Logs: JSON lines at ${config.logLevel} and above (LOG_LEVEL)`,
  ].join("\n");
}

/** The address to show for `hostname:port`: `localhost` for any-address. */
export function displayUrl(hostname: string, port: number): URL {
  const host = hostname === "0.0.0.0" || hostname === "::"
    ? "localhost"
    : hostname.includes(":")
    ? `[${hostname}]`
    : hostname;
  return new URL(`http://${host}:${port}`);
}
