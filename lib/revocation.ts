import { encodeTime, newId } from "./ids.ts";
import {
  revocationEventKey,
  revocationEventsPrefix,
  revokedSessionKey,
  revokedTokenKey,
} from "./kv_keys.ts";
import type { AccessClaims } from "./tokens.ts";
import type { Logger } from "./log.ts";

/** One revocation, as every instance reads it. */
export interface RevocationEvent {
  id: string;
  jti: string | null;
  sid: string | null;
  /** When the tokens it covers expire anyway (epoch ms). */
  until: number;
}

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
 * The revocations still in force, held in memory by each instance so that
 * authentication needs no KV read. It is loaded from KV at start and kept
 * current by the same events that close revoked sockets: on other workers
 * at once (BroadcastChannel), on other processes within a poll (250 ms).
 * A token authenticated in that window is closed 4403 when its event lands.
 */
export class RevocationSet {
  #jtis = new Map<string, number>();
  #sids = new Map<string, number>();

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
  }

  add(event: Pick<RevocationEvent, "jti" | "sid" | "until">): void {
    if (event.jti) this.#jtis.set(event.jti, event.until + SLACK_MS);
    if (event.sid) this.#sids.set(event.sid, event.until + SLACK_MS);
  }

  /** Whether the token's `jti` or its session is revoked. */
  has(claims: Pick<AccessClaims, "jti" | "sid">, now = Date.now()): boolean {
    return (claims.jti !== null && live(this.#jtis, claims.jti, now)) ||
      (claims.sid !== null && live(this.#sids, claims.sid, now));
  }
}

function live(map: Map<string, number>, key: string, now: number): boolean {
  const until = map.get(key);
  if (until === undefined) return false;
  if (until > now) return true;
  map.delete(key);
  return false;
}

/** Says whether a token's `jti` or its session has been revoked, reading KV. */
export async function isRevoked(
  kv: Deno.Kv,
  claims: Pick<AccessClaims, "jti" | "sid">,
): Promise<boolean> {
  const keys: Deno.KvKey[] = [];
  if (claims.jti) keys.push(revokedTokenKey(claims.jti));
  if (claims.sid) keys.push(revokedSessionKey(claims.sid));
  if (keys.length === 0) return false;
  const entries = await kv.getMany(keys);
  return entries.some((e) => e.versionstamp !== null);
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
