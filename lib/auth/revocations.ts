/**
 * The revocations service: it owns the revocations in force on this
 * instance (so verifying a token reads no KV), takes them from the feed, and
 * closes the sockets they cover. Revoking writes the record and its feed
 * event in one commit, then acts here at once; the other instances act when
 * their feed reads the event.
 */
import { CLOSE_CODES } from "../../shared/protocol.ts";
import {
  type RevocationEvent,
  RevocationSet,
  revokeSession,
  revokeToken,
  revokeUser,
} from "./revocation.ts";
import type { Feed } from "../realtime/feed.ts";
import type { Member, Registry } from "../realtime/registry.ts";
import type { Logger } from "../log.ts";
import type { AccessClaims } from "./tokens.ts";

/** See the module doc. */
export class Revocations {
  #kv: Deno.Kv;
  #registry: Registry<Member>;
  #logger: Logger;
  #set = new RevocationSet();

  constructor(
    kv: Deno.Kv,
    registry: Registry<Member>,
    options: { feed: Feed; logger: Logger },
  ) {
    this.#kv = kv;
    this.#registry = registry;
    this.#logger = options.logger;
    options.feed.on("revoked", (event) => this.#apply(event));
  }

  /**
   * Loads the revocations still in KV. Called after the feed has started:
   * an event the feed marked as already there is in what this reads.
   */
  async load(): Promise<void> {
    await this.#set.load(this.#kv);
  }

  /** Whether the token's `jti`, its session, or its user's tokens of its time are revoked. */
  has(
    claims: Pick<AccessClaims, "jti" | "sid"> & Partial<Pick<AccessClaims, "sub" | "iat">>,
  ): boolean {
    return this.#set.has(claims);
  }

  /** Revokes a session and every token issued under it, until `until` (epoch ms). */
  async revokeSession(sid: string, until: number): Promise<void> {
    this.#apply(await revokeSession(this.#kv, sid, until));
  }

  /** Revokes one token by its `jti`, until `until` (epoch ms). */
  async revokeToken(jti: string, until: number): Promise<void> {
    this.#apply(await revokeToken(this.#kv, jti, until));
  }

  /** Revokes every token and session of user `name` from before now (any issuer). */
  async revokeUser(name: string): Promise<void> {
    this.#apply(await revokeUser(this.#kv, name));
  }

  /**
   * Holds `event` in force and closes the sockets it covers. Closing asks
   * the set rather than the event, so a new kind of revocation (every token
   * of a user issued before a time) is one more rule in the set.
   */
  #apply(event: RevocationEvent): void {
    this.#set.add(event);
    const closed = this.#registry.closeWhere(
      (claims) => this.#set.has(claims),
      CLOSE_CODES.revoked,
      "revoked",
    );
    if (closed > 0) this.#logger.info("revocation closed sockets", { closed });
  }
}
