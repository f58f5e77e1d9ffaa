/**
 * Reading metrics back (CONTRACT 7.3): the series list with each series'
 * latest value, and one name's buckets at a step over a time range.
 */
import {
  metricBucketsPrefix,
  metricNameKey,
  metricSeriesByNamePrefix,
  metricSeriesKey,
  metricSeriesPrefix,
  metricTotalsPrefix,
} from "../store/keys.ts";
import { type Bin, decodeFixed, decodeOrdered, quantileFromBins } from "./encoding.ts";
import type { MetricType } from "./points.ts";
import { type LastValue, retentionMs, type Step, STEPS } from "./rollup.ts";
import { getAll, type SeriesRecord } from "./series.ts";

/** Most buckets one series may span in a query. */
export const MAX_BUCKETS = 2000;

/** A series in the list. */
export interface SeriesSummary {
  name: string;
  type: MetricType;
  labels: Record<string, string>;
  firstAt: number | null;
  lastAt: number | null;
  last: number | null;
}

function u64(value: unknown): bigint | null {
  return value instanceof Deno.KvU64 ? value.value : null;
}

/** Every series with its first and last time and its latest value. */
export async function listSeries(kv: Deno.Kv): Promise<(SeriesSummary & { id: string })[]> {
  const totals = new Map<string, Map<string, unknown>>();
  for await (const entry of kv.list({ prefix: metricTotalsPrefix() })) {
    const [, id, field] = entry.key as [string, string, string];
    let fields = totals.get(id);
    if (!fields) totals.set(id, fields = new Map());
    fields.set(field, entry.value);
  }
  const out: (SeriesSummary & { id: string })[] = [];
  for await (const entry of kv.list<SeriesRecord>({ prefix: metricSeriesPrefix() })) {
    const s = entry.value;
    const fields = totals.get(s.id) ?? new Map();
    const firstAt = u64(fields.get("first_at"));
    const lastAt = u64(fields.get("last_at"));
    let last: number | null = null;
    if (s.type === "counter") last = decodeFixed(u64(fields.get("total")) ?? 0n);
    else if (s.type === "histogram") last = Number(u64(fields.get("count")) ?? 0n);
    else last = (fields.get("last") as LastValue | undefined)?.value ?? null;
    out.push({
      id: s.id,
      name: s.name,
      type: s.type,
      labels: s.labels,
      firstAt: firstAt === null ? null : Number(firstAt),
      lastAt: lastAt === null ? null : Number(lastAt),
      last,
    });
  }
  return out;
}

/** A query of one name. */
export interface MetricQuery {
  name: string;
  labels: Record<string, string>;
  from: number;
  to: number;
  step: Step;
}

/** The first bucket start at or after `from`, and how many buckets lie in `[from, to]`. */
export function bucketSpan(from: number, to: number, step: Step): { first: number; count: number } {
  const size = STEPS[step];
  const first = Math.ceil(from / size) * size;
  return { first, count: to < first ? 0 : Math.floor((to - first) / size) + 1 };
}

/** One bucket's point, by type (CONTRACT 7.3). */
export type QueryPoint = Record<string, number | null>;

/** The matching series of `q.name`, with their points; null for an unknown name. */
export async function queryMetric(
  kv: Deno.Kv,
  q: MetricQuery,
  options: { retentionDays: number; now?: number },
): Promise<
  {
    name: string;
    type: MetricType;
    step: Step;
    series: { labels: Record<string, string>; points: QueryPoint[] }[];
  } | null
> {
  const type = (await kv.get<MetricType>(metricNameKey(q.name))).value;
  if (type === null) return null;
  const ids: string[] = [];
  for await (const e of kv.list<string>({ prefix: metricSeriesByNamePrefix(q.name) })) {
    ids.push(e.value);
  }
  const records = (await getAll<SeriesRecord>(kv, ids.map(metricSeriesKey)))
    .map((e) => e.value)
    .filter((r): r is SeriesRecord => r !== null)
    .filter((r) => Object.entries(q.labels).every(([k, v]) => r.labels[k] === v));
  const series = [];
  for (const record of records) {
    series.push({
      labels: record.labels,
      points: await seriesPoints(kv, record, q, options.retentionDays, options.now ?? Date.now()),
    });
  }
  return { name: q.name, type, step: q.step, series };
}

/** The points of one series over `[q.from, q.to]`, oldest first; expired buckets are left out. */
export async function seriesPoints(
  kv: Deno.Kv,
  record: { id: string; type: MetricType },
  q: { from: number; to: number; step: Step },
  retentionDays: number,
  now: number,
): Promise<QueryPoint[]> {
  const size = STEPS[q.step];
  // `expireIn` is not prompt and sums carry none: a bucket past its
  // retention (from its own start) is dropped here, whatever KV still holds.
  const oldest = now - retentionMs(q.step, retentionDays) - size;
  const { first } = bucketSpan(Math.max(q.from, oldest + 1), q.to, q.step);
  if (first > q.to) return [];
  const prefix = metricBucketsPrefix(q.step, record.id);
  const buckets = new Map<number, Map<string, unknown>>();
  for await (const e of kv.list({ start: [...prefix, first], end: [...prefix, q.to + 1] })) {
    const t = e.key[prefix.length] as number;
    const field = e.key.slice(prefix.length + 1).join(":");
    let fields = buckets.get(t);
    if (!fields) buckets.set(t, fields = new Map());
    fields.set(field, e.value);
  }
  const points: QueryPoint[] = [];
  for (const [t, f] of [...buckets].sort(([a], [b]) => a - b)) {
    const count = Number(u64(f.get("count")) ?? 0n);
    if (count === 0) continue;
    const sum = decodeFixed(u64(f.get("sum")) ?? 0n);
    if (record.type === "counter") {
      points.push({ t, sum, count });
      continue;
    }
    const min = decodeOrdered(u64(f.get("min")) ?? 0n);
    const max = decodeOrdered(u64(f.get("max")) ?? 0n);
    if (record.type === "gauge") {
      const last = (f.get("last") as LastValue | undefined)?.value ?? null;
      points.push({ t, last, min, max, avg: sum / count, count });
      continue;
    }
    const bins = binsOf(f);
    points.push({
      t,
      count,
      sum,
      min,
      max,
      p50: quantileFromBins(bins, 0.5, { min, max }),
      p90: quantileFromBins(bins, 0.9, { min, max }),
      p99: quantileFromBins(bins, 0.99, { min, max }),
    });
  }
  return points;
}

/** The histogram bins among a bucket's fields (`h:<sign>:<index>`). */
export function binsOf(fields: Map<string, unknown>): { bin: Bin; count: number }[] {
  const bins: { bin: Bin; count: number }[] = [];
  for (const [field, value] of fields) {
    const m = /^h:([nzp]):(-?\d+)$/.exec(field);
    if (m) {
      bins.push({
        bin: { sign: m[1] as Bin["sign"], index: Number(m[2]) },
        count: Number(u64(value) ?? 0n),
      });
    }
  }
  return bins;
}
