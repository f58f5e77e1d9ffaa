import type { Role } from "../../shared/protocol.ts";
import { sessionKey } from "../store/keys.ts";
import { userRevokedAt } from "./revocation.ts";

/** A login session. Its `id` is public (a hash); the cookie holds the secret. */
export interface Session {
  id: string;
  user: string;
  role: Role;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute end, whatever the activity. */
  expiresAt: number;
}

/** How long a session lives without use, and at most. */
export interface SessionTimeouts {
  idleMs: number;
  maxAgeMs: number;
}

/** Activity is written back at most this often, to spare KV a write per request. */
const TOUCH_EVERY_MS = 60_000;
const SECRET = /^[A-Za-z0-9_-]{43}$/;

/** The public id of a session secret: SHA-256, base64url. KV never sees the secret. */
export async function sessionIdOf(secret: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
  return new Uint8Array(digest).toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Starts a session; returns the cookie secret (256 random bits) and the record. */
export async function createSession(
  kv: Deno.Kv,
  user: { name: string; role: Role },
  timeouts: SessionTimeouts,
): Promise<{ secret: string; session: Session }> {
  const secret = crypto.getRandomValues(new Uint8Array(32)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
  const now = Date.now();
  const session: Session = {
    id: await sessionIdOf(secret),
    user: user.name,
    role: user.role,
    createdAt: now,
    lastSeenAt: now,
    expiresAt: now + timeouts.maxAgeMs,
  };
  await kv.set(sessionKey(session.id), session, {
    expireIn: Math.min(timeouts.idleMs, timeouts.maxAgeMs),
  });
  return { secret, session };
}

/**
 * The live session behind a cookie secret, or null when there is none, it
 * idled out, it passed its absolute end, or its user was revoked (reset)
 * after it started. Use is recorded (at most once a minute), which moves
 * the idle deadline.
 */
export async function liveSession(
  kv: Deno.Kv,
  secret: string | undefined,
  timeouts: SessionTimeouts,
  now = Date.now(),
): Promise<Session | null> {
  if (!secret || !SECRET.test(secret)) return null;
  const key = sessionKey(await sessionIdOf(secret));
  const entry = await kv.get<Session>(key);
  const session = entry.value;
  if (!session) return null;
  if (now >= session.expiresAt || now - session.lastSeenAt >= timeouts.idleMs) return null;
  // Read from KV on every use, not from an instance's memory: a reset by
  // another process ends the session at once, everywhere.
  const revokedAt = await userRevokedAt(kv, session.user);
  if (revokedAt !== null && session.createdAt < revokedAt) {
    await kv.atomic().check(entry).delete(key).commit();
    return null;
  }
  if (now - session.lastSeenAt >= TOUCH_EVERY_MS) {
    const touched = { ...session, lastSeenAt: now };
    await kv.atomic().check(entry).set(key, touched, {
      expireIn: Math.min(timeouts.idleMs, session.expiresAt - now),
    }).commit();
    return touched;
  }
  return session;
}

/** Deletes a session record. */
export async function deleteSession(kv: Deno.Kv, id: string): Promise<void> {
  await kv.delete(sessionKey(id));
}
