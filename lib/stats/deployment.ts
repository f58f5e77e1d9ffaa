/**
 * Deployment-wide stats: this instance publishes its counts to KV, reads
 * everyone's (and the attempt counters) when the stats version moves, and
 * pushes `stats_update` and `presence` to its own sockets when a count
 * changed, at most once per `minIntervalMs`.
 */
import type { Attempt, Stats } from "../../shared/protocol.ts";
import {
  type InstanceEntry,
  pruneStats,
  readStats,
  removeInstance,
  withSelf,
} from "./instances.ts";
import { minuteOf, sampleConnections } from "./history.ts";
import { statsVersionKey } from "../store/keys.ts";
import type { Logger } from "../log.ts";
import type { Member, Registry } from "../realtime/registry.ts";
import { InstanceEntryWriter } from "./instance_entry.ts";
import { StatsPush } from "./push.ts";
import { Unread, withUnread } from "./unread.ts";

/** Options of {@linkcode DeploymentStats}. */
export interface DeploymentStatsOptions {
  instanceId: string;
  startedAt: number;
  retentionDays: number;
  logger: Logger;
  /** Fastest rate of stats pushes (ms between them). */
  minIntervalMs?: number;
  /** How often this instance rewrites its entry even when nothing changed. */
  heartbeatMs?: number;
}

/** Shortest gap between two reads when the first pushed nothing. */
const READ_GAP_MS = 100;

/** See the module doc. */
export class DeploymentStats {
  #kv: Deno.Kv;
  #registry: Registry<Member>;
  #o: Required<DeploymentStatsOptions>;
  #entry: InstanceEntryWriter;
  /** When the next refresh may start: see {@linkcode changed}. */
  #nextRefreshAt = 0;
  #refreshing: Promise<void> | null = null;
  /** The stats version the latest read started from: every commit up to it is in that read. */
  #covered: string | null = null;
  /**
   * A change came while a refresh was reading: another follows it, unless
   * the change is a commit (its versionstamp here) that the read turns out
   * to hold. `true`: a change of unknown version.
   */
  #again: boolean | string = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #lastPrune = 0;
  /** The last read and this instance's entry as it was in it. */
  #last: { stats: Stats; self: InstanceEntry } | null = null;
  #push: StatsPush;
  #stopped = false;
  #sampled = { minute: 0, open: -1 };
  /** Attempts this instance recorded that the last read does not hold. */
  #unread = new Unread();

