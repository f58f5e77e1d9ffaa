/**
 * One Lookout instance: `createApp` builds the Hono app from its parts, and
 * `startLookout` makes the parts (KV, the attempt log, the socket registry,
 * the deployment-wide stats, the feed from the other instances, the
 * revocations), serves, and stops cleanly. `main.ts`, `worker.ts` and the
 * tests start instances through it.
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import type { Config } from "./lib/config.ts";
import { AttemptLog } from "./lib/attempts/log.ts";
import { Deadlines } from "./lib/realtime/deadlines.ts";
import { type Assets, loadAssets } from "./lib/http/assets.ts";
import { ApiError, errorHandler } from "./lib/http/errors.ts";
import { openKv, retryingKv } from "./lib/store/kv.ts";
import { statsVersionKey } from "./lib/store/keys.ts";
import { DEFAULT_LIMITS, IpGuard, type Limits } from "./lib/realtime/limits.ts";
import { createLogger, type Logger, withLogContext } from "./lib/log.ts";
import { CLOSE_GOING_AWAY } from "./shared/protocol.ts";
import { resolveJwtSecret } from "./lib/auth/secret.ts";
import { securityHeaders } from "./lib/http/security_headers.ts";
import type { SessionTimeouts } from "./lib/auth/sessions.ts";
import { type AccessClaims, type TokenKey, tokenKey } from "./lib/auth/tokens.ts";
import { ensureFirstAdmin } from "./lib/auth/users.ts";
import type { Connection } from "./lib/realtime/connection.ts";
import { Revocations } from "./lib/auth/revocations.ts";
import { AttemptFanout } from "./lib/realtime/attempts.ts";
import { Feed } from "./lib/realtime/feed.ts";
import { Registry } from "./lib/realtime/registry.ts";
import { DeploymentStats } from "./lib/stats/deployment.ts";
import { adminRoutes } from "./routes/admin.tsx";
import { apiRoutes } from "./routes/api.ts";
import { authRoutes } from "./routes/auth.tsx";
import { healthRoutes } from "./routes/health.ts";
import { staticRoutes } from "./routes/static.ts";
import { wsRoutes } from "./routes/ws.ts";
import { keyRoutes } from "./routes/keys.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { KeyCache } from "./lib/api_keys/key_cache.ts";
import { Metrics } from "./lib/metrics/metrics.ts";
import { ConnectionRecords } from "./lib/realtime/connections.ts";
import { connectionRoutes } from "./routes/connections.ts";
import { MetricsFanout } from "./lib/realtime/metrics.ts";
import { adminMetricsRoutes } from "./routes/admin_metrics.tsx";

/** Everything the routes share. */
export interface AppDeps {
  config: Config;
  kv: Deno.Kv;
  tokenKey: TokenKey;
  attempts: AttemptLog;
  /** This instance's id, as `instance` in its stats. */
  instanceId: string;
  /** This instance's sockets. */
  registry: Registry<Connection>;
  stats: DeploymentStats;
  revocations: Revocations;
  /** The deployment's authenticated sockets: listed and ended from here (CONTRACT 8.1). */
  connections: ConnectionRecords;
  logger: Logger;
  limits: Limits;
  guard: IpGuard;
  sessions: SessionTimeouts;
  assets: Assets;
  /** Set while the instance stops: new upgrades are refused with 503. */
  draining: { value: boolean };
  deadlines: Deadlines;
  /** {@linkcode Revocations.has}, for the routes that verify tokens. */
  isRevoked: (claims: AccessClaims) => boolean;
  /** {@linkcode Revocations.revokeSession}: everywhere, this instance's sockets at once. */
  revokeSession: (sid: string, until: number) => Promise<void>;
  /** {@linkcode Revocations.revokeToken}, likewise. */
  revokeToken: (jti: string, until: number) => Promise<void>;
  /** This instance's view of the API keys. */
  keys: KeyCache;
  metrics: Metrics;
}

