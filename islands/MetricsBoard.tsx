/// <reference lib="dom" />
import { useEffect, useRef } from "preact/hooks";
import { effect, useSignal } from "@preact/signals";
import type uPlot from "uplot";
import { metricsSubscribed, metricsUpdate } from "../client/store.ts";
import { dayTime, hourMinute } from "../client/format.ts";
import {
  type BoardFilters,
  boardHref,
  type BoardPanel,
  type BoardSeries,
  CHARTED,
  chartValue,
  labelFilterText,
  labelText,
  matches,
  RANGE_NAMES,
  RANGES,
  sameLabels,
} from "../shared/metrics_board.ts";

const HEIGHT = 180;
/** Line colours; the swatches beside the values use the same, as classes `.c0`... in app.css (the CSP allows no inline style). */
const COLORS = ["#4a7bd8", "#2e9e5b", "#d64545", "#c98a14", "#8a5cd6", "#1f9aa8", "#d65c9a"];
/** Least time between two reads of what a live push cannot carry (totals, coarse buckets). */
const REFRESH_GAP_MS = 1000;

interface Props {
  filters: BoardFilters;
  panels: BoardPanel[];
  /** Series in the deployment, filtered or not: 0 shows how to send a first point. */
  total: number;
  /** The server's clock at render (epoch ms). */
  now: number;
  /** This page's origin, for the copyable curl line. */
  origin: string;
  admin: boolean;
}

/** A current value as text: integers plainly, others to 4 significant digits. */
function show(v: number | null): string {
  if (v === null) return "–";
  return Number.isInteger(v) ? v.toLocaleString("en") : v.toPrecision(4);
}

/**
 * Every series that passes the filters: a panel per name with a line per
 * label set, its current value, and a chart of the range drawn from KV by
 * the server, then extended by `metrics_update` pushes. Pushes carry `10s`
 * buckets: at that step they are drawn as they come; at coarser steps, and
 * for the totals a bucket cannot give, the changed part is read again from
 * the API, at most once a second.
 */
