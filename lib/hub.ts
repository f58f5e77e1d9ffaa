import type { Attempt, EventName, PresenceEntry, Stats, User } from "./protocol.ts";
import {
  type InstanceEntry,
  pruneStats,
  readStats,
  removeInstance,
  withSelf,
  writeInstance,
} from "./stats.ts";
import type { Logger } from "./log.ts";
import { minuteOf, sampleConnections } from "./history.ts";
import { revocationCovers, type RevocationEvent } from "./revocation.ts";
import type { AccessClaims } from "./tokens.ts";
import { CLOSE_CODES } from "./protocol.ts";
import { statsVersionKey } from "./kv_keys.ts";

/** What the hub needs of a connection. */
export interface Member {
  readonly id: string;
  readonly state: "pending" | "authenticated" | "closed";
  readonly user: User | null;
  readonly claims: AccessClaims | null;
  /** What it is subscribed to (the hub is told of changes with subscriptions()). */
  readonly events: ReadonlySet<EventName>;
  /** Sends an already serialized message. */
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Closes, resolving once the close handshake is done. */
  closeAndWait(code: number, reason: string): Promise<void>;
}

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  instanceId: string;
  startedAt: number;
  retentionDays: number;
  logger: Logger;
  /** Fastest rate of stats pushes (ms between them). */
  minIntervalMs?: number;
  /** How often this instance rewrites its entry even when nothing changed. */
  heartbeatMs?: number;
  /** The BroadcastChannel instances of one deployment share (workers, isolates). */
  channel?: string;
  /** Called with a revocation another instance announced, before its sockets close. */
  onRevocation?: (event: RevocationEvent) => void;
  /**
   * Resolves once this instance's attempt commit in flight, if any, has been
   * reported to {@linkcode Hub.attemptsRecorded} (`AttemptLog.settled`).
   * kv.watch can see a commit before the attempt log's report of it; waiting
   * lets the report, which carries the versionstamp, come first.
   */
  ownCommitsSettled?: () => Promise<void>;
}

/** What instances tell each other over the BroadcastChannel; `from` is the sender. */
type Signal =
  & { from: string }
  & (
    | { type: "changed"; versionstamp?: string }
    | { type: "alive" }
    | { type: "attempts"; attempts: Attempt[] }
    | { type: "revoked"; event: RevocationEvent }
  );

/** Shortest gap between two reads when the first pushed nothing. */
const READ_GAP_MS = 100;

/** A peer not heard from for this long is taken to be gone (it signals every heartbeat). */
const PEER_SILENCE_MS = 15_000;

/**
 * The connections of this instance and the fanout to them. Each update is
 * serialized once and the same string is sent to every subscriber. Stats are
 * recomputed from KV (so they cover every instance) when something changed,
 * and pushed only when they changed, at most once per `minIntervalMs`.
 */