/** Builds the Hono app from its parts. */
export function createApp(deps: AppDeps): Hono {
  const { config } = deps;
  const app = new Hono();
  const onError = errorHandler(deps.logger);
  app.onError(onError);
  // Answered, not thrown: Hono runs the not-found handler inside the
  // middleware chain, and a throw there skips every middleware's after-part
  // (the security headers among them) on its way to onError.
  app.notFound((c) => onError(new ApiError(404, "not_found"), c));
  // Every line logged for a request carries its id (also sent back as
  // X-Request-Id, and taken from a proxy's X-Request-Id when it sets one).
  app.use(requestId());
  app.use((c, next) => withLogContext({ requestId: c.get("requestId") }, next));
  app.use(securityHeaders(config.trustProxy));
  app.get("/", (c) => c.redirect("/admin", 302));
  app.route("/", healthRoutes(deps.kv));
  app.route("/", staticRoutes());
  app.route("/", authRoutes(deps));
  app.route("/", adminRoutes(deps));
  app.route("/", adminMetricsRoutes(deps));
  // Before apiRoutes: these take API keys, which its middleware would refuse.
  app.route("/", keyRoutes(deps));
  app.route("/", connectionRoutes(deps));
  app.route("/", metricsRoutes(deps));
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
  /** Abuse limits other than the defaults. */
  limits?: Partial<Limits>;
  /** Share the port with other instances of this process (one per worker). */
  reusePort?: boolean;
  /** How long a stopping instance keeps answering 503 before it stops listening. */
  drainGraceMs?: number;
}

