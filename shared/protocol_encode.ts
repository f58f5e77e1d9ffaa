/**
 * Every server-to-client message of `/admin/ws` is serialized here, typed by
 * the zod schemas of protocol.ts beside it, so a message that does not
 * match the protocol fails `deno check` instead of reaching a client.
 * Pushes are encoded once and the same string is sent to every subscriber.
 */
import type { Attempt, MetricBucket, PresenceEntry, ServerMessage, Stats } from "./protocol.ts";

/** The text of one server message. */
export function encode(message: ServerMessage): string {
  return JSON.stringify(message);
}

/** A `stats_update` message. */
export function statsUpdate(stats: Stats): string {
  return encode({ type: "stats_update", data: stats });
}

/** A `presence` message. */
export function presenceUpdate(online: PresenceEntry[]): string {
  return encode({ type: "presence", data: { online } });
}

/** An `attempt` event. */
export function attemptEvent(attempt: Attempt): string {
  return encode({ type: "attempt", data: attempt });
}

/** A `metrics_update` message. */
export function metricsUpdate(at: number, points: MetricBucket[]): string {
  return encode({ type: "metrics_update", data: { at, points } });
}
