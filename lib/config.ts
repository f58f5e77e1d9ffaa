import { z } from "zod";
import { UserName } from "./auth/user_name.ts";
import { type IssuerConfig, parseIssuers } from "./auth/issuers.ts";
import { DEFAULT_LIMITS } from "./realtime/limits.ts";
import type { Level } from "./log.ts";

/** Validated runtime configuration, read once at start-up. */
export interface Config {
  port: number;
  hostname: string;
  /** Local KV file, `:memory:`, or undefined on Deno Deploy (its own KV). */
  kvPath: string | undefined;
  /** HS256 secret as text; undefined means "generate once and keep in KV". */
  jwtSecret: string | undefined;
  /** A retired HS256 secret whose tokens still verify (rotation). */
  jwtSecretPrevious: string | undefined;
  /** Identity providers whose tokens are accepted too (CONTRACT 8). */
  jwtIssuers: IssuerConfig[];
  jwtIssuer: string;
  jwtAudience: string;
  accessTokenTtlS: number;
  /** Exact origins allowed to open `/admin/ws`; null means the request's own origin. */
  allowedOrigins: string[] | null;
  adminUsername: string | undefined;
  adminPassword: string | undefined;
  authTimeoutMs: number;
  maxMessageBytes: number;
  trustProxy: boolean;
  attemptRetentionDays: number;
  /** A session ends after this long without use, and after `sessionMaxAgeS` at most. */
  sessionIdleTimeoutS: number;
  sessionMaxAgeS: number;
  /** Instances this process runs, one per core by default (always 1 on Deno Deploy). */
  workers: number;
  onDeploy: boolean;
  /** Most metric series the deployment keeps (CONTRACT 7.2). */
  metricsMaxSeries: number;
  /** How long `1h` and `1d` metric rollups are kept. */
  metricsRetentionDays: number;
  /** Metric pushes one key (or one user's tokens) may make per 10 s, per instance. */
  metricsPushesPerKeyPer10s: number;
  /** The lowest level logged (`LOG_LEVEL`). */
  logLevel: Level;
  /**
   * Log lines go through `console.log`, where Deno Deploy and Deno's
   * OpenTelemetry (`OTEL_DENO=true`, unless `OTEL_DENO_CONSOLE=ignore`)
   * collect them; otherwise they are written to stdout in batches.
   */
  logToConsole: boolean;
}

