/**
 * The one route between instances: KV. Whatever another instance must learn
 * is either an event appended to one ordered feed (`feed_events`, by ULID)
 * or a bump of a version key (the stats version). Every instance tails both,
 * woken by `kv.watch` where it works and by a short poll where it does not:
 * separate local processes on one file do not see each other's watch, and
 * Deno Deploy documents no shared memory or channel between isolates.
 * Within one instance, events go straight to its sockets and never wait for
 * this route.
 */
import { encodeTime, newId } from "../store/ids.ts";
import { feedEventKey, feedEventsPrefix, feedVersionKey } from "../store/keys.ts";
import type { Logger } from "../log.ts";
import type { RevocationEvent } from "../auth/revocation.ts";

/**
 * The kinds of feed event and what each carries. A new kind (a user-level
 * revocation, a metrics change, a revoked API key) is one more line here and
 * one {@linkcode Feed.on} where it is handled.
 */
export interface FeedKinds {
  revoked: RevocationEvent;
  /** Close socket `id`, held by `instance`, with 4403 `revoked` (CONTRACT 8.1). */
  disconnect: { id: string; instance: string };
  /** Committed metric points: the `10s` buckets they changed, as [series id, start]. */
  metrics: { buckets: [string, number][] };
}

/** One event of the feed. `origin` is the instance that wrote it, when one did. */
export type FeedEvent = {
  [K in keyof FeedKinds]: { id: string; kind: K; origin: string | null; data: FeedKinds[K] };
}[keyof FeedKinds];

/** Events stay long enough for a paused instance to catch up. */
const EVENT_TTL_MS = 10 * 60_000;
/**
 * Events are listed again for this long, so one whose writer's clock is
 * behind, or whose commit landed after a later id's, is still read.
 */
const LOOKBACK_MS = 10_000;
/**
 * A wake-up lists only this much of the feed; the whole look-back is listed
 * at most once per {@linkcode FULL_READ_MS} (and within it by the poll after a
 * short read). Under ingest every commit appends an event and wakes every
 * instance: listing 10 s of them on each wake-up cost about a tenth of
 * Lookout's CPU in deserialization alone.
 */
const RECENT_MS = 1_000;
/** Longest time between two reads of the whole look-back while reads happen. */
const FULL_READ_MS = 1_000;
/** How often the version keys are read when no watch has woken us. */
export const FEED_POLL_MS = 250;
/** First and longest wait before a failed kv.watch is opened again. */
const WATCH_RETRY_MS = [100, 30_000] as const;

/**
 * Adds `data` as a `kind` event to an atomic commit, so the event lands with
 * what it announces or not at all; returns the event.
 */
export function appendEvent<K extends keyof FeedKinds>(
  op: Deno.AtomicOperation,
  kind: K,
  data: FeedKinds[K],
  origin: string | null = null,
): FeedEvent {
  const event = { id: newId(), kind, origin, data } as FeedEvent;
  op.set(feedEventKey(event.id), event, { expireIn: EVENT_TTL_MS })
    .sum(feedVersionKey(), 1n);
  return event;
}

/** Options of {@linkcode Feed}. */
export interface FeedOptions {
  /** This instance: events it wrote itself are not handed back to it. */
  instanceId: string;
  logger: Logger;
  pollMs?: number;
  /** Other keys to tail: each handler is called with every new versionstamp seen. */
  versions?: { key: Deno.KvKey; onChange: (versionstamp: string) => void }[];
}

type Handlers = { [K in keyof FeedKinds]?: ((data: FeedKinds[K]) => void)[] };

/** Tails the feed and the version keys; see the module doc. */
export class Feed {
  #kv: Deno.Kv;
  #o: Required<FeedOptions>;
  #handlers: Handlers = {};
  /** The last versionstamp seen of each watched key, by position in `#keys`. */
  #seenVersions: (string | null)[];
  #keys: Deno.KvKey[];
  /** Event ids already handled, with when they were first seen. */
  #seen = new Map<string, number>();
  #reading: Promise<void> | null = null;
  /** When the whole look-back was last listed. */
  #lastFull = 0;
  /** A short read happened since the last full one: the poll owes a full read. */
  #fullDue = false;
  #readAgain = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Ends the pause before a kv.watch is opened again (on stop). */
  #endPause = () => {};
  #watch: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]> | null = null;
  #watching: Promise<void> | null = null;
  #stopped = false;

  constructor(kv: Deno.Kv, options: FeedOptions) {
    this.#kv = kv;
    this.#o = { pollMs: FEED_POLL_MS, versions: [], ...options };
    this.#keys = [feedVersionKey(), ...this.#o.versions.map((v) => v.key)];
    this.#seenVersions = this.#keys.map(() => null);
  }

