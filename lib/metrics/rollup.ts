/**
 * The KV writes one point makes, gathered in memory first: every write to a
 * key within a batch is folded into one `sum`, `min`, `max` or checked `last`
 * per key, whatever the number of points, requests and series behind it.
 *
 * Points are folded into plain numbers per series and per bucket, and KV
 * keys are built only once per key, in {@linkcode Rollup.writes}: a push of
 * 500 points over 100 series builds 1,100 keys, not 11,000.
 */
import { metricBucketKey, metricTotalKey } from "../store/keys.ts";
import { binOf, encodeOrdered, FIXED_SCALE } from "./encoding.ts";
import type { MetricPoint } from "./points.ts";

/** Rollup steps and their sizes in ms. */
export const STEPS = { "10s": 10_000, "1m": 60_000, "1h": 3_600_000, "1d": 86_400_000 } as const;
export type Step = keyof typeof STEPS;
export const STEP_NAMES = Object.keys(STEPS) as Step[];
const STEP_SIZES = STEP_NAMES.map((step) => STEPS[step]);

/** How long each step's buckets are kept, in ms. */
export function retentionMs(step: Step, retentionDays: number): number {
  if (step === "10s") return 86_400_000;
  if (step === "1m") return 7 * 86_400_000;
  return retentionDays * 86_400_000;
}

/** A gauge's latest value: the latest `at`, ties to the one received last. */
export interface LastValue {
  at: number;
  /** Receipt time in ms and order within it, for ties on `at`. */
  received: number;
  seq: number;
  value: number;
}

/** Whether `a` is later than `b` under the gauge's `last` rule. */
export function isLater(a: LastValue, b: LastValue): boolean {
  if (a.at !== b.at) return a.at > b.at;
  if (a.received !== b.received) return a.received > b.received;
  return a.seq > b.seq;
}

/** One KV `sum`, `min` or `max` of a batch. */
export interface FoldedWrite {
  key: Deno.KvKey;
  op: "sum" | "min" | "max";
  value: bigint;
  expireAt: number | null;
}

/** One checked `last` of a batch. */
export interface LastWrite {
  key: Deno.KvKey;
  last: LastValue;
  expireAt: number | null;
}

/**
 * A fixed-point sum in thousandths: whole numbers while they are exact
 * (under 2^53), a bigint beside them for what goes past.
 */
class FixedSum {
  small = 0;
  big = 0n;

  add(thousandths: number): void {
    const next = this.small + thousandths;
    if (Number.isSafeInteger(next)) this.small = next;
    else {
      this.big += BigInt(this.small) + BigInt(thousandths);
      this.small = 0;
    }
  }

  addSum(other: FixedSum): void {
    this.big += other.big;
    this.add(other.small);
  }

  /** As KV stores it: two's complement modulo 2^64. */
  encoded(): bigint {
    return BigInt.asUintN(64, this.big + BigInt(this.small));
  }
}

/** The folded writes of one bucket of one series at one step. */
class Bucket {
  readonly t: number;
  readonly sum = new FixedSum();
  count = 0;
  /** Set by the first gauge or histogram point (a counter's bucket has none). */
  min: number | null = null;
  max: number | null = null;
  last: LastValue | null = null;
  bins: Map<string, number> | null = null;

  constructor(t: number) {
    this.t = t;
  }
}

/** The folded writes of one series. */
class SeriesFold {
  firstAt = Infinity;
  lastAt = -Infinity;
  /** Counter total; histogram count; gauge last (each present once a point of that type came). */
  total: FixedSum | null = null;
  count = 0;
  last: LastValue | null = null;
  /** Per step (in STEP_NAMES' order), the buckets by start time. */
  readonly buckets: Map<number, Bucket>[] = STEP_NAMES.map(() => new Map());
  /** Per step, the bucket the last point went to: a push's points mostly share theirs. */
  readonly recent: (Bucket | undefined)[] = STEP_NAMES.map(() => undefined);

  bucket(stepIndex: number, t: number): Bucket {
    const recent = this.recent[stepIndex];
    if (recent !== undefined && recent.t === t) return recent;
    const buckets = this.buckets[stepIndex];
    let b = buckets.get(t);
    if (b === undefined) buckets.set(t, b = new Bucket(t));
    this.recent[stepIndex] = b;
    return b;
  }
}

function foldMin(current: number | null, value: number): number {
  return current === null || value < current ? value : current;
}

function foldMax(current: number | null, value: number): number {
  return current === null || value > current ? value : current;
}

function laterOf(current: LastValue | null, last: LastValue): LastValue {
  return current === null || isLater(last, current) ? last : current;
}

function binKey(sign: string, index: number): string {
  return sign + index;
}

/** The writes of a batch, folded per key. */
export class Rollup {
  #retentionDays: number;
  #series = new Map<string, SeriesFold>();

  constructor(retentionDays: number) {
    this.#retentionDays = retentionDays;
  }

