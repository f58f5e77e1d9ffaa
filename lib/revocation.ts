import { encodeTime, newId } from "./ids.ts";
import {
  revocationEventKey,
  revocationEventsPrefix,
  revokedSessionKey,
  revokedTokenKey,
  revokedUserKey,
  revokedUsersPrefix,
} from "./kv_keys.ts";
import type { AccessClaims } from "./tokens.ts";
import type { Logger } from "./log.ts";

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
/** Events are read again for this long, so an instance whose clock is behind is still heard. */
const LOOKBACK_MS = 10_000;
/** Events stay long enough for a paused instance to catch up; the records last longer. */
const EVENT_TTL_MS = 10 * 60_000;

async function revoke(
  kv: Deno.Kv,
  key: Deno.KvKey,
  target: { jti: string | null; sid: string | null },
  until: number,
): Promise<RevocationEvent> {
  const expireIn = Math.max(1000, until - Date.now() + SLACK_MS);
  const event: RevocationEvent = { id: newId(), ...target, until };
  const result = await kv.atomic()
    .set(key, { at: Date.now(), until }, { expireIn })
    .set(revocationEventKey(event.id), event, { expireIn: EVENT_TTL_MS })
    .commit();
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
  op.set(revokedUserKey(name), record, { expireIn: USER_REVOCATION_MS + SLACK_MS })
    .set(revocationEventKey(event.id), event, { expireIn: EVENT_TTL_MS });
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

/** Whether a token with these claims is one a revocation `event` covers. */
export function revocationCovers(
  event: RevocationEvent,
  claims: Pick<AccessClaims, "jti" | "sid" | "sub" | "iat">,
): boolean {
  return (!!event.jti && claims.jti === event.jti) ||
    (!!event.sid && claims.sid === event.sid) ||
    (typeof event.user === "string" && typeof event.issuedBefore === "number" &&
      claims.sub === event.user && issuedBefore(claims.iat, event.issuedBefore));
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
 * current by the same events that close revoked sockets: on other workers
 * at once (BroadcastChannel), on other processes within a poll (250 ms).
 * A token authenticated in that window is closed 4403 when its event lands.
 */
export class RevocationSet {
  #jtis = new Map<string, number>();
  #sids = new Map<string, number>();
  #users = new Map<string, UserRevocation>();

  /** Reads every revocation record still in KV. */
  async load(kv: Deno.Kv): Promise<void> {
    const now = Date.now();
    for (
      const [prefix, map] of [["revoked_tokens", this.#jtis], [
        "revoked_sessions",
        this.#sids,
      ]] as const
    ) {
      for await (const e of kv.list<{ until?: number }>({ prefix: [prefix] })) {
        // Records from before `until` was stored stay in force until they expire.
        map.set(String(e.key[1]), e.value.until ?? now + 24 * 3600_000);
      }
    }
    for await (const e of kv.list<UserRevocation>({ prefix: revokedUsersPrefix() })) {
      this.#addUser(String(e.key[1]), e.value.at, e.value.until);
    }
  }

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

/** Says whether a token's `jti`, its session or its user's tokens of its time are revoked, reading KV. */
export async function isRevoked(
  kv: Deno.Kv,
  claims: Pick<AccessClaims, "jti" | "sid"> & Partial<Pick<AccessClaims, "sub" | "iat">>,
): Promise<boolean> {
  const keys: Deno.KvKey[] = [];
  if (claims.jti) keys.push(revokedTokenKey(claims.jti));
  if (claims.sid) keys.push(revokedSessionKey(claims.sid));
  const byUser = claims.sub !== undefined && claims.iat !== undefined;
  if (byUser) keys.push(revokedUserKey(claims.sub!));
  if (keys.length === 0) return false;
  const entries = await kv.getMany(keys);
  const user = byUser ? entries.pop()!.value as UserRevocation | null : null;
  return entries.some((e) => e.versionstamp !== null) ||
    (user !== null && issuedBefore(claims.iat!, user.at));
}

/**
 * Reads revocation events from KV every `intervalMs` and hands each new one
 * to `onEvent`. Polling a short key range works the same between local
 * processes, which `kv.watch` does not see, and between Deno Deploy isolates.
 */
export class RevocationFeed {
  #kv: Deno.Kv;
  #onEvent: (event: RevocationEvent) => void;
  #intervalMs: number;
  #logger: Logger;
  #seen = new Map<string, number>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #polling: Promise<void> | null = null;
  #stopped = false;

  constructor(
    kv: Deno.Kv,
    options: { onEvent: (event: RevocationEvent) => void; logger: Logger; intervalMs?: number },
  ) {
    this.#kv = kv;
    this.#onEvent = options.onEvent;
    this.#logger = options.logger;
    this.#intervalMs = options.intervalMs ?? 250;
  }

  /** Starts polling. Events older than the look-back are never replayed. */
  async start(): Promise<void> {
    // Mark what is already there as seen: it was handled before this start.
    for (const event of await this.#recent(Date.now())) this.#seen.set(event.id, Date.now());
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#polling;
  }

  /** Polls once now (also used by the instance that revoked, to act at once). */
  async poll(): Promise<void> {
    while (this.#polling) await this.#polling;
    this.#polling = this.#poll().finally(() => this.#polling = null);
    await this.#polling;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      await this.poll();
      this.#schedule();
    }, this.#intervalMs);
  }

  async #recent(now: number): Promise<RevocationEvent[]> {
    const events: RevocationEvent[] = [];
    const start = [...revocationEventsPrefix(), nextIdAt(now - LOOKBACK_MS)];
    for await (
      const e of this.#kv.list<RevocationEvent>({
        start,
        end: [...revocationEventsPrefix(), "\u{10FFFF}"],
      })
    ) {
      events.push(e.value);
    }
    return events;
  }

  async #poll(): Promise<void> {
    const now = Date.now();
    try {
      for (const event of await this.#recent(now)) {
        if (this.#seen.has(event.id)) continue;
        this.#seen.set(event.id, now);
        this.#onEvent(event);
      }
    } catch (error) {
      this.#logger.warn("revocation poll failed", { error });
    }
    for (const [id, at] of this.#seen) if (now - at > 2 * LOOKBACK_MS) this.#seen.delete(id);
  }
}

/** The smallest ULID of a given millisecond, as a range start. */
function nextIdAt(ms: number): string {
  return encodeTime(Math.max(0, ms)) + "0".repeat(16);
}