  constructor(kv: Deno.Kv, registry: Registry<Member>, options: DeploymentStatsOptions) {
    this.#kv = kv;
    this.#registry = registry;
    this.#o = { minIntervalMs: 1000, heartbeatMs: 5000, ...options };
    this.#entry = new InstanceEntryWriter(kv, {
      logger: this.#o.logger,
      entry: () => this.#selfEntry(),
      heartbeatMs: this.#o.heartbeatMs,
    });
    this.#push = new StatsPush(registry);
    registry.onChange(() => this.changed());
  }

  /** Starts the heartbeat, which rewrites this instance's entry and re-reads the totals. */
  start(): void {
    this.#ticker = setInterval(() => this.changed(false), this.#o.heartbeatMs);
  }

  /** Stops the refresh and withdraws this instance's entry. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#ticker);
    clearTimeout(this.#timer);
    await this.#entry.stop();
    await this.#refreshing;
    await removeInstance(this.#kv, this.#o.instanceId).catch(() => {});
  }

  /**
   * The stats version moved to `versionstamp` (the feed saw it). A version
   * the latest read already holds is dropped: an attempt of ours is reported
   * twice (by the feed and the attempt log), and a second refresh for it
   * would only open a window that holds up the next real change.
   */
  versionChanged(versionstamp: string): void {
    if (this.#refreshing) {
      if (this.#again !== true && (this.#again === false || versionstamp > this.#again)) {
        this.#again = versionstamp;
      }
      return;
    }
    if (this.#covered !== null && versionstamp <= this.#covered) return;
    this.changed(false);
  }

  /**
   * Notes a change. `local` changes (this instance's connections) are
   * published with the next refresh; either way the refresh is coalesced.
   */
  changed(local = true): void {
    if (local) this.#entry.changed();
    if (this.#stopped || this.#timer !== undefined) return;
    // The refresh in flight may have read the store before this change.
    if (this.#refreshing) {
      this.#again = true;
      return;
    }
    const wait = this.#nextRefreshAt - Date.now();
    if (wait <= 0) this.#refreshing = this.#refresh();
    else {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.changed(false);
      }, wait);
    }
  }

  /** This instance's attempts, durable at `versionstamp`: counted and pushed at once. */
  attemptsRecorded(attempts: Attempt[], versionstamp: string): void {
    const unread = this.#covered === null || versionstamp > this.#covered;
    if (unread) this.#unread.add(versionstamp, attempts);
    if (unread && this.#last !== null && this.#windowOpen()) {
      // The last read plus what was committed here since is known without
      // reading, so it is pushed at once (after the batch's own answers).
      // The read that brings in the others follows when the window ends.
      this.#nextRefreshAt = Date.now() + this.#o.minIntervalMs;
      queueMicrotask(() => {
        if (!this.#stopped) this.#publish();
      });
    }
    this.versionChanged(versionstamp);
  }

  #windowOpen(): boolean {
    return !this.#stopped && !this.#refreshing && this.#timer === undefined &&
      Date.now() >= this.#nextRefreshAt;
  }

  /** The stats as last read, with this instance's own counts brought up to date. */
  async current(): Promise<Stats> {
    if (this.#last === null) await this.refreshNow();
    return this.#known();
  }

  /** Deployment-wide stats read from KV now (not the cache {@linkcode current} keeps). */
  async fresh(): Promise<Stats> {
    return await readStats(this.#kv, { self: this.#selfEntry(), startedAt: this.#o.startedAt });
  }

  /** Sends `member` the current stats: once on arrival, and as the answer to get_stats. */
  async sendTo(member: Member, options: { always: boolean }): Promise<void> {
    this.#push.sendTo(member, await this.current(), options);
  }

  /** Sends `member` the current presence (it just subscribed to it). */
  async sendPresenceTo(member: Member): Promise<void> {
    this.#push.sendPresenceTo(member, await this.current());
  }

  /** Refreshes at once (waiting for one in flight first). */
  async refreshNow(): Promise<void> {
    while (this.#refreshing) await this.#refreshing;
    this.#refreshing = this.#refresh();
    await this.#refreshing;
  }

  #selfEntry(): InstanceEntry {
    return { id: this.#o.instanceId, heartbeatAt: Date.now(), ...this.#registry.counts() };
  }

  #known(): Stats {
    const last = this.#last!;
    const stats = withUnread(
      withSelf(last.stats, last.self, this.#selfEntry()),
      this.#unread.total,
    );
    return { ...stats, uptimeS: Math.floor((stats.at - this.#o.startedAt) / 1000) };
  }

  async #refresh(): Promise<void> {
    try {
      const now = Date.now();
      // A refresh that pushes opens the window; one that finds nothing new
      // (a heartbeat, say) only spaces reads, so a change right after it is
      // not held up for a second.
      this.#nextRefreshAt = now + this.#o.minIntervalMs;
      const self = this.#selfEntry();
      this.#entry.beat(now);
      // The version first: whatever was committed before it, the lists see.
      const covered = (await this.#kv.get(statsVersionKey())).versionstamp;
      const stats = await readStats(this.#kv, { self, startedAt: this.#o.startedAt, now });
      this.#covered = covered;
      this.#last = { stats, self };
      if (covered !== null) this.#unread.readUpTo(covered);
      if (!this.#publish()) {
        this.#nextRefreshAt = now + Math.min(this.#o.minIntervalMs, READ_GAP_MS);
      }
      const minute = minuteOf(now);
      if (minute !== this.#sampled.minute || stats.connections.open !== this.#sampled.open) {
        this.#sampled = { minute, open: stats.connections.open };
        await sampleConnections(this.#kv, now, stats.connections.open);
      }
      if (now - this.#lastPrune > 60_000) {
        this.#lastPrune = now;
        await pruneStats(this.#kv, { retentionMs: this.#o.retentionDays * 86_400_000, now });
      }
    } catch (error) {
      this.#o.logger.warn("stats refresh failed", { error });
    } finally {
      this.#refreshing = null;
      const again = this.#again === true ||
        (this.#again !== false && (this.#covered === null || this.#again > this.#covered));
      this.#again = false;
      if (again) this.changed(false);
    }
  }

  /**
   * Pushes the current stats: the last read with this instance's counts as
   * they are now, so never older than what a socket was sent on arrival.
   */
  #publish(): boolean {
    return this.#push.publish(this.#known());
  }
}
