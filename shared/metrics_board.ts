/**
 * What the `/admin/metrics` page and its island agree on: the ranges, the
 * step each is read at, which number of a bucket is charted, and the
 * filters. Imports nothing, so the browser bundle carries only this.
 */

/** The ranges the page offers, each with its length and rollup step (at most 1,440 buckets). */
export const RANGES = {
  "15m": { ms: 15 * 60_000, step: "10s", stepMs: 10_000, label: "15 min" },
  "1h": { ms: 3_600_000, step: "10s", stepMs: 10_000, label: "1 hour" },
  "6h": { ms: 6 * 3_600_000, step: "1m", stepMs: 60_000, label: "6 hours" },
  "24h": { ms: 86_400_000, step: "1m", stepMs: 60_000, label: "24 hours" },
  "7d": { ms: 7 * 86_400_000, step: "1h", stepMs: 3_600_000, label: "7 days" },
  "30d": { ms: 30 * 86_400_000, step: "1h", stepMs: 3_600_000, label: "30 days" },
} as const;
export type RangeName = keyof typeof RANGES;
export const RANGE_NAMES = Object.keys(RANGES) as RangeName[];

export type MetricKind = "counter" | "gauge" | "histogram";

/** A chart point: bucket start (epoch ms) and the charted number. */
export type ChartPoint = [t: number, value: number | null];

/** One label set of a name: its current value and chart points, oldest first. */
export interface BoardSeries {
  labels: Record<string, string>;
  /** The counter's total, the gauge's latest value, the histogram's count. */
  last: number | null;
  points: ChartPoint[];
}

/** One panel: a name, a line per label set. */
export interface BoardPanel {
  name: string;
  type: MetricKind;
  series: BoardSeries[];
}

/** The page's filters: a part of the name, and `key=value` labels, all of which must match. */
export interface BoardFilters {
  range: RangeName;
  name: string;
  labels: Record<string, string>;
}

/** What a bucket's chart shows, by type: a counter's sum, a gauge's last value, a histogram's p90. */
export const CHARTED = { counter: "sum", gauge: "last", histogram: "p90" } as const;

/** The charted number of a bucket (a 7.3 point or a 7.4 update). */
export function chartValue(type: MetricKind, bucket: Record<string, unknown>): number | null {
  const v = bucket[CHARTED[type]];
  return typeof v === "number" ? v : null;
}

/** `a=b, c=d` into labels; pairs without `=` or with an empty side are left out. */
export function parseLabelFilter(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const part of text.split(",")) {
    const i = part.indexOf("=");
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (i > 0 && k && v) labels[k] = v;
  }
  return labels;
}

/** Labels back into the filter's text. */
export function labelFilterText(labels: Record<string, string>): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(", ");
}

/** Whether a series passes the filters. */
export function matches(
  s: { name: string; labels: Record<string, string> },
  f: Pick<BoardFilters, "name" | "labels">,
): boolean {
  if (f.name && !s.name.toLowerCase().includes(f.name.toLowerCase())) return false;
  return Object.entries(f.labels).every(([k, v]) => s.labels[k] === v);
}

/** The page URL of `f`. */
export function boardHref(f: BoardFilters): string {
  const q = new URLSearchParams({ range: f.range });
  if (f.name) q.set("name", f.name);
  const labels = labelFilterText(f.labels);
  if (labels) q.set("labels", labels);
  return `/admin/metrics?${q}`;
}

/** `{a="b"}` for a label set, `(no labels)` for none. */
export function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  return parts.length ? `{${parts.join(", ")}}` : "(no labels)";
}

/** Same label set (order aside). */
export function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