/** Opens KV, builds the app and serves it on `config.hostname:config.port`. */
export async function startLookout(
  config: Config,
  options: StartOptions = {},
): Promise<Lookout> {
  const logger = options.logger ?? createLogger();
  const opened = options.kv ?? await openKv(config.kvPath);
  const kv = retryingKv(opened);
  const secret = await resolveJwtSecret(kv, config.jwtSecret, logger);
  if (await ensureFirstAdmin(kv, config.adminUsername, config.adminPassword)) {
    logger.info("created the first admin from ADMIN_USERNAME", { user: config.adminUsername });
  }
  if (
    config.trustProxy && config.hostname !== "127.0.0.1" && config.hostname !== "::1" &&
    !config.onDeploy
  ) {
    logger.warn(
      "TRUST_PROXY is true while listening on all interfaces: a client that reaches the port directly can pick its own X-Forwarded-For; set HOSTNAME=127.0.0.1 behind a local proxy",
      { hostname: config.hostname },
    );
  }
  const limits = {
    ...DEFAULT_LIMITS,
    metricsPushesPerKey: config.metricsPushesPerKeyPer10s,
    ...options.limits,
  };
  const assets = await loadAssets();
  const draining = { value: false };
  if (assets.js === null) {
    logger.warn("island assets are not built: pages are served without them; run deno task build");
  }
  const guard = new IpGuard(limits);
  const attempts = new AttemptLog(kv, { retentionDays: config.attemptRetentionDays });
  const instanceId = crypto.randomUUID().slice(0, 8);
  const registry = new Registry<Connection>();
  const stats = new DeploymentStats(kv, registry, {
    instanceId,
    startedAt: Date.now(),
    retentionDays: config.attemptRetentionDays,
    logger,
  });
  const fanout = new AttemptFanout(kv, registry, {
    logger,
    ownCommitsSettled: () => attempts.settled(),
  });
  // Every attempt commit bumps the stats version, so the one watched key
  // brings both the counters and the other instances' attempt events.
  const feed = new Feed(kv, {
    instanceId,
    logger,
    versions: [{
      key: statsVersionKey(),
      onChange: async (versionstamp) => {
        // The feed can see our own commit before the attempt log reports
        // it; the report carries the versionstamp, so it goes first.
        await attempts.settled();
        stats.versionChanged(versionstamp);
        fanout.tail();
      },
    }],
  });
  const revocations = new Revocations(kv, registry, { feed, logger });
  const connections = new ConnectionRecords(kv, registry, { instanceId, feed, logger });
  const metricsFanout = new MetricsFanout(kv, registry, {
    retentionDays: config.metricsRetentionDays,
    logger,
  });
  feed.on("metrics", (event) => metricsFanout.changed(event.buckets));
  attempts.onRecorded((recorded, versionstamp) => {
    guard.recorded(recorded);
    fanout.recorded(recorded);
    stats.attemptsRecorded(recorded, versionstamp);
  });
  const deps: AppDeps = {
    config,
    kv,
    tokenKey: await tokenKey(secret, config.jwtIssuer, config.jwtAudience, {
      previous: config.jwtSecretPrevious,
      issuers: config.jwtIssuers,
      // Tokens still verify with the last good keys; the operator should know.
      onKeyFetchError: (issuer, error) =>
        logger.warn("cannot fetch the JWKS of a trusted issuer", {
          issuer,
          error: (error as Error)?.message ?? String(error),
        }),
    }),
    attempts,
    instanceId,
    registry,
    stats,
    revocations,
    connections,
    logger,
    limits,
    guard,
    sessions: {
      idleMs: config.sessionIdleTimeoutS * 1000,
      maxAgeMs: config.sessionMaxAgeS * 1000,
    },
    assets,
    draining,
    deadlines: new Deadlines(),
    isRevoked: (claims) => revocations.has(claims),
    revokeSession: (sid, until) => revocations.revokeSession(sid, until),
    revokeToken: (jti, until) => revocations.revokeToken(jti, until),
    keys: new KeyCache(kv),
    metrics: new Metrics(kv, {
      maxSeries: config.metricsMaxSeries,
      retentionDays: config.metricsRetentionDays,
      pushesPerKey: limits.metricsPushesPerKey,
      pushWindowMs: limits.metricsPushWindowMs,
      logger,
      announce: { origin: instanceId, committed: (buckets) => metricsFanout.changed(buckets) },
    }),
  };
  const app = createApp(deps);
  await feed.start();
  // After the feed starts: what it saw as already there, the load reads.
  await revocations.load();
  const server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    reusePort: options.reusePort,
    onListen: () => {},
  }, app.fetch);
  stats.start();
  deps.metrics.start();
  const url = new URL(
    `http://${config.hostname === "0.0.0.0" ? "localhost" : config.hostname}:${server.addr.port}`,
  );
  logger.info("listening", { url: url.href, instance: instanceId });

  let closing: Promise<void> | null = null;
  const close = async () => {
    draining.value = true;
    // Wait for the close handshakes (bounded): exiting with close frames
    // still queued left some of 10k sockets without their 1001 (soak).
    const handshakes = [...registry.members()].map((m) =>
      m.closeAndWait(CLOSE_GOING_AWAY, "server_stopping")
    );
    // Clients told 1001 come back at once: meanwhile they get a 503 with
    // Retry-After (and a load balancer its answer) rather than a refusal.
    let bound: ReturnType<typeof setTimeout> | undefined;
    await Promise.all([
      Promise.race([
        Promise.all(handshakes),
        new Promise((r) => bound = setTimeout(r, CLOSE_HANDSHAKE_WAIT_MS)),
      ]).finally(() => clearTimeout(bound)),
      delay(options.drainGraceMs ?? 250),
    ]);
    await server.shutdown();
    // Requests that were in flight have recorded their attempts by now.
    await attempts.flush();
    // The closed sockets' records go before this instance's entry does.
    await connections.stop();
    await deps.metrics.stop();
    await feed.stop();
    await metricsFanout.stop();
    await fanout.settled();
    await stats.stop();
    deps.deadlines.stop();
    if (!options.kv) opened.close();
  };
  return { url, deps, close: () => closing ??= close() };
}

/** How long a stop waits for sockets to finish their close handshakes. */
const CLOSE_HANDSHAKE_WAIT_MS = 3_000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