export default function MetricsBoard(props: Props) {
  const panels = useSignal(props.panels);
  const total = useSignal(props.total);
  const tick = useSignal(0);
  const copied = useSignal(false);
  const uplot = useSignal<typeof uPlot | null>(null);
  const range = RANGES[props.filters.range];

  useEffect(() => {
    let cancelled = false;
    // uPlot is its own lazy chunk, fetched after first paint (see Charts.tsx).
    import("uplot").then(({ default: U }) => {
      if (!cancelled) uplot.value = U;
    });
    /** Names whose buckets from a time on are read again from the API. */
    const queries = new Map<string, number>();
    /** From when series changed unseen (a (re)subscription), or null. */
    let catchUpFrom: number | null = null;
    let due = false;
    let refreshing = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let lastRefresh = 0;

    function addSeries(name: string, type: BoardPanel["type"], labels: Record<string, string>) {
      let panel = panels.peek().find((p) => p.name === name);
      if (!panel) {
        panel = { name, type, series: [] };
        panels.value = [...panels.peek(), panel].sort((x, y) => x.name < y.name ? -1 : 1);
        total.value = Math.max(total.peek(), 1);
      }
      const series: BoardSeries = { labels, last: null, points: [] };
      panel.series = [...panel.series, series];
      panels.value = [...panels.peek()];
      return series;
    }

    async function refresh() {
      timer = undefined;
      refreshing = true;
      due = false;
      lastRefresh = Date.now();
      const since = catchUpFrom;
      catchUpFrom = null;
      try {
        // The totals (a counter's, a histogram's count) that a bucket cannot give.
        const list = await fetch("/api/v1/metrics", { credentials: "same-origin" });
        if (list.ok) {
          for (const s of (await list.json()).series) {
            if (!matches(s, props.filters)) continue;
            const changed = since !== null && (s.lastAt ?? 0) >= since;
            const found = findSeries(panels.peek(), s.name, s.labels) ??
              (changed ? addSeries(s.name, s.type, s.labels) : undefined);
            if (!found) continue;
            found.last = s.last;
            if (changed) {
              const from = since - (since % range.stepMs);
              queries.set(s.name, Math.min(queries.get(s.name) ?? from, from));
            }
          }
        }
        const names = new Map(queries);
        queries.clear();
        for (const [name, from] of names) {
          const q = new URLSearchParams({ name, step: range.step, from: String(from) });
          for (const [k, v] of Object.entries(props.filters.labels)) q.set(`label.${k}`, v);
          const res = await fetch(`/api/v1/metrics/query?${q}`, { credentials: "same-origin" });
          if (!res.ok) continue;
          const body = await res.json();
          for (const s of body.series) {
            const found = findSeries(panels.peek(), name, s.labels);
            if (!found) continue;
            for (const p of s.points) put(found, [p.t, chartValue(body.type, p)]);
          }
        }
        tick.value = tick.peek() + 1;
      } catch {
        // Unreachable now: the next push asks again.
      } finally {
        refreshing = false;
        if (due || queries.size > 0 || catchUpFrom !== null) schedule();
      }
    }

    function schedule() {
      due = true;
      if (timer !== undefined || refreshing) return;
      timer = setTimeout(refresh, Math.max(0, lastRefresh + REFRESH_GAP_MS - Date.now()));
    }

    let subscriptions = metricsSubscribed.peek();
    const stopCatchUp = effect(() => {
      if (metricsSubscribed.value === subscriptions) return;
      subscriptions = metricsSubscribed.value;
      // Whatever landed between the render (or the last socket) and now.
      catchUpFrom = Math.min(catchUpFrom ?? Infinity, props.now, Date.now() - 60_000);
      schedule();
    });

    const stop = effect(() => {
      const update = metricsUpdate.value;
      if (!update) return;
      for (const b of update.points) {
        if (!matches(b, props.filters)) continue;
        const series = findSeries(panels.peek(), b.name, b.labels) ??
          addSeries(b.name, b.type, b.labels);
        if (range.step === "10s") put(series, [b.t, chartValue(b.type, b)]);
        else {
          const from = b.t - (b.t % range.stepMs);
          queries.set(b.name, Math.min(queries.get(b.name) ?? from, from));
        }
      }
      tick.value = tick.peek() + 1;
      schedule();
    });
    return () => {
      cancelled = true;
      clearTimeout(timer);
      stop();
      stopCatchUp();
    };
  }, []);

  const f = props.filters;
  const curl = `curl -X POST ${props.origin}/api/v1/metrics \\
  -H "Authorization: Bearer $LOOKOUT_KEY" -H "Content-Type: application/json" \\
  -d '{"points":[{"name":"orders.placed","type":"counter","value":1,"labels":{"shop":"eu"}}]}'`;

  return (
    <section class="metrics" aria-label="Metrics">
      <form class="card filters" method="get" action="/admin/metrics">
        <label>
          Range{" "}
          <select
            name="range"
            onChange={(e) => e.currentTarget.form?.requestSubmit()}
          >
            {RANGE_NAMES.map((r) => (
              <option key={r} value={r} selected={r === f.range}>{RANGES[r].label}</option>
            ))}
          </select>
        </label>
        <label>
          Name <input name="name" value={f.name} placeholder="orders" />
        </label>
        <label>
          Labels <input name="labels" value={labelFilterText(f.labels)} placeholder="shop=eu" />
        </label>
        <button type="submit">Filter</button>
        {(f.name || Object.keys(f.labels).length > 0) && (
          <a href={boardHref({ range: f.range, name: "", labels: {} })}>Clear</a>
        )}
      </form>
      {total.value === 0 && (
        <div class="card empty" data-empty>
          <h2>No metrics yet</h2>
          <p>
            Push a first point with an <code>ingest</code> API key {props.admin
              ? (
                <>
                  (create one on <a href="/admin/keys">API keys</a>)
                </>
              )
              : " (an admin creates one on the API keys page)"}, and it appears here live:
          </p>
          <div class="copy-line">
            <pre data-curl>{curl}</pre>
            <button
              type="button"
              onClick={() =>
                navigator.clipboard.writeText(curl).then(() => copied.value = true, () => {})}
            >
              {copied.value ? "Copied" : "Copy"}
            </button>
          </div>
          <p class="muted">
            Also accepted: InfluxDB line protocol at <code>/api/v2/write</code>. Types are{" "}
            <code>counter</code> (an increment), <code>gauge</code> (a value) and{" "}
            <code>histogram</code> (an observation).
          </p>
        </div>
      )}
      {total.value > 0 && panels.value.length === 0 && (
        <p class="muted">No series matches these filters.</p>
      )}
      <div class="panels">
        {panels.value.map((p) => (
          <Panel
            key={p.name}
            panel={p}
            tick={tick.value}
            uplot={uplot.value}
            rangeMs={range.ms}
            stepMs={range.stepMs}
            now={props.now}
          />
        ))}
      </div>
    </section>
  );
}

