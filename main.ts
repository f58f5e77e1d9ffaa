/**
 * Lookout's entry point. It only wires: configuration, KV, the app, the
 * server and a clean shutdown. `startLookout` is exported for the tests.
 */
import { Hono } from "hono";
import { type Config, ConfigError, loadConfig } from "./lib/config.ts";
import { AttemptLog } from "./lib/attempt_log.ts";
import { Deadlines } from "./lib/deadlines.ts";
import { type Assets, loadAssets } from "./lib/assets.ts";
import { ApiError, errorHandler } from "./lib/http_errors.ts";
import { Hub } from "./lib/hub.ts";
import { openKv, retryingKv } from "./lib/kv.ts";
import { DEFAULT_LIMITS, IpGuard, type Limits } from "./lib/limits.ts";
import { createLogger, type Logger, setupLogging, withLogContext } from "./lib/log.ts";
import { requestId } from "hono/request-id";
import { CLOSE_GOING_AWAY } from "./lib/protocol.ts";
import { RevocationFeed, RevocationSet, revokeSession, revokeToken } from "./lib/revocation.ts";
import { resolveJwtSecret } from "./lib/secret.ts";
import { portInUse } from "./lib/port.ts";
import { securityHeaders } from "./lib/security_headers.ts";
import type { SessionTimeouts } from "./lib/sessions.ts";
import { type AccessClaims, type TokenKey, tokenKey } from "./lib/tokens.ts";
import { ensureFirstAdmin } from "./lib/users.ts";
import { KeyCache } from "./lib/api_keys/key_cache.ts";
import { Metrics } from "./lib/metrics/metrics.ts";
import { adminRoutes } from "./routes/admin.tsx";
import { apiRoutes } from "./routes/api.ts";
import { authRoutes } from "./routes/auth.tsx";
import { healthRoutes } from "./routes/health.ts";
import { keyRoutes } from "./routes/keys.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { staticRoutes } from "./routes/static.ts";
import { wsRoutes } from "./routes/ws.ts";

