/**
 * Live `metrics_update` pushes (CONTRACT 7.4). Changed `10s` buckets come
 * from this instance's own commits and, through the KV feed, from every
 * other instance's; they are gathered and, at most once a second, read back
 * from KV (so a push carries the bucket's stored totals, whoever wrote to
 * it) and sent as one message to every `metrics` subscriber here. Nothing is
 * gathered or read while no socket here subscribes.
 */
import { metricSeriesKey } from "../store/keys.ts";
import type { Logger } from "../log.ts";
import { seriesPoints } from "../metrics/query.ts";
import { getAll, type SeriesRecord } from "../metrics/series.ts";
import type { ChangedBucket } from "../metrics/writer.ts";
import { metricsUpdate } from "../../shared/protocol_encode.ts";
import type { MetricBucket } from "../../shared/protocol.ts";
import type { Member, Registry } from "./registry.ts";

/** Shortest gap between two pushes: "at most about once a second". */
export const METRICS_PUSH_GAP_MS = 1000;

/** Options of {@linkcode MetricsFanout}. */
export interface MetricsFanoutOptions {
  retentionDays: number;
  logger: Logger;
  gapMs?: number;
}

/** Sends changed buckets to `metrics` subscribers; see the module doc. */
export class MetricsFanout {
  #kv: Deno.Kv;
  #registry: Registry<Member>;
  #o: Required<MetricsFanoutOptions>;
  /** Changed bucket starts, by series id. */
  #pending = new Map<string, Set<number>>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pushing: Promise<void> | null = null;
  #lastPush = 0;
  #stopped = false;

  constructor(kv: Deno.Kv, registry: Registry<Member>, options: MetricsFanoutOptions) {
    this.#kv = kv;
    this.#registry = registry;
    this.#o = { gapMs: METRICS_PUSH_GAP_MS, ...options };
  }

  /** Buckets changed (here or on another instance): pushed within the gap. */
  changed(buckets: ChangedBucket[]): void {
    if (this.#stopped || !this.#registry.hasSubscribers("metrics")) return;
    for (const [id, t] of buckets) {
      let ts = this.#pending.get(id);
      if (!ts) this.#pending.set(id, ts = new Set());
      ts.add(t);
    }
    this.#schedule();
  }

  /** Stops pushing; resolves once no push is running. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#pushing) await this.#pushing;
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#pushing || this.#pending.size === 0) return;
    const wait = Math.max(0, this.#lastPush + this.#o.gapMs - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#pushing = this.#push().finally(() => {
        this.#pushing = null;
        if (!this.#stopped) this.#schedule();
      });
    }, wait);
  }

  async #push(): Promise<void> {
    const pending = this.#pending;
    this.#pending = new Map();
    if (!this.#registry.hasSubscribers("metrics")) return;
    const now = Date.now();
    try {
      const ids = [...pending.keys()];
      const records = (await getAll<SeriesRecord>(this.#kv, ids.map(metricSeriesKey)))
        .map((e) => e.value);
      const points: MetricBucket[] = [];
      for (const record of records) {
        if (record === null) continue;
        const starts = [...pending.get(record.id)!].sort((a, b) => a - b);
        const from = starts[0];
        const to = starts[starts.length - 1];
        const wanted = new Set(starts);
        const read = await seriesPoints(
          this.#kv,
          record,
          { from, to, step: "10s" },
          this.#o.retentionDays,
          now,
        );
        for (const p of read) {
          if (!wanted.has(p.t as number)) continue;
          points.push(
            {
              name: record.name,
              type: record.type,
              labels: record.labels,
              step: "10s",
              ...p,
            } as MetricBucket,
          );
        }
      }
      if (points.length === 0) return;
      this.#lastPush = Date.now();
      this.#registry.publish("metrics", metricsUpdate(this.#lastPush, points));
    } catch (error) {
      this.#o.logger.warn("cannot read changed metric buckets", { error });
    }
  }
}
