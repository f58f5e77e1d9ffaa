/**
 * The ingest benchmark's load, the same for every target (bench/metrics_ingest.ts):
 * the points, the senders, the queries while they run, and the phases of one
 * target's measurement. A target is only a `send` of one batch and its
 * queries; InfluxDB and Lookout are driven over HTTP from the runner's
 * process, the bare KV ceiling runs these same phases in its own process
 * (bench/metrics_bare_kv.ts).
 */
import { cpuMs, machineBusyMs, machineIdleMs, settledRss } from "./proc.ts";
import { sleep } from "./util.ts";

/** The measurement and field of every point: Lookout's series `ingest.v`, InfluxDB's `ingest`/`v`. */
export const MEASUREMENT = "ingest";
export const FIELD = "v";

/** One batch: `series[i]` and `values[i]` are point i's; every point is at `atMs` (plus `i` ns). */
export interface Batch {
  sender: number;
  index: number;
  atMs: number;
  series: Uint16Array;
  values: Uint8Array;
}

/** The tag value of series `n`: `s0000` to `s9999`. */
export function seriesName(n: number): string {
  return `s${String(n).padStart(4, "0")}`;
}

/**
 * Batch `index` of `sender`: `size` counter increments (1 to 10) spread over
 * `seriesCount` series, the same whatever the target. Only the time differs:
 * it is when the batch is built.
 */
export function makeBatch(
  sender: number,
  index: number,
  size: number,
  seriesCount: number,
): Batch {
  const series = new Uint16Array(size);
  const values = new Uint8Array(size);
  for (let i = 0; i < size; i++) {
    series[i] = (index * size + i + sender * 37) % seriesCount;
    values[i] = 1 + ((sender * 7 + index * 13 + i) % 10);
  }
  return { sender, index, atMs: Date.now(), series, values };
}

/**
 * The batch in line protocol, integer fields (Lookout counts them as counter
 * increments), nanosecond timestamps. Below the millisecond, each point's
 * timestamp holds its sender, its position and its batch's index mod 3, so no
 * two points of one series share a timestamp (InfluxDB would keep only the
 * last of them) unless one sender got three answers within a millisecond.
 */
export function lineProtocol(batch: Batch): string {
  const lines = new Array<string>(batch.series.length);
  // At most 64 senders and 5,000 points a batch: under 320,000 each, so under 10^6 ns.
  const base = (batch.index % 3) * 320_000 + batch.sender * 5000;
  for (let i = 0; i < lines.length; i++) {
    const ns = String(base + i).padStart(6, "0");
    lines[i] = `${MEASUREMENT},series=${seriesName(batch.series[i])} ${FIELD}=${
      batch.values[i]
    }i ${batch.atMs}${ns}`;
  }
  return lines.join("\n");
}

/** The nearest-rank percentile `p` of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** p50, p99 and count of a list of latencies in ms. */
export interface Latency {
  n: number;
  p50: number;
  p99: number;
}

