/**
 * Every Deno KV key Lookout uses is built here, so the layout can be read in
 * one place. The first part is a plural snake_case collection; secondary
 * indexes are `<collection>_by_<field>` and hold the id, not a copy.
 */

/** Fields of an attempt record that have a secondary index. */
export type AttemptIndexField = "outcome" | "reason" | "ip" | "user";

/** The attempt record itself. */
export function attemptKey(id: string): Deno.KvKey {
  return ["attempts", id];
}

/** All attempt records, for listing in id (time) order. */
export function attemptsPrefix(): Deno.KvKey {
  return ["attempts"];
}

/** One secondary index entry: its value is the attempt id. */
export function attemptIndexKey(
  field: AttemptIndexField,
  value: string,
  id: string,
): Deno.KvKey {
  return [`attempts_by_${field}`, value, id];
}

/** The prefix of one value in a secondary index. */
export function attemptIndexPrefix(
  field: AttemptIndexField,
  value: string,
): Deno.KvKey {
  return [`attempts_by_${field}`, value];
}

/** Running totals (KvU64 sums): `["total"]`, `["outcome", o]`, `["reason", r]`. */
export function attemptCountKey(...parts: string[]): Deno.KvKey {
  return ["attempt_counts", ...parts];
}

/** What a running total counts, read back from its key ({@linkcode attemptCountKey}). */
export function decodeAttemptCountKey(
  key: Deno.KvKey,
): { total: true } | { outcome: string } | { reason: string } | null {
  if (key[1] === "total") return { total: true };
  if (key[1] === "outcome") return { outcome: String(key[2]) };
  if (key[1] === "reason") return { reason: String(key[2]) };
  return null;
}

/** The prefix of every running total. */
export function attemptCountsPrefix(): Deno.KvKey {
  return ["attempt_counts"];
}

/** Time buckets of attempts by outcome (KvU64 sums); `size` is "10s" or "1m". */
export function attemptBucketKey(
  size: "10s" | "1m",
  start: number,
  outcome: string,
): Deno.KvKey {
  return [`attempt_buckets_${size}`, start, outcome];
}

/** A bucket's start and outcome, read back from its key ({@linkcode attemptBucketKey}). */
export function decodeAttemptBucketKey(key: Deno.KvKey): { start: number; outcome: string } {
  return { start: Number(key[1]), outcome: String(key[2]) };
}

/** The prefix of one bucket size, for range listing by start time. */
export function attemptBucketPrefix(size: "10s" | "1m"): Deno.KvKey {
  return [`attempt_buckets_${size}`];
}

/** One running instance's connection counts and presence, with a heartbeat. */
export function instanceKey(id: string): Deno.KvKey {
  return ["instances", id];
}

/** Every instance entry. */
export function instancesPrefix(): Deno.KvKey {
  return ["instances"];
}

/** Bumped (KvU64 sum) whenever deployment-wide statistics change. */
export function statsVersionKey(): Deno.KvKey {
  return ["stats_version"];
}

/** The generated HS256 secret, when `JWT_SECRET` is not set (local only). */
export function jwtSecretKey(): Deno.KvKey {
  return ["settings", "jwt_secret"];
}

/** A key read by the health check. */
export function healthKey(): Deno.KvKey {
  return ["settings", "health"];
}

/** A revoked token id; kept until the token would have expired anyway. */
export function revokedTokenKey(jti: string): Deno.KvKey {
  return ["revoked_tokens", jti];
}

/** A revoked session; tokens issued under it are refused. */
export function revokedSessionKey(sid: string): Deno.KvKey {
  return ["revoked_sessions", sid];
}

/** Every revoked token id. */
export function revokedTokensPrefix(): Deno.KvKey {
  return ["revoked_tokens"];
}

/** Every revoked session. */
export function revokedSessionsPrefix(): Deno.KvKey {
  return ["revoked_sessions"];
}

/** The token id, session id or user name of a revocation record, read back from its key. */
export function decodeRevokedKey(key: Deno.KvKey): string {
  return String(key[1]);
}

/**
 * A user's revocation: every token of theirs issued, and every session of
 * theirs started, before its time is refused (any issuer).
 */
export function revokedUserKey(name: string): Deno.KvKey {
  return ["revoked_users", name];
}

/** Every user revocation. */
export function revokedUsersPrefix(): Deno.KvKey {
  return ["revoked_users"];
}

