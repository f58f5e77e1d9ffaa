import { loginFailuresKey } from "../store/keys.ts";
import type { Limits } from "../realtime/limits.ts";

interface Failures {
  count: number;
  lockedUntil: number;
}

/** Failure records are forgotten this long after the last failure. */
const FORGET_AFTER_MS = 60 * 60_000;
/** Commits tried per reservation when other instances write the same account. */
const MAX_COMMITS = 8;

/** The answer of {@linkcode LoginGuard.reserve}. */
export type LoginReservation =
  | { admitted: true }
  | {
    admitted: false;
    retryAfterMs: number;
    /** Locked after failures, or only too contended to count the guess this time. */
    why: "locked" | "contended";
  };

/**
 * The account lockout of `POST /auth/login`. Each password check is
 * reserved before it runs: the reservation counts the guess as a failure in
 * KV (so it holds on every instance) and sets the lock it would cause, and a
 * success then clears the count. Counting after the check instead let
 * concurrent guesses all pass the read of the lock before any was counted.
 */
export class LoginGuard {
  #kv: Deno.Kv;
  #limits: Pick<Limits, "loginFreeFailures" | "loginBaseLockMs" | "loginMaxLockMs">;
  /** Per account, the last reservation of this instance: they run one at a time. */
  #tails = new Map<string, Promise<void>>();

  constructor(
    kv: Deno.Kv,
    limits: Pick<Limits, "loginFreeFailures" | "loginBaseLockMs" | "loginMaxLockMs">,
  ) {
    this.#kv = kv;
    this.#limits = limits;
  }

  /**
   * Reserves one password check for `name`. Past `loginFreeFailures`
   * failures the account is locked, each lock twice as long as the one
   * before, up to a ceiling; while it is locked no check is admitted.
   */
  reserve(name: string): Promise<LoginReservation> {
    // Serialized per account on this instance, so its own concurrent
    // requests never contend for the commit; other instances are held off
    // by the versionstamp check.
    return this.#serial(name, () => this.#reserve(name));
  }

  /** Forgets the failures of `name` after a successful login. */
  async succeeded(name: string): Promise<void> {
    await this.#kv.delete(loginFailuresKey(name));
  }

  async #reserve(name: string): Promise<LoginReservation> {
    const key = loginFailuresKey(name);
    const limits = this.#limits;
    for (let tries = 0; tries < MAX_COMMITS; tries++) {
      const now = Date.now();
      const entry = await this.#kv.get<Failures>(key);
      const lockedMs = entry.value ? entry.value.lockedUntil - now : 0;
      if (lockedMs > 0) return { admitted: false, retryAfterMs: lockedMs, why: "locked" };
      const count = (entry.value?.count ?? 0) + 1;
      const over = count - limits.loginFreeFailures;
      const lockMs = over >= 0
        ? Math.min(limits.loginMaxLockMs, limits.loginBaseLockMs * 2 ** Math.min(over, 30))
        : 0;
      const next: Failures = { count, lockedUntil: lockMs ? now + lockMs : 0 };
      const result = await this.#kv.atomic().check(entry).set(key, next, {
        expireIn: FORGET_AFTER_MS + lockMs,
      }).commit();
      if (result.ok) return { admitted: true };
      // Another instance counted a guess meanwhile: read again, after a
      // short random pause so the instances do not collide in step.
      await new Promise((r) => setTimeout(r, 1 + Math.random() * 10 * (tries + 1)));
    }
    // Not counted, so not checked: refusing is the safe answer.
    return { admitted: false, retryAfterMs: 1000, why: "contended" };
  }

  async #serial<T>(name: string, task: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = before.then(() => mine);
    this.#tails.set(name, tail);
    await before;
    try {
      return await task();
    } finally {
      release();
      if (this.#tails.get(name) === tail) this.#tails.delete(name);
    }
  }
}
