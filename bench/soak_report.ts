/**
 * The soak's figures: the RSS drift, the targets of issue 6 and the table
 * bench/soak.ts prints.
 */
import type { SoakLoadResult, SoakShutdown } from "./soak_load.ts";
import type { StoreCount } from "./soak_store.ts";
import { median } from "./util.ts";

/** The targets of issue 6: RSS drift under 10% over 10 minutes, zero records lost. */
export const DRIFT_TARGET_PCT = 10;
export const TARGET_MINUTES = 10;

/** The soak's settings, from the command line. */
export interface SoakOptions {
  sockets: number;
  minutes: number;
  churnPerS: number;
  failFraction: number;
  warmupS: number;
  sampleS: number;
  concurrency: number;
  timeoutMs: number;
  quick: boolean;
  traceGc: boolean;
  json: string | null;
}

/** One full collection (Mark-Compact) of V8's heap, from a `--trace-gc` line. */
export interface GcPoint {
  /** When it ran: ms since the isolate started, as V8 prints it; seconds into the hold. */
  ms: number;
  t?: number;
  /** Heap used before and after, and the heap reserved after, in MB as V8 prints them. */
  before: number;
  after: number;
  reserved: number;
}

const MARK_COMPACT =
  /(\d+) ms: .*Mark-Compact[^\d]*([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/;

/**
 * Reads a `--trace-gc` line of a full collection; null for any other line.
 * Its own time stamp counts: the server's stdout is a pipe, so V8's lines
 * arrive in bursts when its buffer fills.
 */
export function parseGcLine(line: string): GcPoint | null {
  const m = MARK_COMPACT.exec(line);
  if (!m) return null;
  return { ms: Number(m[1]), before: Number(m[2]), after: Number(m[4]), reserved: Number(m[5]) };
}

/** One target, judged. */
export interface Verdict {
  target: string;
  pass: boolean;
  value: string;
}

/** Everything one run measured. */
export interface SoakResult {
  options: SoakOptions;
  startedAt: string;
  /** The commit measured. */
  tree: string;
  /** V8's full collections with `--trace-gc`, else null. */
  gc: GcPoint[] | null;
  load: SoakLoadResult;
  shutdown: SoakShutdown;
  /** SIGTERM to exit, in ms. */
  serverStopMs: number;
  store: StoreCount;
  /** Warnings and errors in the last lines the server wrote. */
  serverLog: string[];
  drift: Drift;
  verdicts: Verdict[];
}

/** RSS drift from the warm-up's end to the hold's end; see {@linkcode rssDrift}. */
export interface Drift {
  windowS: number;
  /** Median RSS of the samples in the window after the warm-up, and in the last window. */
  warm: number;
  end: number;
  warmSamples: number;
  endSamples: number;
  /** (end − warm) / warm in %: the figure the target is judged on. */
  pct: number;
  /** The same from the two settled point readings alone. */
  pointPct: number;
  /** The same from the lowest sample of each window (the floor after collections). */
  floorPct: number;
  /** Window medians of the anonymous and the file-backed part, after the warm-up and at the end. */
  anon: { warm: number; end: number };
  file: { warm: number; end: number };
}

/**
 * RSS drift over the hold. V8 collects the garbage of the churn in a saw
 * tooth tens of MiB high, so one reading lands anywhere on a tooth: the RSS
 * "after the warm-up" and "at the end" are each the median of the samples in
 * a window of `windowS` seconds (the first window after the warm-up, the
 * last one of the hold). The point readings and the floors are kept too.
 */
export function rssDrift(load: SoakLoadResult, windowS: number): Drift {
  const { warm, end, samples } = load.rss;
  const first = samples.filter((s) => s.t >= warm.t && s.t <= warm.t + windowS);
  const last = samples.filter((s) => s.t >= end.t - windowS && s.t <= end.t);
  const pct = (a: number, b: number) => 100 * (b - a) / a;
  const warmMedian = median(first.map((s) => s.bytes));
  const endMedian = median(last.map((s) => s.bytes));
  return {
    windowS,
    warm: warmMedian,
    end: endMedian,
    warmSamples: first.length,
    endSamples: last.length,
    pct: pct(warmMedian, endMedian),
    pointPct: pct(warm.bytes, end.bytes),
    floorPct: pct(Math.min(...first.map((s) => s.bytes)), Math.min(...last.map((s) => s.bytes))),
    anon: { warm: median(first.map((s) => s.anon)), end: median(last.map((s) => s.anon)) },
    file: { warm: median(first.map((s) => s.file)), end: median(last.map((s) => s.file)) },
  };
}

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}

/** A count with thousands separators. */
export function n(value: number): string {
  return value.toLocaleString("en-US");
}

function signed(pct: number): string {
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(1)}%`;
}

function counts(record: Record<string, number>): string {
  const entries = Object.entries(record);
  return entries.length ? entries.map(([k, v]) => `${k}: ${n(v)}`).join(", ") : "none";
}

/** With `--trace-gc`: the heap V8 kept after its full collections, first and last of the hold. */
function gcRows(r: SoakResult): [string, string][] {
  if (r.gc === null) return [];
  const hold = r.gc.filter((p) => p.t! >= r.load.rss.warm.t && p.t! <= r.load.rss.end.t);
  if (hold.length === 0) return [["V8 full collections after the warm-up", "none"]];
  const first = hold[0];
  const last = hold[hold.length - 1];
  const mb = (p: GcPoint) => `${p.after.toFixed(1)} MB at ${p.t!.toFixed(0)} s`;
  return [
    ["V8 full collections after the warm-up", n(hold.length)],
    [
      "V8 heap after a full collection: first after the warm-up → last",
      `${mb(first)} → ${mb(last)} (${signed(100 * (last.after - first.after) / first.after)})`,
    ],
    [
      "V8 heap reserved after them, and the most used before one",
      `${first.reserved.toFixed(1)} → ${last.reserved.toFixed(1)} MB; ${
        Math.max(...hold.map((p) => p.before)).toFixed(1)
      } MB`,
    ],
  ];
}

/** The figures as a Markdown table, then one PASS or MISS line per target. */
export function report(r: SoakResult): string {
  const { load, store, options, drift } = r;
  const { rss } = load;
  const bytes = rss.samples.map((s) => s.bytes);
  const last = rss.samples[rss.samples.length - 1];
  const rows: [string, string][] = [
    [
      "sockets held: target / after the ramp / at the stop",
      `${n(options.sockets)} / ${n(load.ramp.held)} / ${n(load.heldAtStop)}`,
    ],
    ["ramp", `${(load.ramp.wallMs / 1000).toFixed(1)} s, ${n(load.ramp.failed)} failed`],
    ["hold with churn", `${(load.wallMs / 60_000).toFixed(2)} min`],
    [
      "churn cycles (disconnect + new connect+auth)",
      `${n(load.cycles)} (${(load.cycles / (load.wallMs / 1000)).toFixed(1)}/s)`,
    ],
    ["RSS idle, before the ramp", mib(rss.idle)],
    [`RSS after the ramp (t=${rss.afterRamp.t} s)`, mib(rss.afterRamp.bytes)],
    [`RSS after the warm-up (t=${rss.warm.t} s, settled reading)`, mib(rss.warm.bytes)],
    [`RSS at the end (t=${rss.end.t} s, settled reading)`, mib(rss.end.bytes)],
    [
      `RSS median of the ${drift.windowS} s after the warm-up / of the last ${drift.windowS} s`,
      `${mib(drift.warm)} (${drift.warmSamples} samples) / ${
        mib(drift.end)
      } (${drift.endSamples} samples)`,
    ],
    [
      `RSS samples every ${options.sampleS} s: min / max / last`,
      `${mib(Math.min(...bytes))} / ${mib(Math.max(...bytes))} / ${mib(last.bytes)}`,
    ],
    ["RSS drift, end against after the warm-up (window medians)", signed(drift.pct)],
    [
      "of which anonymous / file-backed, window medians after the warm-up → at the end",
      `${mib(drift.anon.warm)} → ${mib(drift.anon.end)} / ${mib(drift.file.warm)} → ${
        mib(drift.file.end)
      }`,
    ],
    [
      "RSS drift from the settled point readings / from the window floors",
      `${signed(drift.pointPct)} / ${signed(drift.floorPct)}`,
    ],
    [
      "RSS growth, end against after the ramp",
      signed(100 * (rss.end.bytes - rss.afterRamp.bytes) / rss.afterRamp.bytes),
    ],
    ["attempts made (auth messages sent)", n(load.made)],
    ["attempts answered (authenticated or auth_failed)", n(load.answered)],
    [
      "made − answered (in flight at the stop, or timed out)",
      `${n(load.made - load.answered)} (${n(load.inFlightAtStop)} in flight at the stop)`,
    ],
    ["answers", counts(load.answers)],
    ["answers other than the token called for", n(load.wrongAnswers)],
    ["unanswered, by why", counts(load.unanswered)],
    ["connects that never sent auth, by why", counts(load.notSent)],
    ["attempt records stored, this run's", n(store.mine)],
    ["records lost (answered, not stored)", n(store.lost)],
    ["records stored twice", n(store.duplicates)],
    ["records of unanswered attempts", n(store.storedUnanswered)],
    ["records whose outcome differs from the answer", n(store.mismatched)],
    ["records of this run not in the ledger", n(store.unknown)],
    ["other records in the store, by reason", counts(store.others)],
    [
      "attempt_counts total against records",
      `${store.counterTotal === null ? "missing" : n(store.counterTotal)} against ${
        n(store.records)
      }`,
    ],
    ["held sockets the server closed during the hold", counts(load.heldClosedByServer)],
    [
      "SIGTERM: time to exit; held sockets' closes",
      `${(r.serverStopMs / 1000).toFixed(2)} s; ${counts(r.shutdown.closes)}; ${
        n(r.shutdown.stillOpen)
      } still open`,
    ],
    [
      "CPU during the hold: server / load generator / other processes (% of one core)",
      `${load.cpu.serverPct.toFixed(0)} / ${load.cpu.loadPct.toFixed(0)} / ${
        load.cpu.otherPct.toFixed(0)
      }`,
    ],
    ...gcRows(r),
    ["KV file at the end", mib(store.fileBytes)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const valueWidth = Math.max(...rows.map(([, v]) => v.length));
  const table = [
    `| ${"figure".padEnd(width)} | ${"value".padEnd(valueWidth)} |`,
    `| ${"-".repeat(width)} | ${"-".repeat(valueWidth)} |`,
    ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${v.padEnd(valueWidth)} |`),
  ].join("\n");
  const samples = rss.samples.map((s) => `${s.t.toFixed(0)} s ${(s.bytes / MIB).toFixed(1)}`)
    .join(", ");
  const verdicts = r.verdicts.map((v) => `- ${v.pass ? "PASS" : "MISS"} ${v.target}: ${v.value}`)
    .join("\n");
  const notes = [
    r.gc?.length
      ? `V8 heap after each full collection (MB, at seconds into the hold): ${
        r.gc.map((p) => `${Math.round(p.t!)} s ${p.after.toFixed(1)}`).join(", ")
      }`
      : "",
    store.lostSample.length ? `Lost, for example: ${store.lostSample.join(", ")}` : "",
    r.serverLog.length
      ? `Warnings and errors in the server's last output:\n${r.serverLog.join("\n")}`
      : "",
  ].filter(Boolean).map((note) => `\n\n${note}`).join("");
  return `${table}\n\nRSS samples (MiB): ${samples}${notes}\n\nTargets:\n\n${verdicts}`;
}

/** Judges the two targets. Drift is growth: RSS that shrinks passes. */
export function verdicts(minutes: number, drift: Drift, store: StoreCount): Verdict[] {
  const shorter = minutes < TARGET_MINUTES
    ? ` (over ${minutes} min, shorter than the target's ${TARGET_MINUTES})`
    : "";
  return [
    {
      target: `RSS drift < ${DRIFT_TARGET_PCT}%${shorter}`,
      pass: drift.pct < DRIFT_TARGET_PCT,
      value: signed(drift.pct),
    },
    {
      target: "zero attempt records lost",
      pass: store.lost === 0 && store.duplicates === 0,
      value: `${store.lost} lost, ${store.duplicates} duplicated`,
    },
  ];
}
