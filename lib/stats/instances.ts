import type { PresenceEntry, Stats } from "../../shared/protocol.ts";
import {
  attemptBucketPrefix,
  attemptCountsPrefix,
  decodeAttemptBucketKey,
  decodeAttemptCountKey,
  instanceKey,
  instancesPrefix,
  statsVersionKey,
} from "../store/keys.ts";

/** What one instance publishes about itself. */
export interface InstanceEntry {
  id: string;
  heartbeatAt: number;
  open: number;
  authenticated: number;
  pending: number;
  presence: PresenceEntry[];
}

/**
 * An instance whose heartbeat is older than this is left out of the totals
 * (the one notion of "an instance is gone": nothing else tracks peers).
 */
export const INSTANCE_STALE_MS = 15_000;
/** KV also drops an entry this long after its last write, as a backstop. */
const INSTANCE_EXPIRE_MS = 60_000;

/** Users an instance entry lists, and how much of each name: a KV value holds 64 KiB. */
const MAX_PRESENCE = 200;
const MAX_NAME_CHARS = 64;

/**
 * Publishes this instance's counts and presence, stamped with the time;
 * resolves with the commit's versionstamp. With `announce` (the default) it also bumps the stats version, which wakes
 * the other instances' `kv.watch`; a heartbeat that changed nothing but the
 * time need not wake anyone.
 */
export async function writeInstance(
  kv: Deno.Kv,
  full: InstanceEntry,
  options: { announce?: boolean } = {},
): Promise<string> {
  // The most connected users first; names cut. The instance's own sockets
  // still see all of its presence (readStats uses its entry from memory).
  const presence = full.presence.length <= MAX_PRESENCE &&
      full.presence.every((p) => p.name.length <= MAX_NAME_CHARS)
    ? full.presence
    : [...full.presence].sort((a, b) => b.connections - a.connections).slice(0, MAX_PRESENCE)
      .map((p) => ({ ...p, name: p.name.slice(0, MAX_NAME_CHARS) }));
  const entry = { ...full, presence };
  const op = kv.atomic().set(instanceKey(entry.id), entry, { expireIn: INSTANCE_EXPIRE_MS });
  if (options.announce ?? true) op.sum(statsVersionKey(), 1n);
  const result = await op.commit();
  if (!result.ok) throw new Error("Cannot write the instance entry: the commit failed");
  return result.versionstamp;
}

/** Removes this instance's entry (on shutdown). */
export async function removeInstance(kv: Deno.Kv, id: string): Promise<void> {
  await kv.delete(instanceKey(id));
}

/**
 * Reads the deployment-wide statistics: attempt counters and recent buckets,
 * and the sum of every live instance's connections and presence. `self` is
 * this instance's own entry, used as it is in memory rather than as last
 * written, so its own counts are never behind.
 */
export async function readStats(
  kv: Deno.Kv,
  options: { self: InstanceEntry; startedAt: number; now?: number },
): Promise<Stats> {
  const now = options.now ?? Date.now();
  const [counts, buckets, instances] = await Promise.all([
    collect<Deno.KvU64>(kv.list({ prefix: attemptCountsPrefix() })),
    collect<Deno.KvU64>(kv.list({
      start: [...attemptBucketPrefix("10s"), now - 60_000 - (now % 10_000)],
      end: [...attemptBucketPrefix("10s"), Number.MAX_SAFE_INTEGER],
    })),
    collect<InstanceEntry>(kv.list({ prefix: instancesPrefix() })),
  ]);

  const attempts = {
    total: 0,
    success: 0,
    failure: 0,
    byReason: {} as Record<string, number>,
    lastMinute: { success: 0, failure: 0 },
  };
  for (const { key, value } of counts) {
    const n = Number(value.value);
    const counted = decodeAttemptCountKey(key);
    if (counted === null) continue;
    if ("total" in counted) attempts.total = n;
    else if ("reason" in counted) attempts.byReason[counted.reason] = n;
    else if (counted.outcome === "success") attempts.success = n;
    else if (counted.outcome === "failure") attempts.failure = n;
  }
  for (const { key, value } of buckets) {
    // The oldest bucket is partly outside the minute; it is counted whole.
    const { outcome } = decodeAttemptBucketKey(key);
    if (outcome === "success" || outcome === "failure") {
      attempts.lastMinute[outcome] += Number(value.value);
    }
  }

  const connections = { open: 0, authenticated: 0, pending: 0 };
  const online = new Map<string, PresenceEntry>();
  const live = instances.map((e) => e.value)
    .filter((e) => e.id !== options.self.id && now - e.heartbeatAt < INSTANCE_STALE_MS);
  for (const entry of [options.self, ...live]) {
    connections.open += entry.open;
    connections.authenticated += entry.authenticated;
    connections.pending += entry.pending;
    for (const p of entry.presence) {
      const seen = online.get(p.name);
      if (seen) seen.connections += p.connections;
      else online.set(p.name, { ...p });
    }
  }
  const presence = [...online.values()].sort((a, b) => a.name.localeCompare(b.name));

  return {
    at: now,
    instance: options.self.id,
    uptimeS: Math.floor((now - options.startedAt) / 1000),
    connections,
    attempts,
    presence,
  };
}

/**
 * Deletes what KV cannot expire by itself: time buckets (sums take no
 * `expireIn`) past their use, and instance entries long stale.
 */
export async function pruneStats(
  kv: Deno.Kv,
  options: { retentionMs: number; now?: number },
): Promise<void> {
  const now = options.now ?? Date.now();
  const old = [
    ...await collect(kv.list({
      start: attemptBucketPrefix("10s"),
      end: [...attemptBucketPrefix("10s"), now - 5 * 60_000],
    })),
    ...await collect(kv.list({
      start: attemptBucketPrefix("1m"),
      end: [...attemptBucketPrefix("1m"), now - options.retentionMs],
    })),
  ];
  for (let i = 0; i < old.length; i += 500) {
    const op = kv.atomic();
    for (const entry of old.slice(i, i + 500)) op.delete(entry.key);
    await op.commit();
  }
}

async function collect<T>(iter: Deno.KvListIterator<T>): Promise<Deno.KvEntry<T>[]> {
  const out: Deno.KvEntry<T>[] = [];
  for await (const entry of iter) out.push(entry);
  return out;
}

/**
 * `stats` as it would read with `now` in place of `before` for this
 * instance: its connection counts and presence swapped in memory, so a
 * socket asking right after a change sees itself without a KV round trip.
 */
export function withSelf(stats: Stats, before: InstanceEntry, now: InstanceEntry): Stats {
  const online = new Map(stats.presence.map((p) => [p.name, { ...p }]));
  for (const p of before.presence) {
    const entry = online.get(p.name);
    if (entry) entry.connections -= p.connections;
  }
  for (const p of now.presence) {
    const entry = online.get(p.name);
    if (entry) entry.connections += p.connections;
    else online.set(p.name, { ...p });
  }
  return {
    ...stats,
    at: Date.now(),
    connections: {
      open: stats.connections.open - before.open + now.open,
      authenticated: stats.connections.authenticated - before.authenticated + now.authenticated,
      pending: stats.connections.pending - before.pending + now.pending,
    },
    presence: [...online.values()].filter((p) => p.connections > 0)
      .sort((a, b) => a.name.localeCompare(b.name)),
  };
}
