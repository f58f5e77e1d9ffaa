/**
 * `GET /metrics`: every series' latest value in the Prometheus text
 * exposition format (version 0.0.4), so Prometheus can scrape Lookout.
 */
import { metricBucketsPrefix } from "../store/keys.ts";
import { decodeFixed, decodeOrdered, quantileFromBins } from "./encoding.ts";
import { binsOf, listSeries } from "./query.ts";

/** The content type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A series name as a Prometheus metric name: anything outside `A-Za-z0-9_:` becomes `_`. */
export function promName(name: string): string {
  return name.replace(/[^A-Za-z0-9_:]/g, "_");
}

function escapeValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labelText(labels: Record<string, string>, extra: [string, string][] = []): string {
  // A series label that the summary also uses (`quantile`) is renamed, as
  // Prometheus does with `exported_`: a duplicate label fails the whole scrape.
  const own = Object.entries(labels).map(([k, v]): [string, string] =>
    extra.some(([e]) => e === k) ? [`exported_${k}`, v] : [k, v]
  );
  const all = [...own.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)), ...extra];
  if (all.length === 0) return "";
  return `{${all.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(",")}}`;
}

function num(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? "+Inf" : value < 0 ? "-Inf" : "NaN";
}

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/**
 * The exposition of every series. A counter is `<name>_total` (its total), a
 * gauge its `last`, a histogram a summary of the last hour (quantiles 0.5,
 * 0.9, 0.99 from the `1m` buckets, `_sum`, `_count`). Two names that become
 * one Prometheus name keep the first one's type; series of another type
 * under it are left out, since Prometheus refuses a family with two types.
 */
export async function exposition(kv: Deno.Kv, now = Date.now()): Promise<string> {
  const families = new Map<string, { type: string; lines: string[] }>();
  const series = (await listSeries(kv)).sort((
    a,
    b,
  ) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const s of series) {
    const base = promName(s.name);
    const family = s.type === "counter" ? `${base}_total` : base;
    const type = s.type === "histogram" ? "summary" : s.type;
    let f = families.get(family);
    if (!f) families.set(family, f = { type, lines: [] });
    if (f.type !== type) continue;
    if (s.type !== "histogram") {
      if (s.last !== null) f.lines.push(`${family}${labelText(s.labels)} ${num(s.last)}`);
      continue;
    }
    const window = await hourOf(kv, s.id, now);
    for (const q of [0.5, 0.9, 0.99]) {
      const v = window.count > 0 ? quantileFromBins(window.bins, q, window) : null;
      f.lines.push(
        `${family}${labelText(s.labels, [["quantile", String(q)]])} ${v === null ? "NaN" : num(v)}`,
      );
    }
    f.lines.push(`${family}_sum${labelText(s.labels)} ${num(window.sum)}`);
    f.lines.push(`${family}_count${labelText(s.labels)} ${window.count}`);
  }
  let text = "";
  for (const [name, f] of families) {
    if (f.lines.length === 0) continue;
    text += `# TYPE ${name} ${f.type}\n${f.lines.join("\n")}\n`;
  }
  return text;
}

/** A histogram's last hour, merged from its `1m` buckets. */
async function hourOf(kv: Deno.Kv, id: string, now: number) {
  const prefix = metricBucketsPrefix("1m", id);
  const from = now - HOUR_MS - (now % MINUTE_MS) + MINUTE_MS;
  const merged = new Map<string, Deno.KvU64>();
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  for await (
    const e of kv.list<Deno.KvU64>({ start: [...prefix, from], end: [...prefix, now + 1] })
  ) {
    const field = e.key.slice(prefix.length + 1).join(":");
    if (field === "min") min = Math.min(min, decodeOrdered(e.value.value));
    else if (field === "max") max = Math.max(max, decodeOrdered(e.value.value));
    else if (field === "sum") sum += decodeFixed(e.value.value);
    else if (field === "count") count += Number(e.value.value);
    else {
      const prev = merged.get(field)?.value ?? 0n;
      merged.set(field, new Deno.KvU64(prev + e.value.value));
    }
  }
  return { bins: binsOf(merged), min, max, sum, count };
}
