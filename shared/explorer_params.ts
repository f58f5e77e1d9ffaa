/**
 * The attempt explorer's filters and how they map to URLs. Free of zod so
 * the browser bundle stays small; the server validates them in the route.
 */
import type { ExportFormat, Transport } from "./attempt_filters.ts";

/** Time windows the explorer offers, in ms (`all` is no bound). */
export const WINDOWS = {
  "15m": 15 * 60_000,
  "1h": 3_600_000,
  "24h": 86_400_000,
  "7d": 604_800_000,
  all: 0,
} as const;
export type WindowName = keyof typeof WINDOWS;

/** The explorer's filters, as they appear in `/admin/attempts?...`. */
export interface ExplorerFilters {
  outcome?: "success" | "failure";
  reason?: string;
  ip?: string;
  user?: string;
  origin?: string;
  transport?: Transport;
  window: WindowName;
  cursor?: string;
}

/** The `/api/v1/attempts` query for the explorer's filters. */
export function apiQuery(filters: ExplorerFilters, now = Date.now()): URLSearchParams {
  const q = new URLSearchParams({ limit: "50" });
  if (filters.outcome) q.set("outcome", filters.outcome);
  if (filters.reason) q.set("reason", filters.reason);
  if (filters.ip) q.set("ip", filters.ip);
  if (filters.user) q.set("user", filters.user);
  if (filters.origin) q.set("origin", filters.origin);
  if (filters.transport) q.set("transport", filters.transport);
  if (WINDOWS[filters.window]) q.set("since", String(now - WINDOWS[filters.window]));
  if (filters.cursor) q.set("cursor", filters.cursor);
  return q;
}

/** The explorer page URL for some filters (empty ones left out). */
export function explorerHref(filters: Partial<ExplorerFilters>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `/admin/attempts?${qs}` : "/admin/attempts";
}

/**
 * The download of everything the explorer's filters match (not just the page
 * shown): `/api/v1/attempts/export` with the same filters, no limit or cursor.
 */
export function exportHref(
  filters: ExplorerFilters,
  format: ExportFormat,
  now = Date.now(),
): string {
  const q = apiQuery({ ...filters, cursor: undefined }, now);
  q.delete("limit");
  q.set("format", format);
  return `/api/v1/attempts/export?${q}`;
}
