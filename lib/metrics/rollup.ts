/**
 * The KV writes one point makes, gathered in memory first: every write to a
 * key within a batch is folded into one `sum`, `min`, `max` or checked `last`
 * per key, whatever the number of points, requests and series behind it.
 */
import { metricBucketKey, metricTotalKey } from "../store/keys.ts";
import { binOf, encodeFixed, encodeOrdered } from "./encoding.ts";
import type { MetricPoint } from "./points.ts";

/** Rollup steps and their sizes in ms. */
export const STEPS = { "10s": 10_000, "1m": 60_000, "1h": 3_600_000, "1d": 86_400_000 } as const;
export type Step = keyof typeof STEPS;
export const STEP_NAMES = Object.keys(STEPS) as Step[];

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

interface Folded {
  key: Deno.KvKey;
  op: "sum" | "min" | "max";
  value: bigint;
  expireAt: number | null;
}

/** The writes of a batch, folded per key. */
export class Rollup {
  readonly folded = new Map<string, Folded>();
  readonly lasts = new Map<string, { key: Deno.KvKey; last: LastValue; expireAt: number | null }>();
  #retentionDays: number;

  constructor(retentionDays: number) {
    this.#retentionDays = retentionDays;
  }

  #fold(key: Deno.KvKey, op: Folded["op"], value: bigint, expireAt: number | null): void {
    const id = JSON.stringify(key);
    const f = this.folded.get(id);
    if (!f) this.folded.set(id, { key, op, value, expireAt });
    else if (op === "sum") f.value = BigInt.asUintN(64, f.value + value);
    else if (op === "min") f.value = value < f.value ? value : f.value;
    else f.value = value > f.value ? value : f.value;
  }

  #last(key: Deno.KvKey, last: LastValue, expireAt: number | null): void {
    const id = JSON.stringify(key);
    const current = this.lasts.get(id);
    if (!current || isLater(last, current.last)) this.lasts.set(id, { key, last, expireAt });
  }

  /** Adds one accepted point of series `id`. */
  add(id: string, point: MetricPoint, received: number, seq: number): void {
    const { type, value, at } = point;
    const fixed = encodeFixed(value);
    const ordered = encodeOrdered(value);
    const last: LastValue = { at, received, seq, value };
    this.#fold(metricTotalKey(id, "first_at"), "min", BigInt(at), null);
    this.#fold(metricTotalKey(id, "last_at"), "max", BigInt(at), null);
    if (type === "counter") this.#fold(metricTotalKey(id, "total"), "sum", fixed, null);
    if (type === "histogram") this.#fold(metricTotalKey(id, "count"), "sum", 1n, null);
    if (type === "gauge") this.#last(metricTotalKey(id, "last"), last, null);
    for (const step of STEP_NAMES) {
      const size = STEPS[step];
      const t = at - (at % size);
      const expireAt = t + size + retentionMs(step, this.#retentionDays);
      const key = (...field: (string | number)[]) => metricBucketKey(step, id, t, ...field);
      this.#fold(key("sum"), "sum", fixed, expireAt);
      this.#fold(key("count"), "sum", 1n, expireAt);
      if (type === "counter") continue;
      this.#fold(key("min"), "min", ordered, expireAt);
      this.#fold(key("max"), "max", ordered, expireAt);
      if (type === "gauge") this.#last(key("last"), last, expireAt);
      else {
        const bin = binOf(value);
        this.#fold(key("h", bin.sign, bin.index), "sum", 1n, expireAt);
      }
    }
  }

  /** Folds another batch's writes into this one. */
  merge(other: Rollup): void {
    for (const f of other.folded.values()) this.#fold(f.key, f.op, f.value, f.expireAt);
    for (const l of other.lasts.values()) this.#last(l.key, l.last, l.expireAt);
  }

  get size(): number {
    return this.folded.size + this.lasts.size;
  }
}
