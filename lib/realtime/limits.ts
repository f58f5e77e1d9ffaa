import type { Attempt } from "../../shared/protocol.ts";
import { tooLarge } from "./frames.ts";

/** Abuse limits. Defaults suit one admin team; tests pass smaller ones. */
export interface Limits {
  /** Failed WebSocket auths per IP within the window before upgrades get 429. */
  wsFailuresPerIp: number;
  wsFailureWindowMs: number;
  /** Unauthenticated sockets one IP may hold open at once. */
  wsPendingPerIp: number;
  /** Sustained messages per second per socket, and the burst above it. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Unsent bytes a socket may queue before it is closed as a slow consumer. */
  slowConsumerBytes: number;
  /** Login requests per IP within the window. */
  loginPerIp: number;
  loginIpWindowMs: number;
  /** Failed logins of one account before it locks, then the first and longest lock. */
  loginFreeFailures: number;
  loginBaseLockMs: number;
  loginMaxLockMs: number;
  /** Metric pushes one API key (or one user's tokens) may make per window, per instance. */
  metricsPushesPerKey: number;
  metricsPushWindowMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  wsFailuresPerIp: 20,
  wsFailureWindowMs: 60_000,
  wsPendingPerIp: 16,
  messagesPerSecond: 20,
  messageBurst: 60,
  slowConsumerBytes: 1024 * 1024,
  loginPerIp: 30,
  loginIpWindowMs: 60_000,
  loginFreeFailures: 5,
  loginBaseLockMs: 5_000,
  loginMaxLockMs: 15 * 60_000,
  metricsPushesPerKey: 300,
  metricsPushWindowMs: 10_000,
};

/**
 * Counts events per key in fixed windows. Memory is bounded by the keys seen
 * in the current window: older entries are swept as time passes.
 */
export class WindowCounter {
  #limit: number;
  #windowMs: number;
  #entries = new Map<string, { start: number; count: number }>();
  #lastSweep = 0;

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  #entry(key: string, now: number) {
    if (now - this.#lastSweep > this.#windowMs) {
      this.#lastSweep = now;
      for (const [k, e] of this.#entries) {
        if (now - e.start >= this.#windowMs) this.#entries.delete(k);
      }
    }
    let entry = this.#entries.get(key);
    if (!entry || now - entry.start >= this.#windowMs) {
      entry = { start: now, count: 0 };
      this.#entries.set(key, entry);
    }
    return entry;
  }

  /** Counts one event for `key`. */
  hit(key: string, now = Date.now()): void {
    this.#entry(key, now).count++;
  }

  /** Milliseconds until `key` is under its limit again; 0 when it is now. */
  blockedFor(key: string, now = Date.now()): number {
    const entry = this.#entry(key, now);
    return entry.count >= this.#limit ? entry.start + this.#windowMs - now : 0;
  }
}

/** Counts what each key currently holds (open pending sockets per IP). */
export class Gauge {
  #counts = new Map<string, number>();

  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  add(key: string): void {
    this.#counts.set(key, this.get(key) + 1);
  }

  remove(key: string): void {
    const n = this.get(key) - 1;
    if (n > 0) this.#counts.set(key, n);
    else this.#counts.delete(key);
  }
}

/** A token bucket: `rate` per second sustained, `burst` at once. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  constructor(rate: number, burst: number, now = performance.now()) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /** Takes one token; false when the bucket is empty. */
  take(now = performance.now()): boolean {
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * this.#rate / 1000);
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

/**
 * The limit a client message breaks, checked before anything queues or parses
 * it: over `maxBytes`, or over the socket's rate (which takes a token from
 * `bucket`); null within both.
 */
export function overLimit(
  data: unknown,
  maxBytes: number,
  bucket: TokenBucket,
): "message_too_large" | "rate_limited" | null {
  return tooLarge(data, maxBytes) ? "message_too_large" : !bucket.take() ? "rate_limited" : null;
}

/**
 * One unauthenticated socket's place under its IP's cap. It is taken before
 * the upgrade is answered and released once: when the socket authenticates,
 * closes, or its upgrade is refused.
 */
export interface PendingSlot {
  release(): void;
}

/** What {@linkcode IpGuard.admit} answers. */
export type Admission =
  | { ok: true; slot: PendingSlot }
  | {
    ok: false;
    retryAfterMs: number;
    /** Whether this refusal is the first of its burst, and so the one to record. */
    record: boolean;
  };

/**
 * The per-IP gate in front of `/admin/ws`: too many failed authentications,
 * or too many sockets still unauthenticated, and upgrades get 429.
 */
export class IpGuard {
  readonly pending = new Gauge();
  #failures: WindowCounter;
  #pendingCap: number;
  /** One `rate_limited` record per IP per window: a burst is logged once. */
  #noted: WindowCounter;

  constructor(limits: Pick<Limits, "wsFailuresPerIp" | "wsFailureWindowMs" | "wsPendingPerIp">) {
    this.#failures = new WindowCounter(limits.wsFailuresPerIp, limits.wsFailureWindowMs);
    this.#noted = new WindowCounter(1, limits.wsFailureWindowMs);
    this.#pendingCap = limits.wsPendingPerIp;
  }

  /** Counts a failed authentication from `ip`. */
  failed(ip: string): void {
    this.#failures.hit(ip);
  }

  /**
   * Counts the failures among durable attempts against their IPs. A
   * `rate_limited` refusal is not counted: it would keep an IP that waits
   * out its limit blocked for as long as it keeps asking. Nor is
   * `key_unavailable`: the identity provider being down is no client's fault.
   */
  recorded(
    attempts: readonly (Pick<Attempt, "ip" | "outcome" | "reason"> & { transport?: string })[],
  ): void {
    for (const a of attempts) {
      // Logins have their own per-IP and per-account limits (routes/auth.tsx):
      // a mistyped password must not also hold the address off the socket.
      // An identity provider that cannot be reached is not the client's fault.
      if (
        a.outcome === "failure" && a.reason !== "rate_limited" && a.reason !== "key_unavailable" &&
        a.transport !== "login"
      ) {
        this.failed(a.ip);
      }
    }
  }

  /**
   * Admits an upgrade from `ip` and takes its pending slot in the same
   * synchronous step, or refuses it with how long to wait. Counting a
   * socket only once it was open let upgrades in flight all pass the cap.
   */
  admit(ip: string, now = Date.now()): Admission {
    let wait = this.#failures.blockedFor(ip, now);
    if (wait === 0 && this.pending.get(ip) >= this.#pendingCap) wait = 1000;
    if (wait === 0) {
      this.pending.add(ip);
      let held = true;
      const slot: PendingSlot = {
        release: () => {
          if (!held) return;
          held = false;
          this.pending.remove(ip);
        },
      };
      return { ok: true, slot };
    }
    return { ok: false, ...this.#refusal(ip, wait, now) };
  }

  /**
   * Refuses `ip` while it is over its failed authentications (an HTTP
   * request holds no pending slot, so only failures count), or answers null.
   */
  overFailures(ip: string, now = Date.now()): { retryAfterMs: number; record: boolean } | null {
    const wait = this.#failures.blockedFor(ip, now);
    return wait === 0 ? null : this.#refusal(ip, wait, now);
  }

  #refusal(ip: string, wait: number, now: number): { retryAfterMs: number; record: boolean } {
    const record = this.#noted.blockedFor(ip, now) === 0;
    if (record) this.#noted.hit(ip, now);
    return { retryAfterMs: wait, record };
  }
}