function latency(samples: number[]): Latency {
  const sorted = samples.toSorted((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
}

/** What one target answers to: one batch, durably, and the two queries. */
export interface IngestTarget {
  /** Stores the batch; resolves once it is durable, throws with the reason otherwise. */
  send(batch: Batch): Promise<void>;
  /** The last hour of one series in 10 s buckets, and its last 30 days in 1 h buckets; null when the target has none. */
  queries: { hour10s: () => Promise<void>; month1h: () => Promise<void> } | null;
  /** The process whose RSS and CPU time are the target's. */
  pid: number;
  /** The total of every stored increment of the benchmark's series, read back from the store. */
  storedSum: () => Promise<number>;
}

/** The shape of the load. */
export interface LoadShape {
  senders: number;
  batchSize: number;
  seriesCount: number;
  /** Series written before the RSS reading "with N series". */
  rssSeries: number;
  seconds: number;
  warmupSeconds: number;
  /** Pause between two rounds of the two queries. */
  queryGapMs: number;
  /**
   * Points per second over all senders, each sender's batches at fixed
   * intervals; 0 for closed loop (each batch as soon as the last is answered).
   */
  rate: number;
}

/** Everything measured on one target. */
export interface TargetResult {
  points: number;
  batches: number;
  wallMs: number;
  pointsPerS: number;
  /** `LoadShape.rate`: the points/s the senders were paced to, 0 for closed loop. */
  targetPointsPerS: number;
  /** Timed-phase batches whose time came while their sender's last batch was unanswered. */
  lateBatches: number;
  batchMs: Latency;
  hour10s: Latency | null;
  month1h: Latency | null;
  /** The target process's CPU time per 1,000 points stored, in the timed phase. */
  cpuMsPer1k: number;
  /** CPU used by everything but the target and the senders, as a share of one core. */
  otherShare: number;
  /** The machine's idle time in the timed phase, as a share of all its cores. */
  idleShare: number;
  rssIdle: number;
  rssAfter: number;
  rssWithSeries: number;
  /** How many series the last RSS reading had. */
  rssSeries: number;
  /** The total of the increments of every answered batch, all phases, and what the store holds. */
  ackedSum: number;
  storedSum: number;
  notes: string[];
}

/** Stops a phase after this many failed batches: the figures would say nothing. */
const MAX_FAILURES = 20;

interface IngestRun {
  points: number;
  /** The total of the values of the answered batches. */
  sum: number;
  batches: number;
  wallMs: number;
  batchMs: number[];
  failures: string[];
  /** Batches whose time came while their sender's previous batch was still in flight. */
  late: number;
}

/**
 * `senders` loops until `stop(batches started)`; batches over `seriesCount`
 * series. Closed loop (`shape.rate` 0), each sends its next batch once the
 * previous one was answered. Paced, sender `s` sends batch `k` at
 * `s·interval/senders + k·interval` (interval `senders·batchSize/rate`), never
 * more than one in flight: a batch whose time came before its predecessor's
 * answer goes at once and counts as late, and the schedule starts again from
 * it rather than catching up with a burst.
 */
async function ingest(
  target: IngestTarget,
  shape: LoadShape,
  seriesCount: number,
  stop: (sent: number) => boolean,
  firstIndex: number,
): Promise<IngestRun> {
  const run: IngestRun = {
    points: 0,
    sum: 0,
    batches: 0,
    wallMs: 0,
    batchMs: [],
    failures: [],
    late: 0,
  };
  const started = performance.now();
  const intervalMs = shape.rate > 0 ? (shape.senders * shape.batchSize / shape.rate) * 1000 : 0;
  let lastAnswer = started;
  let sent = 0;
  await Promise.all(
    Array.from({ length: shape.senders }, async (_, sender) => {
      // Staggered, so the senders' batches are spread evenly over an interval.
      let due = started + sender * intervalMs / shape.senders;
      for (let index = firstIndex; !stop(sent); index++) {
        if (intervalMs > 0) {
          const now = performance.now();
          if (now < due) {
            await sleep(due - now);
            // The phase may have ended during the wait.
            if (stop(sent)) break;
          } else if (index > firstIndex) {
            run.late++;
            due = now;
          }
          due += intervalMs;
        }
        sent++;
        const batch = makeBatch(sender, index, shape.batchSize, seriesCount);
        const t0 = performance.now();
        try {
          await target.send(batch);
          const answered = performance.now();
          lastAnswer = Math.max(lastAnswer, answered);
          run.batchMs.push(answered - t0);
          run.points += batch.series.length;
          run.sum += batch.values.reduce((a, b) => a + b, 0);
          run.batches++;
        } catch (error) {
          run.failures.push((error as Error).message);
          if (run.failures.length >= MAX_FAILURES) return;
        }
      }
    }),
  );
  // Paced, a sender may sleep past the phase's end before it sees the stop:
  // the phase ends with its last answer, not with that wait.
  run.wallMs = (intervalMs > 0 ? lastAnswer : performance.now()) - started;
  if (run.failures.length >= MAX_FAILURES) {
    throw new Error(`${run.failures.length} batches failed, the first with: ${run.failures[0]}`);
  }
  return run;
}

/** Runs the two queries in turn, `gapMs` apart, until `done()`. */
async function queryLoop(
  queries: NonNullable<IngestTarget["queries"]>,
  gapMs: number,
  done: () => boolean,
): Promise<{ hour10s: number[]; month1h: number[]; failures: string[] }> {
  const out = { hour10s: [] as number[], month1h: [] as number[], failures: [] as string[] };
  while (!done()) {
    for (const kind of ["hour10s", "month1h"] as const) {
      const t0 = performance.now();
      try {
        await queries[kind]();
        out[kind].push(performance.now() - t0);
      } catch (error) {
        out.failures.push((error as Error).message);
      }
    }
    await sleep(gapMs);
  }
  return out;
}

/** Load that runs beside the timed phase only, in a process of its own (the auth churn). */
export interface Beside {
  /** Called as the timed phase starts. */
  start: () => Promise<void>;
  /** Called as soon as its senders are done, before the phase's figures are read. */
  stop: () => Promise<void>;
}

/**
 * One target's measurement: idle RSS, a warm-up, the timed ingest with the
 * queries (and `beside`, when given) running beside it, RSS after it, then
 * every one of `rssSeries` series written and RSS again.
 */
export async function measureTarget(
  target: IngestTarget,
  shape: LoadShape,
  log: (line: string) => void,
  beside?: Beside,
): Promise<TargetResult> {
  const notes: string[] = [];
  const rssIdle = await settledRss(target.pid);
  const warmupUntil = performance.now() + shape.warmupSeconds * 1000;
  const warmup = await ingest(
    target,
    shape,
    shape.seriesCount,
    () => performance.now() >= warmupUntil,
    0,
  );
  log(`warm-up done; ingesting for ${shape.seconds} s`);

  const cpu0 = await cpuMs(target.pid);
  const busy0 = await machineBusyMs();
  const idle0 = await machineIdleMs();
  const self0 = await cpuMs(Deno.pid);
  await beside?.start();
  const until = performance.now() + shape.seconds * 1000;
  let ingesting = true;
  const queried = target.queries
    ? queryLoop(target.queries, shape.queryGapMs, () => !ingesting)
    : Promise.resolve(null);
  let run: IngestRun;
  try {
    run = await ingest(target, shape, shape.seriesCount, () => performance.now() >= until, 1e6);
  } finally {
    ingesting = false;
    await beside?.stop();
  }
  const queries = await queried;
  const cpu = (await cpuMs(target.pid)) - cpu0;
  const self = (await cpuMs(Deno.pid)) - self0;
  const busy = (await machineBusyMs()) - busy0;
  const idle = (await machineIdleMs()) - idle0;
  // The bare ceiling is its own sender: count its CPU once.
  const other = busy - cpu - (target.pid === Deno.pid ? 0 : self);
  if (run.failures.length) {
    notes.push(`${run.failures.length} failed batches, the first: ${run.failures[0]}`);
  }
  if (run.late > 0) {
    notes.push(
      `${run.late} of ${run.batches + run.failures.length} batches started late ` +
        `(their sender's previous batch still unanswered): the target did not keep up with ${shape.rate} points/s`,
    );
  }
  if (queries?.failures.length) {
    notes.push(`${queries.failures.length} failed queries, the first: ${queries.failures[0]}`);
  }
  const rssAfter = await settledRss(target.pid);

  // One sender's consecutive batches walk every series of the RSS reading, twice.
  const rounds = Math.ceil(shape.rssSeries / shape.batchSize) * 2;
  const wide = await ingest(
    target,
    // Not paced: this phase only fills the series for the RSS reading.
    { ...shape, senders: 1, rate: 0 },
    shape.rssSeries,
    (n) => n >= rounds,
    2e6,
  );
  const rssWithSeries = await settledRss(target.pid);
  const ackedSum = warmup.sum + run.sum + wide.sum;
  const storedSum = await target.storedSum();
  if (storedSum !== ackedSum) {
    notes.push(`the store holds a total of ${storedSum}, the answered batches ${ackedSum}`);
  }
  return {
    points: run.points,
    batches: run.batches,
    wallMs: run.wallMs,
    pointsPerS: run.points / (run.wallMs / 1000),
    targetPointsPerS: shape.rate,
    lateBatches: run.late,
    batchMs: latency(run.batchMs),
    hour10s: queries ? latency(queries.hour10s) : null,
    month1h: queries ? latency(queries.month1h) : null,
    cpuMsPer1k: cpu / (run.points / 1000),
    otherShare: Math.max(0, other) / run.wallMs,
    idleShare: idle / (busy + idle),
    rssIdle,
    rssAfter,
    rssWithSeries,
    rssSeries: shape.rssSeries,
    ackedSum,
    storedSum,
    notes,
  };
}