  #fold(id: string): SeriesFold {
    let s = this.#series.get(id);
    if (s === undefined) this.#series.set(id, s = new SeriesFold());
    return s;
  }

  /** Adds one accepted point of series `id`. */
  add(id: string, point: MetricPoint, received: number, seq: number): void {
    const { type, value, at } = point;
    const s = this.#fold(id);
    const thousandths = Math.round(value * FIXED_SCALE);
    const last: LastValue | null = type === "gauge" ? { at, received, seq, value } : null;
    const bin = type === "histogram" ? binOf(value) : null;
    const binId = bin === null ? "" : binKey(bin.sign, bin.index);
    if (at < s.firstAt) s.firstAt = at;
    if (at > s.lastAt) s.lastAt = at;
    if (type === "counter") (s.total ??= new FixedSum()).add(thousandths);
    else if (type === "histogram") s.count++;
    else s.last = laterOf(s.last, last!);
    for (let i = 0; i < STEP_SIZES.length; i++) {
      const b = s.bucket(i, at - (at % STEP_SIZES[i]));
      b.sum.add(thousandths);
      b.count++;
      if (type === "counter") continue;
      b.min = foldMin(b.min, value);
      b.max = foldMax(b.max, value);
      if (type === "gauge") b.last = laterOf(b.last, last!);
      else {
        b.bins ??= new Map();
        b.bins.set(binId, (b.bins.get(binId) ?? 0) + 1);
      }
    }
  }

  /** Folds another batch's writes into this one. */
  merge(other: Rollup): void {
    for (const [id, o] of other.#series) {
      const s = this.#fold(id);
      s.firstAt = Math.min(s.firstAt, o.firstAt);
      s.lastAt = Math.max(s.lastAt, o.lastAt);
      if (o.total !== null) (s.total ??= new FixedSum()).addSum(o.total);
      s.count += o.count;
      if (o.last !== null) s.last = laterOf(s.last, o.last);
      for (let i = 0; i < STEP_SIZES.length; i++) {
        for (const ob of o.buckets[i].values()) {
          const b = s.bucket(i, ob.t);
          b.sum.addSum(ob.sum);
          b.count += ob.count;
          if (ob.min !== null) b.min = foldMin(b.min, ob.min);
          if (ob.max !== null) b.max = foldMax(b.max, ob.max);
          if (ob.last !== null) b.last = laterOf(b.last, ob.last);
          if (ob.bins !== null) {
            b.bins ??= new Map();
            for (const [k, n] of ob.bins) b.bins.set(k, (b.bins.get(k) ?? 0) + n);
          }
        }
      }
    }
  }

  /** Every KV write of the batch: one per key. */
  writes(): { folded: FoldedWrite[]; lasts: LastWrite[] } {
    const folded: FoldedWrite[] = [];
    const lasts: LastWrite[] = [];
    for (const [id, s] of this.#series) {
      const total = (field: string, op: FoldedWrite["op"], value: bigint) =>
        folded.push({ key: metricTotalKey(id, field), op, value, expireAt: null });
      total("first_at", "min", BigInt(s.firstAt));
      total("last_at", "max", BigInt(s.lastAt));
      if (s.total !== null) total("total", "sum", s.total.encoded());
      if (s.count > 0) total("count", "sum", BigInt(s.count));
      if (s.last !== null) {
        lasts.push({ key: metricTotalKey(id, "last"), last: s.last, expireAt: null });
      }
      STEP_NAMES.forEach((step, i) => {
        const size = STEP_SIZES[i];
        for (const b of s.buckets[i].values()) {
          const expireAt = b.t + size + retentionMs(step, this.#retentionDays);
          const write = (op: FoldedWrite["op"], value: bigint, ...field: (string | number)[]) =>
            folded.push({ key: metricBucketKey(step, id, b.t, ...field), op, value, expireAt });
          write("sum", b.sum.encoded(), "sum");
          write("sum", BigInt(b.count), "count");
          if (b.min !== null) write("min", encodeOrdered(b.min), "min");
          if (b.max !== null) write("max", encodeOrdered(b.max), "max");
          if (b.last !== null) {
            lasts.push({ key: metricBucketKey(step, id, b.t, "last"), last: b.last, expireAt });
          }
          if (b.bins !== null) {
            for (const [k, n] of b.bins) {
              write("sum", BigInt(n), "h", k.slice(0, 1), Number(k.slice(1)));
            }
          }
        }
      });
    }
    return { folded, lasts };
  }

  /** How many KV writes the batch makes. */
  get size(): number {
    let n = 0;
    for (const s of this.#series.values()) {
      n += 2 + (s.total !== null ? 1 : 0) + (s.count > 0 ? 1 : 0) + (s.last !== null ? 1 : 0);
      for (const buckets of s.buckets) {
        for (const b of buckets.values()) {
          n += 2 + (b.min !== null ? 2 : 0) + (b.last !== null ? 1 : 0) + (b.bins?.size ?? 0);
        }
      }
    }
    return n;
  }
}