  /** Calls `handler` with each `kind` event another instance appends. */
  on<K extends keyof FeedKinds>(kind: K, handler: (data: FeedKinds[K]) => void): void {
    ((this.#handlers[kind] ??= []) as ((data: FeedKinds[K]) => void)[]).push(handler);
  }

  /**
   * Starts tailing. What is in the feed already was handled before this
   * start (the caller loads the state it stands for), so it is not replayed.
   */
  async start(): Promise<void> {
    const now = Date.now();
    this.#seenVersions = (await this.#kv.getMany(this.#keys)).map((e) => e.versionstamp);
    for (const event of await this.#recent(now, LOOKBACK_MS)) this.#seen.set(event.id, now);
    this.#lastFull = now;
    this.#watching = this.#watchLoop();
    this.#schedule();
  }

  /** Stops tailing; resolves once no read is left running. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#endPause();
    await this.#watch?.cancel().catch(() => {});
    await this.#watching;
    while (this.#reading) await this.#reading;
  }

  /** Reads the version keys now, and the feed if it moved. */
  async poll(): Promise<void> {
    try {
      this.#versionsSeen(await this.#kv.getMany(this.#keys));
      // An event committed late with an older id is only in the full look-back.
      if (this.#fullDue && Date.now() - this.#lastFull >= FULL_READ_MS) this.#readEvents();
    } catch (error) {
      this.#o.logger.warn("feed poll failed", { error });
    }
    while (this.#reading) await this.#reading;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      await this.poll();
      this.#schedule();
    }, this.#o.pollMs);
  }

  /**
   * Keeps one kv.watch open. A watch that fails is logged and opened again
   * after a growing pause: swallowing the error ended instant wake-ups for
   * the life of the instance, leaving only the poll.
   */
  async #watchLoop(): Promise<void> {
    let retryMs: number = WATCH_RETRY_MS[0];
    while (!this.#stopped) {
      let error: unknown = null;
      try {
        this.#watch = this.#kv.watch(this.#keys).getReader();
        while (true) {
          const { done, value } = await this.#watch.read();
          if (done) break;
          retryMs = WATCH_RETRY_MS[0];
          this.#versionsSeen(value);
        }
        if (this.#stopped) return;
        error = new Error("the stream ended");
      } catch (cause) {
        if (this.#stopped) return;
        error = cause;
      }
      this.#o.logger.warn("kv.watch failed: watching again after a pause", { error, retryMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, retryMs);
        this.#endPause = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      retryMs = Math.min(retryMs * 2, WATCH_RETRY_MS[1]);
    }
  }

  #versionsSeen(entries: Deno.KvEntryMaybe<unknown>[]): void {
    if (this.#stopped) return;
    for (const [i, entry] of entries.entries()) {
      const versionstamp = entry.versionstamp;
      if (versionstamp === null || versionstamp === this.#seenVersions[i]) continue;
      // A poll that started before a watch wake-up may bring an older stamp.
      if (this.#seenVersions[i] !== null && versionstamp < this.#seenVersions[i]!) continue;
      this.#seenVersions[i] = versionstamp;
      if (i === 0) this.#readEvents();
      else this.#o.versions[i - 1].onChange(versionstamp);
    }
  }

  /** Reads new events; one read at a time, one more if woken meanwhile. */
  #readEvents(): void {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = this.#read().finally(() => {
      this.#reading = null;
      if (this.#readAgain && !this.#stopped) {
        this.#readAgain = false;
        this.#readEvents();
      }
    });
  }

  async #read(): Promise<void> {
    const now = Date.now();
    const full = now - this.#lastFull >= FULL_READ_MS;
    if (full) {
      this.#lastFull = now;
      this.#fullDue = false;
    } else this.#fullDue = true;
    try {
      for (const event of await this.#recent(now, full ? LOOKBACK_MS : RECENT_MS)) {
        if (this.#seen.has(event.id)) continue;
        this.#seen.set(event.id, now);
        if (event.origin === this.#o.instanceId) continue;
        // The union of kinds does not narrow through the map: one cast, checked by on().
        const handlers = (this.#handlers[event.kind] ?? []) as ((data: unknown) => void)[];
        for (const handler of handlers) {
          try {
            // The kind was matched above: its handlers take its data.
            (handler as (data: unknown) => void)(event.data);
          } catch (error) {
            this.#o.logger.error("feed event handler failed", { kind: event.kind, error });
          }
        }
      }
    } catch (error) {
      this.#o.logger.warn("feed read failed", { error });
      // Read again at the next wake-up even if the version does not move.
      this.#seenVersions[0] = null;
    }
    for (const [id, at] of this.#seen) if (now - at > 2 * LOOKBACK_MS) this.#seen.delete(id);
  }

  async #recent(now: number, spanMs: number): Promise<FeedEvent[]> {
    const events: FeedEvent[] = [];
    const start = [...feedEventsPrefix(), encodeTime(Math.max(0, now - spanMs))];
    const end = [...feedEventsPrefix(), "\u{10FFFF}"];
    for await (const e of this.#kv.list<FeedEvent>({ start, end })) events.push(e.value);
    return events;
  }
}
