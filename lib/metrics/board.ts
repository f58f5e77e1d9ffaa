/**
 * The `/admin/metrics` page's first state, read from KV: every series that
 * passes the filters, grouped by name, with its current value and its
 * buckets over the chosen range.
 */
import {
  type BoardFilters,
  type BoardPanel,
  chartValue,
  matches,
  RANGES,
} from "../../shared/metrics_board.ts";
import { listSeries, seriesPoints } from "./query.ts";

/** The panels of the page, names in order; `total` counts every series, filtered or not. */
export async function readBoard(
  kv: Deno.Kv,
  filters: BoardFilters,
  options: { retentionDays: number; now?: number },
): Promise<{ panels: BoardPanel[]; total: number }> {
  const now = options.now ?? Date.now();
  const range = RANGES[filters.range];
  const all = await listSeries(kv);
  const panels = new Map<string, BoardPanel>();
  for (const s of all.filter((s) => matches(s, filters))) {
    const points = await seriesPoints(
      kv,
      s,
      { from: now - range.ms, to: now, step: range.step },
      options.retentionDays,
      now,
    );
    let panel = panels.get(s.name);
    if (!panel) panels.set(s.name, panel = { name: s.name, type: s.type, series: [] });
    panel.series.push({
      labels: s.labels,
      last: s.last,
      points: points.map((p) => [p.t as number, chartValue(s.type, p)]),
    });
  }
  const sorted = [...panels.values()].sort((a, b) => a.name < b.name ? -1 : 1);
  for (const p of sorted) {
    p.series.sort((a, b) => JSON.stringify(a.labels) < JSON.stringify(b.labels) ? -1 : 1);
  }
  return { panels: sorted, total: all.length };
}
