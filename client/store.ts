/// <reference lib="dom" />
/**
 * The live state every island of a page shares: one socket, its state, and
 * what it brings. Only the browser writes these signals; on the server they
 * stay empty, so islands render from their props there.
 */
import { signal } from "@preact/signals";
import type { Attempt, PresenceEntry, Stats } from "../lib/protocol.ts";
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

let client: LookoutClient | null = null;

/** Starts the page's one live connection (once), feeding the signals above. */
export function startLive(): LookoutClient {
  client ??= new LookoutClient({
    events: ["stats", "attempts", "presence"],
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
          feed.value = [message.data, ...(feed.value ?? [])].slice(0, FEED_SIZE);
          break;
      }
    },
  });
  client.start();
  return client;
}
