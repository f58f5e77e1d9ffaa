import {
  attemptBucketPrefix,
  connectionSampleKey,
  connectionSamplesPrefix,
  decodeAttemptBucketKey,
  decodeConnectionSampleKey,
} from "../store/keys.ts";

import type { MinutePoint } from "../../shared/history.ts";

export type { MinutePoint };

const MINUTE = 60_000;
/** Connection samples are kept for a day. */
const SAMPLE_TTL_MS = 24 * 60 * MINUTE;

/** The minute an epoch ms falls in. */
export function minuteOf(ms: number): number {
  return ms - (ms % MINUTE);
}

/** Records the deployment's open connections for the current minute. */
export async function sampleConnections(kv: Deno.Kv, at: number, open: number): Promise<void> {
  await kv.set(connectionSampleKey(minuteOf(at)), open, { expireIn: SAMPLE_TTL_MS });
}

/**
 * The last `minutes` minutes, oldest first, one point per minute (zeros for
 * minutes without attempts), from the per-minute buckets and samples in KV.
 */
export async function readHistory(
  kv: Deno.Kv,
  options: { minutes?: number; now?: number } = {},
): Promise<MinutePoint[]> {
  const minutes = options.minutes ?? 60;
  const last = minuteOf(options.now ?? Date.now());
  const first = last - (minutes - 1) * MINUTE;
  const points = new Map<number, MinutePoint>();
  for (let t = first; t <= last; t += MINUTE) {
    points.set(t, { t, success: 0, failure: 0, open: null });
  }
  const buckets = kv.list<Deno.KvU64>({
    start: [...attemptBucketPrefix("1m"), first],
    end: [...attemptBucketPrefix("1m"), last + 1],
  });
  for await (const { key, value } of buckets) {
    const { start, outcome } = decodeAttemptBucketKey(key);
    const point = points.get(start);
    if (point && (outcome === "success" || outcome === "failure")) {
      point[outcome] = Number(value.value);
    }
  }
  const samples = kv.list<number>({
    start: [...connectionSamplesPrefix(), first],
    end: [...connectionSamplesPrefix(), last + 1],
  });
  for await (const { key, value } of samples) {
    const point = points.get(decodeConnectionSampleKey(key));
    if (point) point.open = value;
  }
  return [...points.values()];
}

/**
 * The history from its first minute with data: an hour of KV is read, but a
 * fresh deployment has a few minutes of it, and fifty empty minutes before
 * them would squash what is there against the right edge. With no data at
 * all, the last two minutes give the axis a span.
 */
export function fromFirstData(points: MinutePoint[]): MinutePoint[] {
  const first = points.findIndex((p) => p.success > 0 || p.failure > 0 || p.open !== null);
  return first === -1 ? points.slice(-2) : points.slice(first);
}
