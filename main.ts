/**
 * Lookout's entry point. It only wires: configuration, KV, the app, the
 * server and a clean shutdown. `startLookout` is exported for the tests.
 */
import { Hono } from "hono";
import { type Config, ConfigError, loadConfig } from "./lib/config.ts";
import { AttemptLog } from "./lib/attempt_log.ts";
import { ApiError, errorHandler } from "./lib/http_errors.ts";
import { Hub } from "./lib/hub.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { CLOSE_GOING_AWAY } from "./lib/protocol.ts";
import { isRevoked } from "./lib/revocation.ts";
import { resolveJwtSecret } from "./lib/secret.ts";
import { type AccessClaims, type TokenKey, tokenKey } from "./lib/tokens.ts";
import { openKv } from "./lib/kv.ts";
import { apiRoutes } from "./routes/api.ts";
import { healthRoutes } from "./routes/health.ts";
import { wsRoutes } from "./routes/ws.ts";

/** Everything the routes share. */
export interface AppDeps {
  config: Config;
  kv: Deno.Kv;
  tokenKey: TokenKey;
  attempts: AttemptLog;
  hub: Hub;
  logger: Logger;
  isRevoked: (claims: AccessClaims) => Promise<boolean>;
}

/** Builds the Hono app from its parts. */
export function createApp(deps: AppDeps): Hono {
  const { config } = deps;
  const app = new Hono();
  app.onError(errorHandler(deps.logger));
  app.notFound(() => {
    throw new ApiError(404, "not_found");
  });
  app.route("/", healthRoutes(deps.kv));
  app.route("/", apiRoutes(deps));
  app.route(
    "/",
    wsRoutes({
      ...deps,
      authTimeoutMs: config.authTimeoutMs,
      maxMessageBytes: config.maxMessageBytes,
    }),
  );
  return app;
}

/** A running Lookout server. */
export interface Lookout {
  url: URL;
  deps: AppDeps;
  /** Stops serving: sockets close 1001, pending records are committed. */
  close(): Promise<void>;
}

/** Options of {@linkcode startLookout}. */
export interface StartOptions {
  /** Use this KV instead of opening `config.kvPath` (left open on close). */
  kv?: Deno.Kv;
  logger?: Logger;
}

/** Opens KV, builds the app and serves it on `config.hostname:config.port`. */
export async function startLookout(
  config: Config,
  options: StartOptions = {},
): Promise<Lookout> {
  const logger = options.logger ?? createLogger();
  const kv = options.kv ?? await openKv(config.kvPath);
  const secret = await resolveJwtSecret(kv, config.jwtSecret, logger);
  const attempts = new AttemptLog(kv, { retentionDays: config.attemptRetentionDays });
  const hub = new Hub(kv, {
    instanceId: crypto.randomUUID().slice(0, 8),
    startedAt: Date.now(),
    retentionDays: config.attemptRetentionDays,
    logger,
  });
  attempts.onRecorded((recorded) => hub.attemptsRecorded(recorded));
  const deps: AppDeps = {
    config,
    kv,
    tokenKey: tokenKey(secret, config.jwtIssuer, config.jwtAudience),
    attempts,
    hub,
    logger,
    isRevoked: (claims) => isRevoked(kv, claims),
  };
  const app = createApp(deps);
  const server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    onListen: () => {},
  }, app.fetch);
  hub.start();
  const url = new URL(
    `http://${config.hostname === "0.0.0.0" ? "localhost" : config.hostname}:${server.addr.port}`,
  );
  logger.info("listening", { url: url.href, instance: hub.instanceId });

  let closing: Promise<void> | null = null;
  const close = async () => {
    for (const member of hub.members()) member.close(CLOSE_GOING_AWAY, "server_stopping");
    await server.shutdown();
    await attempts.flush();
    await hub.stop();
    if (!options.kv) kv.close();
  };
  return { url, deps, close: () => closing ??= close() };
}

if (import.meta.main) {
  let config: Config;
  try {
    config = loadConfig(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    Deno.exit(1);
  }
  const lookout = await startLookout(config);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      lookout.deps.logger.info("stopping", { signal });
      await lookout.close();
      Deno.exit(0);
    });
  }
}
