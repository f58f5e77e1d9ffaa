/// <reference lib="dom" />
/**
 * The live state every island of a page shares: one socket, its state, and
 * what it brings. Only the browser writes these signals; on the server they
 * stay empty, so islands render from their props there.
 */
import { signal } from "@preact/signals";
import * as z from "zod/mini";
import {
  Attempt,
  type EventName,
  type MetricBucket,
  type PresenceEntry,
  type Stats,
} from "../shared/protocol.ts";
import { LookoutClient, type StateDetail } from "./lookout_client.ts";

/** Rows kept in the live attempt feed. */
export const FEED_SIZE = 50;

/** Past closes the connection badge lists, newest first. */
export const DISCONNECTS_KEPT = 5;

export const connection = signal<StateDetail>({ state: "connecting" });
/**
 * The last few closes of this page's socket, newest first. Kept apart from
 * `connection`, which holds only the latest, so they stay visible after a
 * reconnect.
 */
export const disconnects = signal<NonNullable<StateDetail["close"]>[]>([]);
export const stats = signal<Stats | null>(null);
export const feed = signal<Attempt[] | null>(null);
export const presence = signal<PresenceEntry[] | null>(null);
/** The latest `metrics_update` (pages that ask for `metrics` only). */
export const metricsUpdate = signal<{ at: number; points: MetricBucket[] } | null>(null);
/**
 * Counts the subscriptions that include `metrics` (one per connect): what
 * was pushed before one, no `metrics_update` brings, so the page reads it.
 */
export const metricsSubscribed = signal(0);

let client: LookoutClient | null = null;

/** `a` and `b` together, newest first (ULIDs sort by time), each id once, at most `FEED_SIZE`. */
export function mergeAttempts(a: readonly Attempt[], b: readonly Attempt[]): Attempt[] {
  const byId = new Map<string, Attempt>();
  for (const attempt of [...a, ...b]) if (!byId.has(attempt.id)) byId.set(attempt.id, attempt);
  return [...byId.values()].sort((x, y) => x.id < y.id ? 1 : x.id > y.id ? -1 : 0)
    .slice(0, FEED_SIZE);
}

/**
 * Reads the log once `attempts` events flow. The socket's own sign-in (and
 * whatever else was recorded after the page was rendered) is committed
 * before `authenticated`, so before the subscription: no event brings it,
 * while the counters already count it. Everything committed before the
 * subscription is in the log by now; everything after comes as an event.
 */
async function catchUp(): Promise<void> {
  try {
    const res = await fetch(`/api/v1/attempts?limit=${FEED_SIZE}`, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (!res.ok) return;
    const items = z.array(Attempt).safeParse((await res.json()).items);
    if (items.success) feed.value = mergeAttempts(feed.value ?? [], items.data);
  } catch {
    // Unreachable: the rendered rows and the live events still show; the next
    // reconnect catches up again.
  }
}

/**
 * Starts the page's one live connection (once), feeding the signals above;
 * `extra` events beside the ones every page shows (`metrics` on the metrics page).
 */
export function startLive(extra: EventName[] = []): LookoutClient {
  client ??= new LookoutClient({
    events: ["stats", "attempts", "presence", ...extra],
    onState: (detail) => {
      connection.value = detail;
      // Each close is reported with every state change after it: keep it once.
      const close = detail.close;
      if (close && disconnects.value[0] !== close) {
        disconnects.value = [close, ...disconnects.value].slice(0, DISCONNECTS_KEPT);
      }
    },
    onMessage: (message) => {
      switch (message.type) {
        case "stats_update":
          stats.value = message.data;
          break;
        case "presence":
          presence.value = message.data.online;
          break;
        case "attempt":
          feed.value = mergeAttempts([message.data], feed.value ?? []);
          break;
        case "metrics_update":
          metricsUpdate.value = message.data;
          break;
        case "subscribed":
          if (message.events.includes("attempts")) catchUp();
          if (message.events.includes("metrics")) metricsSubscribed.value++;
          break;
      }
    },
  });
  client.start();
  return client;
}