/** Thrown when an environment variable has a bad value; its message is one line. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

function integer(min: number, max: number) {
  const message = `must be an integer from ${min} to ${max}`;
  return z.string().trim().regex(/^-?\d+$/, message).transform(Number)
    .refine((n) => n >= min && n <= max, message);
}

const SECRET_VARS = new Set(["JWT_SECRET", "JWT_SECRET_PREVIOUS", "ADMIN_PASSWORD"]);
const encoder = new TextEncoder();

const Env = z.object({
  PORT: integer(0, 65535).default(8000),
  HOSTNAME: z.string().trim().min(1, "must not be empty").default("0.0.0.0"),
  KV_PATH: z.string().trim().min(1).default("data/lookout.sqlite3"),
  JWT_SECRET: z.string().refine(
    (s) => encoder.encode(s).length >= 32,
    "must be at least 32 bytes of UTF-8",
  ).optional(),
  JWT_SECRET_PREVIOUS: z.string().refine(
    (s) => encoder.encode(s).length >= 32,
    "must be at least 32 bytes of UTF-8",
  ).optional(),
  JWT_ISSUER: z.string().trim().min(1).default("lookout"),
  JWT_AUDIENCE: z.string().trim().min(1).default("lookout"),
  // Over the 60 s expiry warning, or a re-authenticated socket is warned again at once.
  ACCESS_TOKEN_TTL_S: integer(120, 86_400).default(900),
  ALLOWED_ORIGINS: z.string().transform((value, ctx) => {
    const origins = value.split(",").map((s) => s.trim()).filter(Boolean);
    for (const origin of origins) {
      if (!isOrigin(origin)) {
        ctx.addIssue({
          code: "custom",
          message:
            `must be a comma-separated list of origins like https://admin.example.com, and "${origin}" is not one`,
        });
        return z.NEVER;
      }
    }
    return origins.length ? origins : null;
  }).optional(),
  ADMIN_USERNAME: z.string().trim().pipe(UserName).optional(),
  ADMIN_PASSWORD: z.string().min(8, "must be at least 8 characters").max(
    1024,
    "must be at most 1024 characters",
  ).optional(),
  AUTH_TIMEOUT_MS: integer(100, 300_000).default(10_000),
  MAX_MESSAGE_BYTES: integer(256, 16 * 1024 * 1024).default(65_536),
  TRUST_PROXY: z.string().trim().toLowerCase().pipe(
    z.enum(["true", "false", "1", "0", "yes", "no"], {
      error: "must be true or false",
    }),
  ).transform((v) => v === "true" || v === "1" || v === "yes").default(false),
  ATTEMPT_RETENTION_DAYS: integer(1, 3650).default(30),
  SESSION_IDLE_TIMEOUT_S: integer(60, 30 * 86_400).default(30 * 60),
  SESSION_MAX_AGE_S: integer(60, 365 * 86_400).default(12 * 3600),
  LOOKOUT_WORKERS: integer(1, 64).optional(),
  METRICS_MAX_SERIES: integer(1, 1_000_000).default(1000),
  METRICS_RETENTION_DAYS: integer(1, 3650).default(90),
  METRICS_PUSHES_PER_KEY_PER_10S: integer(1, 1_000_000_000).default(
    DEFAULT_LIMITS.metricsPushesPerKey,
  ),
  LOG_LEVEL: z.string().trim().toLowerCase().pipe(
    z.enum(["debug", "info", "warning", "warn", "error"], {
      error: "must be one of debug, info, warning, error",
    }),
  ).transform((v): Level => v === "warning" ? "warn" : v).default("info"),
});

function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") &&
      url.origin === value;
  } catch {
    return false;
  }
}

/**
 * Reads and validates the configuration from an environment map.
 * Empty values count as unset. Throws {@linkcode ConfigError} with one line
 * naming the first bad variable (for `JWT_ISSUERS`, one line per bad entry).
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value !== "") input[name] = value;
  }
  const parsed = Env.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue.path[0]);
    const raw = input[name];
    const shown = SECRET_VARS.has(name)
      ? `current value has ${encoder.encode(raw ?? "").length} bytes`
      : `current value is ${JSON.stringify(raw)}`;
    throw new ConfigError(
      `Cannot start as ${name} ${issue.message}: ${shown}`,
    );
  }
  const e = parsed.data;
  // Deno Deploy sets both; Deploy Classic set only DENO_DEPLOYMENT_ID.
  const onDeploy = input.DENO_DEPLOY === "true" || Boolean(input.DENO_DEPLOYMENT_ID);
  if (onDeploy && !e.JWT_SECRET) {
    throw new ConfigError(
      "Cannot start as JWT_SECRET is required on Deno Deploy: current value is unset",
    );
  }
  if ((e.ADMIN_USERNAME === undefined) !== (e.ADMIN_PASSWORD === undefined)) {
    const missing = e.ADMIN_USERNAME === undefined ? "ADMIN_USERNAME" : "ADMIN_PASSWORD";
    throw new ConfigError(
      `Cannot start as ${missing} must be set together with ${
        missing === "ADMIN_USERNAME" ? "ADMIN_PASSWORD" : "ADMIN_USERNAME"
      }: current value is unset`,
    );
  }
  const issuers = parseIssuers(input.JWT_ISSUERS, e.JWT_ISSUER);
  // One line per bad entry, so every mistake shows in one start.
  if (!issuers.ok) throw new ConfigError(issuers.errors.join("\n"));
  return {
    port: e.PORT,
    hostname: e.HOSTNAME,
    kvPath: onDeploy ? undefined : e.KV_PATH,
    jwtSecret: e.JWT_SECRET,
    jwtSecretPrevious: e.JWT_SECRET_PREVIOUS,
    jwtIssuers: issuers.issuers,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    accessTokenTtlS: e.ACCESS_TOKEN_TTL_S,
    allowedOrigins: e.ALLOWED_ORIGINS ?? null,
    adminUsername: e.ADMIN_USERNAME,
    adminPassword: e.ADMIN_PASSWORD,
    authTimeoutMs: e.AUTH_TIMEOUT_MS,
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    trustProxy: e.TRUST_PROXY,
    attemptRetentionDays: e.ATTEMPT_RETENTION_DAYS,
    sessionIdleTimeoutS: e.SESSION_IDLE_TIMEOUT_S,
    sessionMaxAgeS: e.SESSION_MAX_AGE_S,
    // Port 0 means "any free port", which workers sharing one port cannot
    // do; a :memory: store would be a different store in each worker.
    workers: onDeploy || e.PORT === 0 || e.KV_PATH === ":memory:"
      ? 1
      : e.LOOKOUT_WORKERS ?? navigator.hardwareConcurrency ?? 1,
    onDeploy,
    metricsMaxSeries: e.METRICS_MAX_SERIES,
    metricsRetentionDays: e.METRICS_RETENTION_DAYS,
    metricsPushesPerKeyPer10s: e.METRICS_PUSHES_PER_KEY_PER_10S,
    logLevel: e.LOG_LEVEL,
    logToConsole: onDeploy ||
      (input.OTEL_DENO === "true" && input.OTEL_DENO_CONSOLE?.toLowerCase() !== "ignore"),
  };
}
