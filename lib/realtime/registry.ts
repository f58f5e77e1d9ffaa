/**
 * The registry tracks the sockets of this instance and fans messages out to
 * them. It knows nothing of other instances: what they need to learn goes
 * through KV (lib/realtime/feed.ts), and what they tell us arrives there.
 */
import type { EventName, PresenceEntry, User } from "../../shared/protocol.ts";
import type { AccessClaims } from "../auth/tokens.ts";

/** What the registry needs of a connection. */
export interface Member {
  readonly id: string;
  readonly user: User | null;
  readonly claims: AccessClaims | null;
  /** What it is subscribed to (the registry is told of changes with subscriptions()). */
  readonly events: ReadonlySet<EventName>;
  /** Sends an already serialized message. */
  send(text: string): void;
  close(code: number, reason: string): void;
  /** Closes, resolving once the close handshake is done. */
  closeAndWait(code: number, reason: string): Promise<void>;
}

/**
 * What happened to one authenticated member: it authenticated, it
 * re-authenticated (a new expiry, maybe a new role), or it left.
 */
export type MemberChange = "authenticated" | "renewed" | "removed";

/** This instance's own counts, as its entry in KV publishes them. */
export interface LocalCounts {
  open: number;
  authenticated: number;
  pending: number;
  presence: PresenceEntry[];
}

/**
 * The connections of this instance, their subscriptions and presence.
 * Counts, presence and subscribers are kept as connections change, not found
 * by walking every member: that walk ran for each new socket and each
 * attempt, which made a ramp to 10k sockets quadratic.
 */
export class Registry<M extends Member = Member> {
  #members = new Set<M>();
  #pending = new Set<M>();
  #authed = new Set<M>();
  #users = new Map<string, PresenceEntry>();
  #subs: Record<EventName, Set<M>> = {
    stats: new Set(),
    attempts: new Set(),
    presence: new Set(),
    metrics: new Set(),
  };
  #listeners: (() => void)[] = [];
  #memberListeners: ((member: Member, change: MemberChange) => void)[] = [];
  /** Since when each event has had subscribers without a break (epoch ms). */
  #since: Record<EventName, number | null> = {
    stats: null,
    attempts: null,
    presence: null,
    metrics: null,
  };

  /** Calls `listener` after every change of the counts or presence. */
  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Calls `listener` with each authenticated member that changed (the
   * connections list). It takes a Member, not an M: an M there would make a
   * Registry<Connection> no longer a Registry<Member> to TypeScript.
   */
  onMember(listener: (member: Member, change: MemberChange) => void): void {
    this.#memberListeners.push(listener);
  }

  /** Every connection of this instance. */
  members(): Iterable<M> {
    return this.#members;
  }

  /** A socket opened; it is pending until {@linkcode authenticated}. */
  add(member: M): void {
    this.#members.add(member);
    this.#pending.add(member);
    this.#changed();
  }

  /** A member authenticated (its `user` is set), subscribed to `events`. */
  authenticated(member: M, events: ReadonlySet<EventName>): void {
    if (!this.#members.has(member) || this.#authed.has(member)) return;
    this.#pending.delete(member);
    this.#authed.add(member);
    this.#online(member.user!, +1);
    this.subscriptions(member, events);
    this.#changed();
    this.#memberChanged(member, "authenticated");
  }

  /** A member re-authenticated as `before` → its current `user` (the role may change). */
  userChanged(member: M, before: User): void {
    if (!this.#authed.has(member)) return;
    this.#online(before, -1);
    this.#online(member.user!, +1);
    this.#changed();
    this.#memberChanged(member, "renewed");
  }

  /** A member re-authenticated as the same user and role (a new expiry). */
  renewed(member: M): void {
    if (this.#authed.has(member)) this.#memberChanged(member, "renewed");
  }

  /** A member's subscriptions are now `events`. */
  subscriptions(member: M, events: ReadonlySet<EventName>): void {
    if (!this.#authed.has(member)) return;
    for (const [event, set] of Object.entries(this.#subs) as [EventName, Set<M>][]) {
      if (events.has(event)) set.add(member);
      else set.delete(member);
      this.#noteSince(event);
    }
  }

  /** A socket closed. */
  remove(member: M): void {
    if (!this.#members.delete(member)) return;
    this.#pending.delete(member);
    const authed = this.#authed.delete(member);
    if (authed) this.#online(member.user!, -1);
    for (const [event, set] of Object.entries(this.#subs) as [EventName, Set<M>][]) {
      set.delete(member);
      this.#noteSince(event);
    }
    this.#changed();
    if (authed) this.#memberChanged(member, "removed");
  }

  /** This instance's counts and presence, now. */
  counts(): LocalCounts {
    return {
      open: this.#members.size,
      authenticated: this.#authed.size,
      pending: this.#pending.size,
      presence: [...this.#users.values()].map((p) => ({ ...p })),
    };
  }

  /** Whether any socket here is subscribed to `event`. */
  hasSubscribers(event: EventName): boolean {
    return this.#subs[event].size > 0;
  }

  /** Since when `event` has had subscribers here without a break; null when it has none. */
  subscribedSince(event: EventName): number | null {
    return this.#since[event];
  }

  #noteSince(event: EventName): void {
    if (this.#subs[event].size === 0) this.#since[event] = null;
    else this.#since[event] ??= Date.now();
  }

  /** The subscribers of `event`, for a fanout that sends to each at most once. */
  subscribers(event: EventName): Iterable<M> {
    return this.#subs[event];
  }

  /** Sends one serialized message to every subscriber of `event`. */
  publish(event: EventName, text: string): void {
    for (const m of this.#subs[event]) m.send(text);
  }

  /** Closes every authenticated socket whose claims `covered` says yes to; returns how many. */
  closeWhere(covered: (claims: AccessClaims) => boolean, code: number, reason: string): number {
    let closed = 0;
    for (const m of [...this.#authed]) {
      if (m.claims && covered(m.claims)) {
        m.close(code, reason);
        closed++;
      }
    }
    return closed;
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

  #memberChanged(member: M, change: MemberChange): void {
    for (const listener of this.#memberListeners) listener(member, change);
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}
