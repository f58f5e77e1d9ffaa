import { newId } from "./ids.ts";
import {
  decodeRevokedKey,
  revokedSessionKey,
  revokedSessionsPrefix,
  revokedTokenKey,
  revokedTokensPrefix,
} from "./kv_keys.ts";
import { appendEvent } from "./realtime/feed.ts";
import type { AccessClaims } from "./tokens.ts";

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
  }

  /** Holds a revocation in force (loaded, made here, or read from the feed). */
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