/** Everything the routes share. */
export interface AppDeps {
  config: Config;
  kv: Deno.Kv;
  tokenKey: TokenKey;
  attempts: AttemptLog;
  hub: Hub;
  logger: Logger;
  limits: Limits;
  guard: IpGuard;
  sessions: SessionTimeouts;
  assets: Assets;
  /** Set while the instance stops: new upgrades are refused with 503. */
  draining: { value: boolean };
  deadlines: Deadlines;
  isRevoked: (claims: AccessClaims) => boolean;
  /** Revokes a session or token everywhere, closing this instance's sockets at once. */
  revokeSession: (sid: string, until: number) => Promise<void>;
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
  // Before apiRoutes: these take API keys, which its middleware would refuse.
  app.route("/", keyRoutes(deps));
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

/**
 * The BroadcastChannel of the instances that share one store: its path
 * locally (a :memory: store is shared by nobody), the app on Deno Deploy.
 */
function channelName(config: Config, instanceId: string): string {
  if (config.kvPath === undefined) return "lookout";
  if (config.kvPath === ":memory:") return `lookout:${instanceId}`;
  return `lookout:${config.kvPath}`;
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
  const revoked = new RevocationSet();
  const instanceId = crypto.randomUUID().slice(0, 8);
  const hub = new Hub(kv, {
    instanceId,
    startedAt: Date.now(),
    retentionDays: config.attemptRetentionDays,
    logger,
    channel: channelName(config, instanceId),
    onRevocation: (event) => revoked.add(event),
    ownCommitsSettled: () => attempts.settled(),
  });
  attempts.onRecorded((recorded, versionstamp) => {
    for (const a of recorded) {
      if (a.outcome === "failure" && a.reason !== "rate_limited") guard.failed(a.ip);
    }
    hub.attemptsRecorded(recorded, versionstamp);
  });
  const feed = new RevocationFeed(kv, {
    logger,
    onEvent: (event) => {
      revoked.add(event);
      const closed = hub.revoked(event);
      if (closed > 0) logger.info("revocation closed sockets", { closed });
    },
  });
  const deps: AppDeps = {
    config,
    kv,
    tokenKey: await tokenKey(secret, config.jwtIssuer, config.jwtAudience),
    attempts,
    hub,
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
    isRevoked: (claims) => revoked.has(claims),
    // The revoking instance acts at once and tells the others over the
    // channel; every instance's feed also reads the event from KV.
    revokeSession: async (sid, until) => {
      hub.broadcastRevocation(await revokeSession(kv, sid, until));
      await feed.poll();
    },
    revokeToken: async (jti, until) => {
      hub.broadcastRevocation(await revokeToken(kv, jti, until));
      await feed.poll();
    },
    keys: new KeyCache(kv),
    metrics: new Metrics(kv, {
      maxSeries: config.metricsMaxSeries,
      retentionDays: config.metricsRetentionDays,
      pushesPerKey: limits.metricsPushesPerKey,
      pushWindowMs: limits.metricsPushWindowMs,
      logger,
    }),
  };
  const app = createApp(deps);
  await feed.start();
  // After the feed starts: what it saw as already there, the load reads.
  await revoked.load(kv);
  const server = Deno.serve({
    port: config.port,
    hostname: config.hostname,
    reusePort: options.reusePort,
    onListen: () => {},
  }, app.fetch);
  hub.start();
  deps.metrics.start();
  const url = new URL(
    `http://${config.hostname === "0.0.0.0" ? "localhost" : config.hostname}:${server.addr.port}`,
  );
  logger.info("listening", { url: url.href, instance: hub.instanceId });

  let closing: Promise<void> | null = null;
  const close = async () => {
    draining.value = true;
    // Wait for the close handshakes (bounded): exiting with close frames
    // still queued left some of 10k sockets without their 1001 (soak).
    const handshakes = [...hub.members()].map((m) =>
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
    await deps.metrics.stop();
    await feed.stop();
    await hub.stop();
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

/** How long a stop may take before the process exits regardless. */
const STOP_DEADLINE_MS = 9_000;

/**
 * Runs Lookout: one instance per worker (one worker per core, sharing the
 * port), each a full instance with its own KV handle; the main thread only
 * supervises. On SIGINT or SIGTERM every instance drains (new upgrades get
 * 503, sockets close 1001, pending attempt records are committed) and the
 * process exits within 10 s.
 */
async function run(config: Config): Promise<void> {
  if (config.workers === 1) {
    const lookout = await startLookout(config);
    onStopSignal(async () => {
      await lookout.close();
    });
    return;
  }
  const workers = Array.from(
    { length: config.workers },
    (_, i) =>
      new Worker(new URL("./worker.ts", import.meta.url), { type: "module", name: `worker-${i}` }),
  );
  const started = workers.map((w) =>
    new Promise<void>((resolve, reject) => {
      w.onmessage = (e) => e.data?.type === "started" ? resolve() : undefined;
      w.onerror = (e) => reject(e.error ?? new Error(e.message));
      w.postMessage({ type: "start", config });
    })
  );
  await Promise.all(started);
  onStopSignal(async () => {
    await Promise.all(workers.map((w) =>
      new Promise<void>((resolve) => {
        w.onmessage = (e) => e.data?.type === "stopped" ? resolve() : undefined;
        w.postMessage({ type: "stop" });
      })
    ));
  });
}

/** On SIGINT or SIGTERM: stop, then exit; exit anyway at the deadline. */
function onStopSignal(stop: () => Promise<void>): void {
  let stopping = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      if (stopping) return;
      stopping = true;
      createLogger().info("stopping", { signal });
      setTimeout(() => Deno.exit(1), STOP_DEADLINE_MS);
      await stop();
      Deno.exit(0);
    });
  }
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
  // Before the workers bind with reusePort, which would share the port
  // with whoever serves it already.
  if (portInUse(config.hostname, config.port)) {
    console.error(`Cannot start as port ${config.port} is already in use by another process`);
    Deno.exit(1);
  }
  await setupLogging();
  await run(config);
}
