/**
 * The benchmark's one table: each server's figures side by side, Lookout's
 * ratio to the raw Deno ceiling, to the raw+KV ceiling and to Socket.IO, and the issue's targets
 * judged pass or miss on the measured numbers.
 */
import type { LoadResult } from "./loadgen.ts";
import type { Target } from "./protocols.ts";
import { median } from "./util.ts";

/** The results of one run, by server; a server left out with `--only` is missing. */
export type Results = Partial<Record<Target, LoadResult>>;

interface Row {
  metric: string;
  value: (r: LoadResult) => number | null;
  digits: number;
  /** A count, not a figure of merit: no ratio column. */
  noRatio?: boolean;
}

const KIB = 1024;
const MIB = 1024 * 1024;

/** The median of the finite `values`; null when there are none. */
function finiteMedian(values: number[]): number | null {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? null : median(finite);
}

function perSocket(r: LoadResult, at: "half" | "full"): number | null {
  const { sockets, bytes } = r.rss[at];
  return sockets > 0 ? (bytes - r.rss.idle) / sockets / KIB : null;
}

/** The rows, in the order printed. `half` and `full` name the socket counts. */
function rows(half: number, full: number, concurrency: number): Row[] {
  const fan = (pick: (x: LoadResult["fanout"]["rounds"][number]) => number) => (r: LoadResult) =>
    finiteMedian(r.fanout.rounds.filter((x) => x.reached === x.of && x.of > 0).map(pick));
  const k = (n: number) => n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
  return [
    {
      metric: `authenticated connects/s (connect+auth+close, ${concurrency} in flight)`,
      value: (r) => r.churn.perSecond,
      digits: 0,
    },
    { metric: "connect+auth p50 (ms)", value: (r) => r.churn.p50, digits: 1 },
    { metric: "connect+auth p99 (ms)", value: (r) => r.churn.p99, digits: 1 },
    {
      metric: "server CPU per authenticated connect (ms)",
      value: (r) => r.churn.ok ? r.churn.serverCpuMs / r.churn.ok : null,
      digits: 3,
    },
    {
      metric: "server CPU while churning (% of one core)",
      value: (r) => 100 * r.churn.serverCpuMs / r.churn.wallMs,
      digits: 0,
    },
    {
      metric: "load generator CPU while churning (% of one core)",
      value: (r) => 100 * r.churn.loadgenCpuMs / r.churn.wallMs,
      digits: 0,
    },
    {
      metric: "other processes' CPU while churning (% of one core)",
      value: (r) => 100 * r.churn.otherCpuMs / r.churn.wallMs,
      digits: 0,
      noRatio: true,
    },
    {
      metric: `authenticated connects/s (ramp to ${k(full)} held)`,
      value: (r) => r.ramp.perSecond,
      digits: 0,
    },
    { metric: `connect+auth p99, ramp to ${k(full)} (ms)`, value: (r) => r.ramp.p99, digits: 1 },
    { metric: "idle RSS before the ramp (MiB)", value: (r) => r.rss.idle / MIB, digits: 1 },
    {
      metric: `RSS per authenticated socket at ${k(half)} (KiB)`,
      value: (r) => perSocket(r, "half"),
      digits: 2,
    },
    {
      metric: `RSS per authenticated socket at ${k(full)} (KiB)`,
      value: (r) => perSocket(r, "full"),
      digits: 2,
    },
    {
      metric: "RSS per socket, median of the ramp's steps (KiB)",
      value: (r) => r.rss.perStep / KIB,
      digits: 2,
    },
    {
      metric: `fanout: stats_update to all ${k(full)}, trigger to last (ms, median)`,
      value: fan((x) => x.toLast),
      digits: 1,
    },
    {
      metric: "fanout: trigger to first socket (ms, median)",
      value: fan((x) => x.toFirst),
      digits: 1,
    },
    { metric: "fanout: first to last socket (ms, median)", value: fan((x) => x.spread), digits: 1 },
    {
      metric: "fanout: server CPU, trigger to last (ms, median)",
      value: fan((x) => x.serverCpuMs),
      digits: 0,
    },
    {
      metric: "fanout: load generator CPU (ms, median)",
      value: fan((x) => x.loadgenCpuMs),
      digits: 0,
    },
    {
      metric: "fanout: stats_update frames per socket per trigger (median)",
      value: fan((x) => x.frames / x.of),
      digits: 2,
    },
    {
      metric: "fanout: stats_update frame (bytes)",
      value: (r) => r.fanout.messageBytes,
      digits: 0,
    },
    {
      metric: "revocation to close (ms, median)",
      value: (r) => finiteMedian(r.revocation.map((x) => x.ms ?? NaN)),
      digits: 1,
    },
    {
      metric: "revocation to close (ms, max)",
      value: (r) => {
        const v = r.revocation.map((x) => x.ms ?? NaN).filter(Number.isFinite);
        return v.length ? Math.max(...v) : null;
      },
      digits: 1,
    },
    {
      metric: "failed connects",
      value: (r) => r.churn.failed + r.ramp.failed,
      digits: 0,
      noRatio: true,
    },
  ];
}

function show(value: number | null | undefined, digits: number): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "n/a";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) {
    return "n/a";
  }
  return `${(a / b).toFixed(2)}x`;
}

/**
 * The Markdown table of every row for the servers in `results`. `before`,
 * another Lookout checkout measured in the same run, adds its column and
 * Lookout's ratio to it.
 */