export class Hub {
  #kv: Deno.Kv;
  #o: Required<HubOptions>;
  #members = new Set<Member>();
  #pending = new Set<Member>();
  #authed = new Set<Member>();
  #users = new Map<string, PresenceEntry>();
  #subs: Record<EventName, Set<Member>> = {
    stats: new Set(),
    attempts: new Set(),
    presence: new Set(),
  };
  #dirty = true;
  #lastHeartbeat = 0;
  /** When the next refresh may start: see {@linkcode changed}. */
  #nextRefreshAt = 0;
  #refreshing: Promise<void> | null = null;
  /**
   * The stats version (its versionstamp) the latest read started from: every
   * commit up to it is in that read, so a kv.watch wake-up for it or an
   * older one needs no read of its own.
   */
  #covered: string | null = null;
  /** A change came while a refresh was reading: another refresh must follow. */
  #again = false;
  /**
   * The newest commit reported while a refresh was reading. Another refresh
   * follows only if it is newer than the version that refresh read from
   * (which is not known until its first read returns).
   */
  #againFrom: string | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #lastPrune = 0;
  #statsSignature = "";
  #presenceSignature = "";
  /**
   * The last stats read, this instance's entry as it was in them, and the
   * stats version (its versionstamp) the read started from.
   */
  #last: { stats: Stats; self: InstanceEntry; covered: string | null } | null = null;
  #stopped = false;
  #sampled = { minute: 0, open: -1 };
  #writing: Promise<void> | null = null;
  /** Attempts this instance recorded that the last read does not hold. */
  #unread = new Unread();
  /** When each other instance on the channel was last heard from. */
  #peers = new Map<string, number>();
  #channel: BroadcastChannel | null = null;
  #watch: ReadableStream<Deno.KvEntryMaybe<unknown>[]> | null = null;

  constructor(kv: Deno.Kv, options: HubOptions) {
    this.#kv = kv;
    this.#o = {
      minIntervalMs: 1000,
      heartbeatMs: 5000,
      channel: "lookout",
      onRevocation: () => {},
      ownCommitsSettled: () => Promise.resolve(),
      ...options,
    };
  }

  /** This instance's id. */
  get instanceId(): string {
    return this.#o.instanceId;
  }

  /**
   * Starts listening for changes: other instances' signals on the
   * BroadcastChannel (workers of this process, and Deno Deploy isolates),
   * `kv.watch` on the stats version (every commit that changes the stats
   * bumps it), and a heartbeat that rewrites this instance's entry and
   * re-reads the totals, which also notices instances that died.
   */
  start(): void {
    this.#channel = new BroadcastChannel(this.#o.channel);
    this.#channel.onmessage = (e: MessageEvent<Signal>) => this.#heard(e.data);
    this.#watch = this.#kv.watch([statsVersionKey()]);
    this.#watch.pipeTo(
      new WritableStream({
        write: async ([entry]) => {
          await this.#o.ownCommitsSettled();
          this.#woken(entry.versionstamp);
        },
      }),
    ).catch(() => {});
    this.#ticker = setInterval(() => this.changed(false), this.#o.heartbeatMs);
    // Say hello, so peers know there is someone to send attempts to.
    this.#signal({ type: "changed" });
  }

  /**
   * A commit at `versionstamp` changed the stats: kv.watch saw the version
   * move, a peer announced its entry, or this instance recorded attempts.
   * One the latest read already covers is dropped. An attempt's commit
   * reaches here twice (kv.watch and the attempt log), and a second refresh
   * for it would only open a coalescing window that holds up the next real
   * change. `null` (not known) always refreshes.
   */
  #woken(versionstamp: string | null): void {
    if (versionstamp !== null && this.#refreshing) {
      if (this.#againFrom === null || versionstamp > this.#againFrom) {
        this.#againFrom = versionstamp;
      }
      return;
    }
    if (versionstamp !== null && this.#covered !== null && versionstamp <= this.#covered) return;
    this.changed(false);
  }

  /** Tells the other instances about revoked tokens or sessions. */
  broadcastRevocation(event: RevocationEvent): void {
    this.#signal({ type: "revoked", event });
  }

  #signal(signal: DistributiveOmit<Signal, "from">): void {
    try {
      this.#channel?.postMessage({ ...signal, from: this.#o.instanceId });
    } catch {
      // Closed while stopping.
    }
  }

  #heard(signal: Signal): void {
    // A newcomer learns of us from our answer to its first word.
    if (!this.#peers.has(signal.from)) this.#signal({ type: "changed" });
    this.#peers.set(signal.from, Date.now());
    if (signal.type === "changed") this.#woken(signal.versionstamp ?? null);
    else if (signal.type === "attempts") this.#sendAttempts(signal.attempts);
    else if (signal.type === "revoked") {
      this.#o.onRevocation(signal.event);
      this.revoked(signal.event);
    }
  }

  /** Stops the refresh and withdraws this instance's entry. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#ticker);
    clearTimeout(this.#timer);
    await this.#writing;
    this.#channel?.close();
    await this.#watch?.cancel().catch(() => {});
    await this.#refreshing;
    await removeInstance(this.#kv, this.#o.instanceId).catch(() => {});
  }

  /** Every connection of this instance. */
  members(): Iterable<Member> {
    return this.#members;
  }

  // Counts, presence and subscribers are kept as connections change, not
  // found by walking every member: that walk ran for each new socket and
  // each attempt, which made a ramp to 10k sockets quadratic.

  /** A socket opened; it is pending until {@linkcode authenticated}. */
  add(member: Member): void {
    this.#members.add(member);
    this.#pending.add(member);
    this.changed();
  }

  /** A member authenticated (its `user` is set), subscribed to `events`. */
  authenticated(member: Member, events: ReadonlySet<EventName>): void {
    if (!this.#members.has(member) || this.#authed.has(member)) return;
    this.#pending.delete(member);
    this.#authed.add(member);
    this.#online(member.user!, +1);
    this.subscriptions(member, events);
    this.changed();
  }

  /** A member re-authenticated as `before` → its current `user` (the role may change). */
  userChanged(member: Member, before: User): void {
    if (!this.#authed.has(member)) return;
    this.#online(before, -1);
    this.#online(member.user!, +1);
    this.changed();
  }

  /** A member's subscriptions are now `events`. */
  subscriptions(member: Member, events: ReadonlySet<EventName>): void {
    if (!this.#authed.has(member)) return;
    for (const [event, set] of Object.entries(this.#subs) as [EventName, Set<Member>][]) {
      if (events.has(event)) set.add(member);
      else set.delete(member);
    }
  }

  /** A socket closed. */
  remove(member: Member): void {
    if (!this.#members.delete(member)) return;
    this.#pending.delete(member);
    if (this.#authed.delete(member)) this.#online(member.user!, -1);
    for (const set of Object.values(this.#subs)) set.delete(member);
    this.changed();
  }

  #online(user: User, delta: number): void {
    const entry = this.#users.get(user.name);
    if (entry) {
      entry.connections += delta;
      entry.role = user.role;
      if (entry.connections <= 0) this.#users.delete(user.name);
    } else if (delta > 0) {
      this.#users.set(user.name, { name: user.name, role: user.role, connections: delta });
    }
  }

  /**
   * Notes a change. `local` changes (this instance's connections) are
   * published with the next refresh; either way the refresh is coalesced.
   */
  changed(local = true): void {
    if (local) this.#dirty = true;
    if (this.#stopped || this.#timer !== undefined) return;
    // The refresh in flight may have read the store before this change, so
    // it is not enough: one more follows it (several changes share one).
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

  /** Closes every socket whose token, session or user a revocation covers. */
  revoked(event: RevocationEvent): number {
    let closed = 0;
    for (const m of [...this.#authed]) {
      const c = m.claims;
      if (!c) continue;
      if (revocationCovers(event, c)) {
        m.close(CLOSE_CODES.revoked, "revoked");
        closed++;
      }
    }
    return closed;
  }

  /**
   * Sends each durable attempt to `attempts` subscribers, and updates stats.
   * `versionstamp` is that of the commit that wrote them.
   */
  attemptsRecorded(attempts: Attempt[], versionstamp: string): void {
    const last = this.#last?.covered ?? null;
    const unread = last === null || versionstamp > last;
    if (unread) this.#unread.add(versionstamp, attempts);
    this.#sendAttempts(attempts);
    // The other instances' subscribers see them too; with no other instance
    // on the channel, the structured clone is skipped.
    if (this.#hasPeers()) this.#signal({ type: "attempts", attempts });
    if (unread && this.#last !== null && this.#windowOpen()) {
      // This instance's own commit: the last read plus what was committed
      // here since is known without reading, so it is pushed at once (after
      // the batch's own answers). The read that brings in the other
      // instances follows when the window this push opens ends.
      this.#nextRefreshAt = Date.now() + this.#o.minIntervalMs;
      queueMicrotask(() => {
        if (!this.#stopped) this.#publish(this.#known());
      });
    }
    this.#woken(versionstamp);
  }

  /** Whether a push may go now: none in the last second, no read running or due. */
  #windowOpen(): boolean {
    return !this.#stopped && !this.#refreshing && this.#timer === undefined &&
      Date.now() >= this.#nextRefreshAt;
  }

  #hasPeers(): boolean {
    const now = Date.now();
    for (const [id, at] of this.#peers) {
      if (now - at < PEER_SILENCE_MS) return true;
      this.#peers.delete(id);
    }
    return false;
  }

  #sendAttempts(attempts: Attempt[]): void {
    for (const attempt of attempts) {
      const text = JSON.stringify({ type: "attempt", data: attempt });
      for (const m of this.#subs.attempts) m.send(text);
    }
  }

  /**
   * The current stats: the last deployment-wide read with this instance's
   * own counts brought up to date. Reads KV only when nothing was read yet.
   */
  async current(): Promise<Stats> {
    if (this.#last === null) await this.refreshNow();
    return this.#known();
  }

  /** {@linkcode current} once a read has landed. */
  #known(): Stats {
    const last = this.#last!;
    const stats = withUnread(
      withSelf(last.stats, last.self, this.#selfEntry()),
      this.#unread.total,
    );
    return { ...stats, uptimeS: Math.floor((stats.at - this.#o.startedAt) / 1000) };
  }

  /** A `stats_update` message of {@linkcode current}. */
  async statsMessage(): Promise<string> {
    return JSON.stringify({ type: "stats_update", data: await this.current() });
  }

  /** A `presence` message of {@linkcode current}. */
  async presenceMessage(): Promise<string> {
    const { presence } = await this.current();
    return JSON.stringify({ type: "presence", data: { online: presence } });
  }

  /** Fresh deployment-wide stats, read now. */
  async stats(): Promise<Stats> {
    return await readStats(this.#kv, {
      self: this.#selfEntry(),
      startedAt: this.#o.startedAt,
    });
  }

  /** Refreshes at once (waiting for one in flight first). */
  async refreshNow(): Promise<void> {
    while (this.#refreshing) await this.#refreshing;
    this.#refreshing = this.#refresh();
    await this.#refreshing;
  }

  #selfEntry(): InstanceEntry {
    return {
      id: this.#o.instanceId,
      heartbeatAt: Date.now(),
      open: this.#members.size,
      authenticated: this.#authed.size,
      pending: this.#pending.size,
      presence: [...this.#users.values()].map((p) => ({ ...p })),
    };
  }

  async #refresh(): Promise<void> {
    try {
      const now = Date.now();
      // A refresh that pushes opens the one-second window; one that finds
      // nothing new (a heartbeat, say) only spaces reads, so that a change
      // right after it is not held up for a second.
      this.#nextRefreshAt = now + this.#o.minIntervalMs;
      const self = this.#selfEntry();
      // The heartbeat write runs beside the reads and pushes: the read uses
      // this instance's own entry from memory, and a write slowed by a busy
      // store must not hold up the next refresh. One write at a time; a
      // change that comes meanwhile is written by a later refresh.
      if (
        this.#writing === null &&
        (this.#dirty || now - this.#lastHeartbeat >= this.#o.heartbeatMs)
      ) {
        const announce = this.#dirty;
        this.#dirty = false;
        this.#lastHeartbeat = now;
        this.#writing = this.#write(self, announce);
      }
      // The version first: whatever was committed before it, the lists see.
      const previous = this.#covered;
      let stats: Stats;
      let covered: string | null;
      try {
        covered = this.#covered = (await this.#kv.get(statsVersionKey())).versionstamp;
        stats = await readStats(this.#kv, { self, startedAt: this.#o.startedAt, now });
      } catch (error) {
        this.#covered = previous;
        throw error;
      }
      this.#last = { stats, self, covered };
      if (covered !== null) this.#unread.readUpTo(covered);
      if (!this.#publish(stats)) {
        this.#nextRefreshAt = now + Math.min(this.#o.minIntervalMs, READ_GAP_MS);
      }
      const minute = minuteOf(now);
      if (minute !== this.#sampled.minute || stats.connections.open !== this.#sampled.open) {
        this.#sampled = { minute, open: stats.connections.open };
        await sampleConnections(this.#kv, now, stats.connections.open);
      }
      if (now - this.#lastPrune > 60_000) {
        this.#lastPrune = now;
        await pruneStats(this.#kv, {
          retentionMs: this.#o.retentionDays * 86_400_000,
          now,
        });
      }
    } catch (error) {
      this.#o.logger.warn("stats refresh failed", { error });
    } finally {
      this.#refreshing = null;
      const again = this.#again ||
        (this.#againFrom !== null && (this.#covered === null || this.#againFrom > this.#covered));
      this.#again = false;
      this.#againFrom = null;
      if (again) this.changed(false);
    }
  }

  /**
   * Writes this instance's entry; see {@linkcode #refresh}. Only a changed
   * entry is `announce`d to the other instances; a heartbeat only says the
   * instance is alive.
   */
  async #write(self: InstanceEntry, announce: boolean): Promise<void> {
    try {
      const versionstamp = await writeInstance(this.#kv, self, { announce });
      this.#signal(announce ? { type: "changed", versionstamp } : { type: "alive" });
    } catch (error) {
      // Written again with the next change or heartbeat, not at once: a
      // store that is down gets one try, and one warning, per beat.
      this.#dirty = true;
      this.#o.logger.warn("cannot write this instance's entry", { error });
      return;
    } finally {
      this.#writing = null;
    }
    // A change that came during the write is not in it: write again.
    if (this.#dirty) this.changed(false);
  }

  /** Pushes what changed since the last push; says whether anything had. */
  #publish(stats: Stats): boolean {
    const { at: _at, uptimeS: _up, ...rest } = stats;
    const signature = JSON.stringify(rest);
    let pushed = false;
    if (signature !== this.#statsSignature) {
      this.#statsSignature = signature;
      pushed = true;
      // Serialized once, sent as the same string to every subscriber.
      const message = JSON.stringify({ type: "stats_update", data: stats });
      for (const m of this.#subs.stats) m.send(message);
    }
    const presence = JSON.stringify(stats.presence);
    if (presence !== this.#presenceSignature) {
      this.#presenceSignature = presence;
      pushed = true;
      const message = JSON.stringify({ type: "presence", data: { online: stats.presence } });
      for (const m of this.#subs.presence) m.send(message);
    }
    return pushed;
  }
}

/**
 * `stats` with attempts it has not read yet added to its counters; without
 * this the first `stats_update` after `authenticated` would miss the very
 * attempt that authenticated.
 */
function withUnread(stats: Stats, unread: Counts): Stats {
  if (unread.success === 0 && unread.failure === 0) return stats;
  const a = stats.attempts;
  const byReason = { ...a.byReason };
  for (const [reason, n] of Object.entries(unread.byReason)) {
    byReason[reason] = (byReason[reason] ?? 0) + n;
  }
  return {
    ...stats,
    attempts: {
      total: a.total + unread.success + unread.failure,
      success: a.success + unread.success,
      failure: a.failure + unread.failure,
      byReason,
      lastMinute: {
        success: a.lastMinute.success + unread.success,
        failure: a.lastMinute.failure + unread.failure,
      },
    },
  };
}

/** Counts of attempts by outcome and failure reason. */
interface Counts {
  success: number;
  failure: number;
  byReason: Record<string, number>;
}

/**
 * Attempts this instance committed that the last stats read does not hold,
 * by commit. A read that started from stats version V holds every commit up
 * to V, so those batches drop out when it lands; `total` is kept as batches
 * come and go, so reading it costs nothing per connect.
 */
class Unread {
  readonly total: Counts = { success: 0, failure: 0, byReason: {} };
  /** In commit order: this instance commits one batch at a time. */
  #batches: { versionstamp: string; counts: Counts }[] = [];

  add(versionstamp: string, attempts: Attempt[]): void {
    const counts: Counts = { success: 0, failure: 0, byReason: {} };
    for (const a of attempts) {
      if (a.outcome === "success") counts.success++;
      else {
        counts.failure++;
        counts.byReason[a.reason] = (counts.byReason[a.reason] ?? 0) + 1;
      }
    }
    this.#batches.push({ versionstamp, counts });
    this.#apply(counts, 1);
  }

  /** Drops the batches a read from stats version `versionstamp` holds. */
  readUpTo(versionstamp: string): void {
    let n = 0;
    while (n < this.#batches.length && this.#batches[n].versionstamp <= versionstamp) {
      this.#apply(this.#batches[n].counts, -1);
      n++;
    }
    if (n > 0) this.#batches.splice(0, n);
  }

  #apply(counts: Counts, sign: 1 | -1): void {
    const t = this.total;
    t.success += sign * counts.success;
    t.failure += sign * counts.failure;
    for (const [reason, n] of Object.entries(counts.byReason)) {
      const left = (t.byReason[reason] ?? 0) + sign * n;
      if (left === 0) delete t.byReason[reason];
      else t.byReason[reason] = left;
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
