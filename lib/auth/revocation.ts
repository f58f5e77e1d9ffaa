import { newId } from "../store/ids.ts";
import {
  decodeRevokedKey,
  revokedSessionKey,
  revokedSessionsPrefix,
  revokedTokenKey,
  revokedTokensPrefix,
  revokedUserKey,
  revokedUsersPrefix,
} from "../store/keys.ts";
import { appendEvent } from "../realtime/feed.ts";
import type { AccessClaims } from "./tokens.ts";

/** One revocation, as every instance reads it. */
export interface RevocationEvent {
  id: string;
  jti: string | null;
  sid: string | null;
  /**
   * A user whose tokens issued, and sessions started, before `issuedBefore`
   * (epoch ms) are revoked. Absent in events that name a token or session.
   */
  user?: string | null;
  issuedBefore?: number | null;
  /** When the tokens it covers expire anyway (epoch ms). */
  until: number;
}

/** What a user revocation stores under {@linkcode revokedUserKey}. */
interface UserRevocation {
  /** Tokens with `iat` before it, and sessions created before it, are revoked (epoch ms). */
  at: number;
  until: number;
}

/**
 * How long a user revocation is kept: past the longest session
 * (`SESSION_MAX_AGE_S` is at most 365 days) and the longest token
 * `deno task token` mints (one year). A later revocation replaces it.
 */
export const USER_REVOCATION_MS = 366 * 86_400_000;

/** Revocation records outlive the tokens they cover by this much (clock skew). */
const SLACK_MS = 60_000;

async function revoke(
  kv: Deno.Kv,
  key: Deno.KvKey,
  target: { jti: string | null; sid: string | null },
  until: number,
): Promise<RevocationEvent> {
  const expireIn = Math.max(1000, until - Date.now() + SLACK_MS);
  const event: RevocationEvent = { id: newId(), ...target, until };
  // The record and the feed event that tells every instance land together.
  const op = kv.atomic().set(key, { at: Date.now(), until }, { expireIn });
  appendEvent(op, "revoked", event);
  const result = await op.commit();
  if (!result.ok) throw new Error("Cannot revoke: the commit failed");
  return event;
}

/**
 * Revokes one token by its `jti` until `until` (epoch ms, when the token
 * expires anyway), and tells every instance to close its sockets.
 */
export async function revokeToken(
  kv: Deno.Kv,
  jti: string,
  until: number,
): Promise<RevocationEvent> {
  return await revoke(kv, revokedTokenKey(jti), { jti, sid: null }, until);
}

/** Revokes a session and every token issued under it, likewise. */
export async function revokeSession(
  kv: Deno.Kv,
  sid: string,
  until: number,
): Promise<RevocationEvent> {
  return await revoke(kv, revokedSessionKey(sid), { jti: null, sid }, until);
}

/**
 * Adds to `op` the writes that revoke every token of user `name` issued
 * before `at` (epoch ms, any issuer) and every session of theirs started
 * before it, and the event that tells every instance to close their
 * sockets. Returns that event; it holds once `op` commits.
 */
export function revokeUserOp(
  op: Deno.AtomicOperation,
  name: string,
  at = Date.now(),
): RevocationEvent {
  const until = at + USER_REVOCATION_MS;
  const event: RevocationEvent = {
    id: newId(),
    jti: null,
    sid: null,
    user: name,
    issuedBefore: at,
    until,
  };
  const record: UserRevocation = { at, until };
  op.set(revokedUserKey(name), record, { expireIn: USER_REVOCATION_MS + SLACK_MS });
  appendEvent(op, "revoked", event);
  return event;
}

/** Revokes every token and session of user `name` from before now, as {@linkcode revokeUserOp}. */
export async function revokeUser(kv: Deno.Kv, name: string): Promise<RevocationEvent> {
  const op = kv.atomic();
  const event = revokeUserOp(op, name);
  const result = await op.commit();
  if (!result.ok) throw new Error(`Cannot revoke the user as the commit failed: ${name}`);
  return event;
}

