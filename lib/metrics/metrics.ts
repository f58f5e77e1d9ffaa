/**
 * The application metrics of one instance: the series registry and ids, the
 * grouped rollup writer, the per-key push limit and the retention sweep.
 */
import { WindowCounter } from "../realtime/limits.ts";
import type { Logger } from "../log.ts";
import { ingestPoints, type RejectedPoint } from "./ingest.ts";
import { sweepExpiredBuckets } from "./retention.ts";
import { SeriesRegistry } from "./series.ts";
import { type ChangeAnnouncer, RollupWriter } from "./writer.ts";
import { SeriesIds } from "./series_ids.ts";

/** Options of {@linkcode Metrics}. */
export interface MetricsOptions {
  maxSeries: number;
  retentionDays: number;
  /** Pushes one key (or one user's tokens) may make per window on this instance. */
  pushesPerKey: number;
  pushWindowMs: number;
  logger: Logger;
  /** Who hears of committed changes, for live `metrics_update` pushes. */
  announce?: ChangeAnnouncer;
}

/** How often the retention sweep runs. */
const SWEEP_EVERY_MS = 15 * 60_000;

/** See the module doc. */
export class Metrics {
  readonly retentionDays: number;
  #kv: Deno.Kv;
  #series: SeriesRegistry;
  #ids: SeriesIds;
  #writer: RollupWriter;
  #pushes: WindowCounter;
  #logger: Logger;
  #timer: ReturnType<typeof setInterval> | null = null;

  constructor(kv: Deno.Kv, options: MetricsOptions) {
    this.#kv = kv;
    this.retentionDays = options.retentionDays;
    this.#series = new SeriesRegistry(kv, { maxSeries: options.maxSeries });
    // Room for every series the cap allows (twice, for label orders), within reason.
    this.#ids = new SeriesIds({ max: Math.min(65_536, Math.max(1024, 2 * options.maxSeries)) });
    this.#writer = new RollupWriter(kv, {
      retentionDays: options.retentionDays,
      announce: options.announce,
    });
    this.#pushes = new WindowCounter(options.pushesPerKey, options.pushWindowMs);
    this.#logger = options.logger;
  }

  /** Milliseconds `caller` must wait before its next push; 0 counts this push. */
  admit(caller: string): number {
    const wait = this.#pushes.blockedFor(caller);
    if (wait === 0) this.#pushes.hit(caller);
    return wait;
  }

  /** Stores a push's valid points; see {@linkcode ingestPoints}. */
  push(points: unknown[]): Promise<{ accepted: number; rejected: RejectedPoint[] }> {
    return ingestPoints({
      series: this.#series,
      writer: this.#writer,
      ids: this.#ids,
      retentionDays: this.retentionDays,
    }, points);
  }

  /** Starts the periodic retention sweep. */
  start(): void {
    this.#timer ??= setInterval(() => {
      sweepExpiredBuckets(this.#kv, this.retentionDays).then(
        (deleted) => deleted > 0 && this.#logger.info("swept expired metric buckets", { deleted }),
        (error) => this.#logger.warn("metric retention sweep failed", { error }),
      );
    }, SWEEP_EVERY_MS);
  }

  /** Stops the sweep and waits for pushes being written. */
  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await this.#writer.flush();
  }
}
