import { loginFailuresKey } from "./kv_keys.ts";
import type { Limits } from "./limits.ts";

interface Failures {
  count: number;
  lockedUntil: number;
}

/** Failure records are forgotten this long after the last failure. */
const FORGET_AFTER_MS = 60 * 60_000;

/**
 * Milliseconds the account `name` stays locked after failed logins, or 0.
 * The lock is kept in KV, so it holds on every instance.
 */
export async function lockedFor(kv: Deno.Kv, name: string, now = Date.now()): Promise<number> {
  const failures = (await kv.get<Failures>(loginFailuresKey(name))).value;
  return failures ? Math.max(0, failures.lockedUntil - now) : 0;
}

/**
 * Counts a failed login for `name`. Past `loginFreeFailures`, each failure
 * locks the account for twice as long as the one before, up to a ceiling.
 * Returns how long it is now locked.
 */
export async function noteLoginFailure(
  kv: Deno.Kv,
  name: string,
  limits: Pick<Limits, "loginFreeFailures" | "loginBaseLockMs" | "loginMaxLockMs">,
  now = Date.now(),
): Promise<number> {
  const key = loginFailuresKey(name);
  for (let tries = 0; tries < 5; tries++) {
    const entry = await kv.get<Failures>(key);
    const count = (entry.value?.count ?? 0) + 1;
    const over = count - limits.loginFreeFailures;
    const lockMs = over >= 0
      ? Math.min(limits.loginMaxLockMs, limits.loginBaseLockMs * 2 ** Math.min(over, 30))
      : 0;
    const next: Failures = { count, lockedUntil: lockMs ? now + lockMs : 0 };
    const result = await kv.atomic().check(entry).set(key, next, {
      expireIn: FORGET_AFTER_MS + lockMs,
    }).commit();
    if (result.ok) return lockMs;
  }
  throw new Error(`Cannot count the failed login: ${name} is contended`);
}

/** Forgets the failures of `name` after a successful login. */
export async function clearLoginFailures(kv: Deno.Kv, name: string): Promise<void> {
  await kv.delete(loginFailuresKey(name));
}
