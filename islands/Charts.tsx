/// <reference lib="dom" />
import { useEffect, useRef } from "preact/hooks";
import { effect } from "@preact/signals";
import type uPlot from "uplot";
import { stats } from "../client/store.ts";
import { hourMinute } from "../client/format.ts";
import type { MinutePoint } from "../shared/history.ts";

const MINUTE = 60_000;
const HEIGHT = 180;
const COLORS = { success: "#2e9e5b", failure: "#d64545", open: "#4a7bd8" };

/**
 * Attempts per minute by outcome, and open connections over time: the last
 * hour from KV, extended live from each `stats_update` (the change in the
 * deployment-wide totals is added to the current minute).
 */
export default function Charts(props: { history: MinutePoint[] }) {
  const attemptsEl = useRef<HTMLDivElement>(null);
  const openEl = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let cleanup: (() => void) | null = null;
    let cancelled = false;
    // uPlot is 23 KB gzip, two thirds of the page budget: it is fetched only
    // here, after first paint, as its own chunk.
    import("uplot").then(({ default: UPlot }) => {
      if (!cancelled) cleanup = draw(UPlot);
    });
    return () => {
      cancelled = true;
      cleanup?.();
    };
  }, []);

  function draw(UPlot: typeof uPlot): () => void {
    const points = props.history.map((p) => ({ ...p }));
    // Read at each draw, so a switch between light and dark re-inks the axes.
    const ink = () => getComputedStyle(document.body).color;
    const axes = [
      {
        stroke: ink,
        grid: { stroke: "rgba(128,128,128,.2)" },
        // 24-hour UTC like every table, not uPlot's "5:50pm".
        values: (_u: uPlot, splits: number[]) => splits.map((s) => hourMinute(s * 1000)),
      },
      { stroke: ink, grid: { stroke: "rgba(128,128,128,.2)" }, size: 40 },
    ];
    const width = () => attemptsEl.current!.clientWidth;
    // uPlot labels in the browser's zone by default; the tables say UTC, so do the charts.
    const tzDate = (ts: number) => UPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
    // The x axis starts at the first minute with data (the server trims the
    // rest) and spans at least ten minutes: uPlot would stretch one point
    // over years. The y axis starts at zero, with headroom over the top.
    const scales: uPlot.Scales = {
      x: {
        time: true,
        // From the data, not from uPlot's min and max: for one point those span 1,000 days.
        range: (u) => {
          const xs = u.data[0];
          return [xs[0], Math.max(xs[xs.length - 1], xs[0] + 10 * 60)];
        },
      },
      y: { range: (_u, _min, max) => [0, Math.max(2, Math.ceil(max * 1.2))] },
    };
    const attempts = new UPlot(
      {
        width: width(),
        height: HEIGHT,
        tzDate,
        scales,
        legend: { show: false },
        axes,
        series: [
          {},
          { label: "success", stroke: COLORS.success, fill: "rgba(46,158,91,.15)" },
          { label: "failure", stroke: COLORS.failure, fill: "rgba(214,69,69,.15)" },
        ],
      },
      columns(points, ["success", "failure"]),
      attemptsEl.current!,
    );
    const open = new UPlot(
      {
        width: width(),
        height: HEIGHT,
        tzDate,
        scales,
        legend: { show: false },
        axes,
        series: [{}, {
          label: "open",
          stroke: COLORS.open,
          spanGaps: true,
          // One sample is a point, not yet a line: show points so it is seen.
          points: { show: true, size: 5 },
        }],
      },
      columns(points, ["open"]),
      openEl.current!,
    );

    let last: { success: number; failure: number } | null = null;
    const stop = effect(() => {
      const s = stats.value;
      if (!s) return;
      const minute = s.at - (s.at % MINUTE);
      let point = points[points.length - 1];
      if (!point || point.t < minute) {
        point = { t: minute, success: 0, failure: 0, open: null };
        points.push(point);
        if (points.length > 60) points.shift();
      }
      if (last) {
        point.success += Math.max(0, s.attempts.success - last.success);
        point.failure += Math.max(0, s.attempts.failure - last.failure);
      }
      last = { success: s.attempts.success, failure: s.attempts.failure };
      point.open = s.connections.open;
      attempts.setData(columns(points, ["success", "failure"]));
      open.setData(columns(points, ["open"]));
    });
    const redraw = () => {
      attempts.setSize({ width: width(), height: HEIGHT });
      open.setSize({ width: width(), height: HEIGHT });
    };
    const resize = new ResizeObserver(redraw);
    resize.observe(attemptsEl.current!);
    const scheme = matchMedia("(prefers-color-scheme: dark)");
    scheme.addEventListener("change", redraw);
    return () => {
      stop();
      scheme.removeEventListener("change", redraw);
      resize.disconnect();
      attempts.destroy();
      open.destroy();
    };
  }

  return (
    <section class="charts" aria-label="Charts">
      <figure class="card chart">
        <figcaption>
          Attempts per minute: <span class="ok">success</span> and <span class="bad">failure</span>
          {" "}
          <small class="muted">(times in UTC)</small>
        </figcaption>
        <div ref={attemptsEl} class="plot" data-chart="attempts" />
      </figure>
      <figure class="card chart">
        <figcaption>
          Open connections <small class="muted">(times in UTC)</small>
        </figcaption>
        <div ref={openEl} class="plot" data-chart="open" />
      </figure>
    </section>
  );
}

function columns(
  points: MinutePoint[],
  fields: ("success" | "failure" | "open")[],
): uPlot.AlignedData {
  return [
    points.map((p) => p.t / 1000),
    ...fields.map((f) => points.map((p) => p[f])),
  ] as uPlot.AlignedData;
}
