/**
 * The `/admin/ws` protocol: client and server messages as zod schemas, the
 * failure reasons and their close codes. The server, the browser client and
 * the tests all import this one module, so they cannot drift apart. It uses
 * `zod/mini`, whose functions tree-shake, because the browser bundle carries
 * it: full zod would be about 90 KB gzip, mini is about 6.
 */
import * as z from "zod/mini";

/** Every reason an authentication attempt can fail with (CONTRACT 4.3). */
export const FAILURE_REASONS = [
  "bad_message",
  "missing_token",
  "malformed_token",
  "alg_not_allowed",
  "invalid_signature",
  "token_expired",
  "token_not_yet_valid",
  "invalid_claims",
  "revoked",
  "forbidden",
  "key_unavailable",
  "auth_timeout",
  "rate_limited",
  "slow_consumer",
  "message_too_large",
  "bad_origin",
  "token_in_url",
  // A wrong user name or password at POST /auth/login (CONTRACT 9); never a socket's.
  "invalid_credentials",
] as const;
export type FailureReason = typeof FAILURE_REASONS[number];

/** Reasons that a token verification can end with. */
export type TokenFailureReason =
  | "missing_token"
  | "malformed_token"
  | "alg_not_allowed"
  | "invalid_signature"
  | "token_expired"
  | "token_not_yet_valid"
  | "invalid_claims"
  | "revoked"
  | "forbidden"
  | "key_unavailable";

/** The close code sent with each reason (reasons only answered over HTTP have none). */
export const CLOSE_CODES = {
  bad_message: 4400,
  missing_token: 4401,
  malformed_token: 4401,
  alg_not_allowed: 4401,
  invalid_signature: 4401,
  token_expired: 4401,
  token_not_yet_valid: 4401,
  invalid_claims: 4401,
  revoked: 4403,
  forbidden: 4403,
  // An identity provider's keys cannot be had: the server's trouble, retry later.
  key_unavailable: 1013,
  auth_timeout: 4408,
  rate_limited: 4429,
  slow_consumer: 4409,
  message_too_large: 1009,
} as const satisfies Partial<Record<FailureReason, number>>;
export type CloseReason = keyof typeof CLOSE_CODES;

/** Close codes outside the table: server stopping, and an internal failure. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_INTERNAL_ERROR = 1011;

export const ROLES = ["admin", "viewer"] as const;
export type Role = typeof ROLES[number];

export const EVENTS = ["stats", "attempts", "presence", "metrics"] as const;
export type EventName = typeof EVENTS[number];

// Client to server.

const PingId = z.union([z.string().check(z.maxLength(128)), z.number()]);
const EventList = z.array(z.enum(EVENTS)).check(z.maxLength(16));

export const AuthMessage = z.object({
  type: z.literal("auth"),
  token: z.string().check(z.minLength(1)),
});
export const ClientMessage = z.discriminatedUnion("type", [
  AuthMessage,
  z.object({ type: z.literal("ping"), id: z.optional(PingId) }),
  z.object({ type: z.literal("get_stats") }),
  z.object({ type: z.literal("subscribe"), events: EventList }),
  z.object({ type: z.literal("unsubscribe"), events: EventList }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

// Shared records.

const Count = z.int();

export const User = z.object({ name: z.string(), role: z.enum(ROLES) });
export type User = z.infer<typeof User>;

export const PresenceEntry = z.object({
  name: z.string(),
  role: z.string(),
  connections: Count,
});
export type PresenceEntry = z.infer<typeof PresenceEntry>;

export const Attempt = z.object({
  id: z.string(),
  at: z.number(),
  ip: z.string(),
  user: z.nullable(z.string()),
  outcome: z.enum(["success", "failure"]),
  reason: z.enum(["ok", ...FAILURE_REASONS]),
  transport: z.enum(["message", "header", "upgrade", "login", "api_key"]),
  origin: z.nullable(z.string()),
  userAgent: z.nullable(z.string()),
  tokenId: z.nullable(z.string()),
  durationMs: z.number(),
});
export type Attempt = z.infer<typeof Attempt>;

export const Stats = z.object({
  at: z.number(),
  instance: z.string(),
  uptimeS: z.number(),
  connections: z.object({ open: Count, authenticated: Count, pending: Count }),
  attempts: z.object({
    total: Count,
    success: Count,
    failure: Count,
    byReason: z.record(z.string(), Count),
    lastMinute: z.object({ success: Count, failure: Count }),
  }),
  presence: z.array(PresenceEntry),
});
export type Stats = z.infer<typeof Stats>;

/** Where a changed `10s` bucket belongs (CONTRACT 7.4). */
const BucketOf = {
  name: z.string(),
  labels: z.record(z.string(), z.string()),
  t: z.number(),
  step: z.literal("10s"),
};
const Num = z.nullable(z.number());

/** One changed `10s` bucket of one series, with the fields of CONTRACT 7.3 for its type. */
export const MetricBucket = z.discriminatedUnion("type", [
  z.object({ ...BucketOf, type: z.literal("counter"), sum: z.number(), count: Count }),
  z.object({
    ...BucketOf,
    type: z.literal("gauge"),
    last: Num,
    min: z.number(),
    max: z.number(),
    avg: z.number(),
    count: Count,
  }),
  z.object({
    ...BucketOf,
    type: z.literal("histogram"),
    count: Count,
    sum: z.number(),
    min: z.number(),
    max: z.number(),
    p50: Num,
    p90: Num,
    p99: Num,
  }),
]);
export type MetricBucket = z.infer<typeof MetricBucket>;

// Server to client.

export const ServerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("authenticated"),
    user: User,
    expiresAt: z.number(),
    connectionId: z.string(),
  }),
  z.object({ type: z.literal("auth_failed"), reason: z.enum(FAILURE_REASONS) }),
  z.object({ type: z.literal("reauthenticated"), expiresAt: z.number() }),
  z.object({ type: z.literal("pong"), ts: z.number(), id: z.optional(PingId) }),
  z.object({ type: z.literal("stats_update"), data: Stats }),
  z.object({ type: z.literal("subscribed"), events: z.array(z.enum(EVENTS)) }),
  z.object({ type: z.literal("attempt"), data: Attempt }),
  z.object({
    type: z.literal("presence"),
    data: z.object({ online: z.array(PresenceEntry) }),
  }),
  z.object({ type: z.literal("token_expiring"), expiresAt: z.number() }),
  z.object({
    type: z.literal("metrics_update"),
    data: z.object({ at: z.number(), points: z.array(MetricBucket) }),
  }),
  z.object({
    type: z.literal("error"),
    code: z.literal("bad_message"),
    message: z.string(),
  }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;