export function table(
  results: Results,
  shape: { half: number; full: number; concurrency: number },
  before?: LoadResult,
): string {
  const header = [
    "metric",
    "lookout",
    "raw deno",
    "raw+kv",
    "socket.io",
    "lookout/raw",
    "lookout/raw+kv",
    "lookout/socket.io",
  ];
  if (before) {
    header.splice(2, 0, "lookout (before)");
    header.push("lookout/before");
  }
  const body = rows(shape.half, shape.full, shape.concurrency).map((row) => {
    const v = (t: Target) => results[t] ? row.value(results[t]!) : null;
    const [l, r, k, s] = [v("lookout"), v("raw"), v("rawkv"), v("socketio")];
    const cells = [
      row.metric,
      show(l, row.digits),
      show(r, row.digits),
      show(k, row.digits),
      show(s, row.digits),
      row.noRatio ? "" : ratio(l, r),
      row.noRatio ? "" : ratio(l, k),
      row.noRatio ? "" : ratio(l, s),
    ];
    if (before) {
      const b = row.value(before);
      cells.splice(2, 0, show(b, row.digits));
      cells.push(row.noRatio ? "" : ratio(l, b));
    }
    return cells;
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ")} |`;
  const rule = `| ${
    widths.map((w, i) => i === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`).join(" | ")
  } |`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

/** One target of the issue, judged. */
export interface Verdict {
  target: string;
  measured: string;
  pass: boolean | null;
}

/** Judges the issue's targets on the measured figures; null when a server is missing. */
export function verdicts(results: Results): Verdict[] {
  const { lookout: l, raw: r, rawkv: k, socketio: s } = results;
  const out: Verdict[] = [];
  const judge = (
    target: string,
    a: number | null,
    b: number | null,
    ok: (x: number) => boolean,
  ) => {
    const x = a != null && b != null && b !== 0 ? a / b : null;
    out.push({
      target,
      measured: x === null ? "not measured" : `${x.toFixed(2)}x`,
      pass: x === null ? null : ok(x),
    });
  };
  const fan = (x?: LoadResult) =>
    x
      ? finiteMedian(
        x.fanout.rounds.filter((f) => f.reached === f.of && f.of > 0).map((f) => f.toLast),
      )
      : null;
  const spread = (x?: LoadResult) =>
    x
      ? finiteMedian(
        x.fanout.rounds.filter((f) => f.reached === f.of && f.of > 0).map((f) => f.spread),
      )
      : null;
  judge(
    "auth rate >= 0.85x raw Deno",
    l?.churn.perSecond ?? null,
    r?.churn.perSecond ?? null,
    (x) => x >= 0.85,
  );
  judge(
    "auth rate >= 0.9x raw+KV (the contract's ceiling)",
    l?.churn.perSecond ?? null,
    k?.churn.perSecond ?? null,
    (x) => x >= 0.9,
  );
  const cpu = (x?: LoadResult) => x && x.churn.ok ? x.churn.serverCpuMs / x.churn.ok : null;
  judge("server CPU per connect <= 1.3x raw+KV", cpu(l), cpu(k), (x) => x <= 1.3);
  judge(
    "auth rate >= 1.8x Socket.IO",
    l?.churn.perSecond ?? null,
    s?.churn.perSecond ?? null,
    (x) => x >= 1.8,
  );
  judge("fanout to all, trigger to last <= 1.2x raw Deno", fan(l), fan(r), (x) => x <= 1.2);
  judge(
    "(for information) fanout first to last socket <= 1.2x raw Deno",
    spread(l),
    spread(r),
    (x) => x <= 1.2,
  );
  judge(
    "RSS per socket at the full count <= 1.25x raw Deno",
    l ? perSocket(l, "full") : null,
    r ? perSocket(r, "full") : null,
    (x) => x <= 1.25,
  );
  judge(
    "(for information) RSS per socket, median of the ramp's steps <= 1.25x raw Deno",
    l ? l.rss.perStep : null,
    r ? r.rss.perStep : null,
    (x) => x <= 1.25,
  );
  judge(
    "RSS per socket at half the count <= 1.25x raw Deno",
    l ? perSocket(l, "half") : null,
    r ? perSocket(r, "half") : null,
    (x) => x <= 1.25,
  );
  return out;
}

/**
 * Warnings for phases during which other processes on the machine used more
 * than `limit` percent of a core: their figures are not clean.
 */
export function noise(results: Record<string, LoadResult | undefined>, limit = 10): string[] {
  const out: string[] = [];
  for (const [target, r] of Object.entries(results)) {
    if (!r) continue;
    for (const [phase, f] of [["churn", r.churn], ["ramp", r.ramp]] as const) {
      const pct = 100 * f.otherCpuMs / f.wallMs;
      if (pct > limit) {
        out.push(
          `- NOISY: other processes used ${pct.toFixed(0)}% of a core during ${target}'s ${phase}`,
        );
      }
    }
  }
  return out;
}

/** The verdicts as Markdown list lines. */
export function verdictLines(list: Verdict[]): string {
  return list.map((v) =>
    `- ${v.pass === null ? "n/a " : v.pass ? "PASS" : "MISS"} ${v.target.trim()}: ${v.measured}`
  ).join("\n");
}

/** Markers around the generated part of bench/README.md. */
export const README_START = "<!-- bench:results:start -->";
export const README_END = "<!-- bench:results:end -->";

/**
 * `readme` with the text between the markers replaced (appended when there
 * are none); other benchmarks pass their own pair of markers.
 */
export function replaceBetweenMarkers(
  readme: string,
  generated: string,
  markers: { start: string; end: string } = { start: README_START, end: README_END },
): string {
  const block = `${markers.start}\n${generated.trim()}\n${markers.end}`;
  const start = readme.indexOf(markers.start);
  const end = readme.indexOf(markers.end);
  if (start === -1 || end === -1 || end < start) return `${readme.trimEnd()}\n\n${block}\n`;
  return readme.slice(0, start) + block + readme.slice(end + markers.end.length);
}