function findSeries(
  panels: BoardPanel[],
  name: string,
  labels: Record<string, string>,
): BoardSeries | undefined {
  return panels.find((p) => p.name === name)?.series.find((s) => sameLabels(s.labels, labels));
}

/** Puts a point in order, replacing the one at the same time. */
function put(series: BoardSeries, point: [number, number | null]): void {
  const i = series.points.findIndex((p) => p[0] >= point[0]);
  if (i === -1) series.points.push(point);
  else if (series.points[i][0] === point[0]) series.points[i] = point;
  else series.points.splice(i, 0, point);
}

function Panel(props: {
  panel: BoardPanel;
  tick: number;
  uplot: typeof uPlot | null;
  rangeMs: number;
  stepMs: number;
  now: number;
}) {
  const { panel } = props;
  const el = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);
  const U = props.uplot;
  const unit = CHARTED[panel.type];

  // One chart per panel, made again when a label set joins (uPlot's series are fixed).
  useEffect(() => {
    if (!U || !el.current) return;
    const ink = () => getComputedStyle(document.body).color;
    const long = props.rangeMs > 86_400_000;
    const axis = {
      stroke: ink,
      grid: { stroke: "rgba(128,128,128,.2)" },
    };
    const u = new U(
      {
        width: el.current.clientWidth,
        height: HEIGHT,
        legend: { show: false },
        tzDate: (ts) => U.tzDate(new Date(ts * 1000), "Etc/UTC"),
        scales: {
          x: {
            time: true,
            // The chosen range, ending now: the data alone would stretch one point over years.
            range: () => {
              const end = Math.max(Date.now(), props.now);
              return [(end - props.rangeMs) / 1000, end / 1000];
            },
          },
          // From zero (a gauge below it: from its minimum), with headroom over the top.
          y: {
            range: (_u, min, max) => [Math.min(0, min ?? 0), (max ?? 0) <= 0 ? 1 : max * 1.15],
          },
        },
        axes: [
          {
            ...axis,
            values: (_u: uPlot, splits: number[]) =>
              splits.map((s) => long ? dayTime(s * 1000).slice(0, 6) : hourMinute(s * 1000)),
          },
          { ...axis, size: 56 },
        ],
        series: [
          {},
          ...panel.series.map((_, i) => ({
            stroke: COLORS[i % COLORS.length],
            width: 1.5,
            spanGaps: false,
            points: { show: true, size: 4 },
          })),
        ],
      },
      columns(panel, props.stepMs),
      el.current,
    );
    chart.current = u;
    const resize = new ResizeObserver(() =>
      u.setSize({ width: el.current!.clientWidth, height: HEIGHT })
    );
    resize.observe(el.current);
    return () => {
      resize.disconnect();
      u.destroy();
      chart.current = null;
    };
  }, [U, panel.series.length]);

  useEffect(() => {
    chart.current?.setData(columns(panel, props.stepMs));
  }, [props.tick]);

  return (
    <figure
      class="card panel"
      data-panel={panel.name}
      data-points={panel.series.reduce((n, s) => n + s.points.length, 0)}
    >
      <figcaption>
        <strong>{panel.name}</strong>{" "}
        <small class="muted">
          {panel.type}, chart: {unit} per bucket (UTC)
        </small>
      </figcaption>
      <ul class="series">
        {panel.series.map((s, i) => (
          <li key={JSON.stringify(s.labels)} data-series={labelText(s.labels)}>
            <span class={`swatch c${i % COLORS.length}`} />
            <span class="labels">{labelText(s.labels)}</span>
            <span class="value" data-value>{show(s.last)}</span>
          </li>
        ))}
      </ul>
      <div ref={el} class="plot" data-chart={panel.name} />
    </figure>
  );
}

/**
 * uPlot's columns: every bucket time of any series, each series' value at
 * it, and null where a bucket holds no data (a gap, not a zero).
 */
function columns(panel: BoardPanel, _stepMs: number): uPlot.AlignedData {
  const times = [...new Set(panel.series.flatMap((s) => s.points.map((p) => p[0])))]
    .sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const ys = panel.series.map((s) => {
    const col: (number | null)[] = times.map(() => null);
    for (const [t, v] of s.points) col[index.get(t)!] = v;
    return col;
  });
  return [times.map((t) => t / 1000), ...ys] as uPlot.AlignedData;
}