/** A user, by name. */
export function userKey(name: string): Deno.KvKey {
  return ["users", name];
}

/** Every user. */
export function usersPrefix(): Deno.KvKey {
  return ["users"];
}

/** A login session, by its public id (a hash of the cookie's secret). */
export function sessionKey(id: string): Deno.KvKey {
  return ["sessions", id];
}

/** Failed logins of one account, for the lockout. */
export function loginFailuresKey(name: string): Deno.KvKey {
  return ["login_failures", name];
}

/**
 * One event of the feed every instance tails (a revocation, and later other
 * kinds), by a ULID of the writer's clock, so a range lists them in order.
 */
export function feedEventKey(id: string): Deno.KvKey {
  return ["feed_events", id];
}

/** Every feed event. */
export function feedEventsPrefix(): Deno.KvKey {
  return ["feed_events"];
}

/** Bumped (KvU64 sum) by every commit that appends to the feed; instances watch and poll it. */
export function feedVersionKey(): Deno.KvKey {
  return ["feed_version"];
}

/** Open connections (deployment-wide) sampled in one minute, for the chart. */
export function connectionSampleKey(minute: number): Deno.KvKey {
  return ["connection_samples", minute];
}

/** The minute of a connection sample, read back from its key. */
export function decodeConnectionSampleKey(key: Deno.KvKey): number {
  return Number(key[1]);
}

/** Every connection sample, by minute. */
export function connectionSamplesPrefix(): Deno.KvKey {
  return ["connection_samples"];
}

/** An API key's record, by id (it holds the key's hash, never the key). */
export function apiKeyKey(id: string): Deno.KvKey {
  return ["api_keys", id];
}

/** Every API key record. */
export function apiKeysPrefix(): Deno.KvKey {
  return ["api_keys"];
}

/** The index from a key's SHA-256 (hex) to its id. */
export function apiKeyByHashKey(hash: string): Deno.KvKey {
  return ["api_keys_by_hash", hash];
}

/** When a key was last used (written at most once a minute per instance). */
export function apiKeyLastUsedKey(id: string): Deno.KvKey {
  return ["api_key_last_used", id];
}

/** A metric series' record (name, type, labels, firstAt), by series id. */
export function metricSeriesKey(id: string): Deno.KvKey {
  return ["metric_series", id];
}

/** Every metric series record. */
export function metricSeriesPrefix(): Deno.KvKey {
  return ["metric_series"];
}

/** The index from a metric name to its series ids. */
export function metricSeriesByNameKey(name: string, id: string): Deno.KvKey {
  return ["metric_series_by_name", name, id];
}

/** The prefix of one name in the series index. */
export function metricSeriesByNamePrefix(name: string): Deno.KvKey {
  return ["metric_series_by_name", name];
}

/** A metric name's type, fixed by its first point. */
export function metricNameKey(name: string): Deno.KvKey {
  return ["metric_names", name];
}

/** How many series the deployment holds (a KvU64, written only under a check). */
export function metricSeriesCountKey(): Deno.KvKey {
  return ["metric_series_count"];
}

/**
 * One field of a series' running totals: `total`, `count` (KvU64 sums),
 * `last_at` (KvU64 max), `last` (a checked record).
 */
export function metricTotalKey(id: string, field: string): Deno.KvKey {
  return ["metric_totals", id, field];
}

/** Every series' running totals, grouped by series id. */
export function metricTotalsPrefix(): Deno.KvKey {
  return ["metric_totals"];
}

/**
 * One field of a rollup bucket: `sum`, `count`, `min`, `max`, `last`, or a
 * histogram bin (`h`, its signed log index).
 */
export function metricBucketKey(
  step: string,
  id: string,
  t: number,
  ...field: (string | number)[]
): Deno.KvKey {
  return [`metric_buckets_${step}`, id, t, ...field];
}

/** The buckets of one series at one step, for range listing by start time. */
export function metricBucketsPrefix(step: string, id: string): Deno.KvKey {
  return [`metric_buckets_${step}`, id];
}

/**
 * One authenticated socket of the deployment, by its connection id; the
 * value names the instance that holds it (CONTRACT 8.1).
 */
export function connectionKey(id: string): Deno.KvKey {
  return ["connections", id];
}

/** Every connection record. */
export function connectionsPrefix(): Deno.KvKey {
  return ["connections"];
}