/** When user `name` was last revoked (epoch ms), or null: sessions started before are dead. */
export async function userRevokedAt(kv: Deno.Kv, name: string): Promise<number | null> {
  return (await kv.get<UserRevocation>(revokedUserKey(name))).value?.at ?? null;
}

/**
 * Resolves once a token signed now for user `name` counts as issued after
 * their latest revocation: `iat` has whole seconds, so in the second of a
 * reset a new token would look as old as the ones it revoked. Waits at most
 * a second, and only right after a reset.
 */
export async function afterUserRevocation(kv: Deno.Kv, name: string): Promise<void> {
  const at = await userRevokedAt(kv, name);
  if (at === null) return;
  const wait = Math.ceil(at / 1000) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

/**
 * Whether a token whose `iat` (whole seconds) is `iat` was issued before
 * `at` (epoch ms). A token from the same second as `at` may have been
 * issued before it, so it counts as before: a revocation never misses one.
 */
function issuedBefore(iat: number, at: number): boolean {
  return iat * 1000 < at;
}

/**
 * The revocations still in force, held in memory by each instance so that
 * authentication needs no KV read. It is loaded from KV at start and kept
 * current by the same feed events that close revoked sockets
 * (lib/auth/revocations.ts): at once on the instance that revoked, within a
 * kv.watch wake-up or a 250 ms poll on the others.
 * A token authenticated in that window is closed 4403 when its event lands.
 */
export class RevocationSet {
  #jtis = new Map<string, number>();
  #sids = new Map<string, number>();
  #users = new Map<string, UserRevocation>();

  /** Reads every revocation record still in KV. */
  async load(kv: Deno.Kv): Promise<void> {
    const now = Date.now();
    const sources = [[revokedTokensPrefix(), this.#jtis], [revokedSessionsPrefix(), this.#sids]];
    for (const [prefix, map] of sources as [Deno.KvKey, Map<string, number>][]) {
      for await (const e of kv.list<{ until?: number }>({ prefix })) {
        // Records from before `until` was stored stay in force until they expire.
        map.set(decodeRevokedKey(e.key), e.value.until ?? now + 24 * 3600_000);
      }
    }
    for await (const e of kv.list<UserRevocation>({ prefix: revokedUsersPrefix() })) {
      this.#addUser(decodeRevokedKey(e.key), e.value.at, e.value.until);
    }
  }

  /** Holds a revocation in force (loaded, made here, or read from the feed). */
  add(
    event: Pick<RevocationEvent, "jti" | "sid" | "until" | "user" | "issuedBefore">,
  ): void {
    if (event.jti) this.#jtis.set(event.jti, event.until + SLACK_MS);
    if (event.sid) this.#sids.set(event.sid, event.until + SLACK_MS);
    if (typeof event.user === "string" && typeof event.issuedBefore === "number") {
      this.#addUser(event.user, event.issuedBefore, event.until);
    }
  }

  /** Whether the token's `jti`, its session, or its user's tokens of its time are revoked. */
  has(
    claims: Pick<AccessClaims, "jti" | "sid"> & Partial<Pick<AccessClaims, "sub" | "iat">>,
    now = Date.now(),
  ): boolean {
    return (claims.jti !== null && live(this.#jtis, claims.jti, now)) ||
      (claims.sid !== null && live(this.#sids, claims.sid, now)) ||
      (claims.sub !== undefined && claims.iat !== undefined &&
        this.#userHas(claims.sub, claims.iat, now));
  }

  #addUser(name: string, at: number, until: number): void {
    // Events may land out of order: the latest revocation of a user covers the earlier ones.
    const known = this.#users.get(name);
    if (!known || known.at < at) this.#users.set(name, { at, until: until + SLACK_MS });
  }

  #userHas(name: string, iat: number, now: number): boolean {
    const revocation = this.#users.get(name);
    if (revocation === undefined) return false;
    if (revocation.until <= now) {
      this.#users.delete(name);
      return false;
    }
    return issuedBefore(iat, revocation.at);
  }
}

function live(map: Map<string, number>, key: string, now: number): boolean {
  const until = map.get(key);
  if (until === undefined) return false;
  if (until > now) return true;
  map.delete(key);
  return false;
}
