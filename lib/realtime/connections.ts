/**
 * The deployment's authenticated sockets, listed and ended from any
 * instance (CONTRACT 8.1). Each instance keeps one KV record per socket it
 * holds (`connections`, by connection id), written in batches as sockets
 * authenticate, re-authenticate and close; a listing leaves out the records
 * of instances whose heartbeat is stale, the same rule the stats use. A
 * disconnect of a socket held elsewhere is a feed event for its instance.
 */
import { cutText, MAX_FIELD_CHARS, MAX_USER_CHARS } from "../attempts/log.ts";
import type { Connection } from "./connection.ts";
import { connectionKey, connectionsPrefix, instanceKey, instancesPrefix } from "../store/keys.ts";
import type { Logger } from "../log.ts";
import { CLOSE_CODES } from "../../shared/protocol.ts";
import { INSTANCE_STALE_MS, type InstanceEntry } from "../stats/instances.ts";
import { appendEvent, type Feed } from "./feed.ts";
import type { Registry } from "./registry.ts";
import type { ConnectionRecord } from "../../shared/connection_record.ts";

export type { ConnectionRecord };

/** How long changes are gathered before one batch is written. */
const BATCH_MS = 50;
/** Wait before writing again after a failed write. */
const RETRY_MS = 1000;
/** Records per atomic commit: each is about 1.5 KiB at most, a commit holds 800 KiB. */
const MAX_BATCH = 200;
/** A record outlives its token this long in KV, as a backstop for an instance that died. */
const EXPIRE_AFTER_TOKEN_MS = 60_000;
/** Commits tried by a disconnect whose record changes under it (a re-auth). */
const MAX_TRIES = 5;
/** Connection ids are ULIDs; anything else is held by no instance. */
const CONNECTION_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** Options of {@linkcode ConnectionRecords}. */
export interface ConnectionRecordsOptions {
  instanceId: string;
  feed: Feed;
  logger: Logger;
}

/** See the module doc. */
export class ConnectionRecords {
  #kv: Deno.Kv;
  #o: ConnectionRecordsOptions;
  /** The authenticated sockets of this instance, by id. */
  #held = new Map<string, Connection>();
  /** Ids whose record is to be written (when held) or deleted (when not). */
  #dirty = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | null = null;

  constructor(kv: Deno.Kv, registry: Registry<Connection>, options: ConnectionRecordsOptions) {
    this.#kv = kv;
    this.#o = options;
    registry.onMember((m, change) => {
      // The registry of this class holds Connections only (see its type).
      const member = m as Connection;
      if (change === "removed") this.#held.delete(member.id);
      else this.#held.set(member.id, member);
      this.#dirty.add(member.id);
      this.#schedule(BATCH_MS);
    });
    options.feed.on("disconnect", ({ id, instance }) => {
      if (instance === options.instanceId) this.#closeHere(id);
    });
  }

  /** Every authenticated socket of the deployment, oldest first. */
  async list(now = Date.now()): Promise<ConnectionRecord[]> {
    const [records, instances] = await Promise.all([
      Array.fromAsync(this.#kv.list<ConnectionRecord>({ prefix: connectionsPrefix() })),
      Array.fromAsync(this.#kv.list<InstanceEntry>({ prefix: instancesPrefix() })),
    ]);
    const live = new Set(
      instances.map((e) => e.value)
        .filter((e) => now - e.heartbeatAt < INSTANCE_STALE_MS)
        .map((e) => e.id),
    );
    // This instance's own sockets come from memory: its records may be a batch behind.
    const items = [...this.#held.values()].map((c) => this.#record(c));
    for (const { value } of records) {
      if (value.instance === this.#o.instanceId || !live.has(value.instance)) continue;
      if (value.expiresAt <= now) continue;
      items.push(value);
    }
    return items.sort((a, b) => a.openedAt - b.openedAt || (a.id < b.id ? -1 : 1));
  }

  /**
   * Closes socket `id` with 4403 `revoked` wherever it is: here at once,
   * elsewhere by a feed event its instance reads within its poll. Returns
   * false when no live instance holds it. Of concurrent calls for one id,
   * one returns true: here the socket leaves the list at once, elsewhere
   * the record is deleted under a check in the same commit as the event.
   */
  async disconnect(id: string): Promise<boolean> {
    if (this.#closeHere(id)) return true;
    if (!CONNECTION_ID.test(id)) return false;
    for (let i = 0; i < MAX_TRIES; i++) {
      const entry = await this.#kv.get<ConnectionRecord>(connectionKey(id));
      const record = entry.value;
      if (record === null || record.instance === this.#o.instanceId) return false;
      if (record.expiresAt <= Date.now() || !await this.#isLive(record.instance)) return false;
      const op = this.#kv.atomic().check(entry).delete(connectionKey(id));
      appendEvent(op, "disconnect", { id, instance: record.instance }, this.#o.instanceId);
      if ((await op.commit()).ok) return true;
    }
    throw new Error(
      `Cannot disconnect ${id} as its record kept changing: tried ${MAX_TRIES} times`,
    );
  }

  /** Writes what is left to write (on stop, after the sockets closed). */
  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    while (this.#writing) await this.#writing;
    if (this.#dirty.size > 0) await this.#write();
  }

  #closeHere(id: string): boolean {
    const member = this.#held.get(id);
    if (!member) return false;
    // Out of the list at once, so a second disconnect of it finds nothing.
    this.#held.delete(id);
    this.#dirty.add(id);
    this.#schedule(BATCH_MS);
    member.close(CLOSE_CODES.revoked, "revoked");
    return true;
  }

  async #isLive(instance: string): Promise<boolean> {
    const entry = (await this.#kv.get<InstanceEntry>(instanceKey(instance))).value;
    return entry !== null && Date.now() - entry.heartbeatAt < INSTANCE_STALE_MS;
  }

  #record(c: Connection): ConnectionRecord {
    return {
      id: c.id,
      user: cutText(c.user!.name, MAX_USER_CHARS)!,
      role: c.user!.role,
      ip: c.info.ip,
      origin: cutText(c.info.origin, MAX_FIELD_CHARS),
      userAgent: cutText(c.info.userAgent, MAX_FIELD_CHARS),
      openedAt: c.openedAt,
      expiresAt: c.claims!.exp * 1000,
      instance: this.#o.instanceId,
    };
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined || this.#writing) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#writing = this.#write().then((ok) => {
        this.#writing = null;
        // After a failure, one try a second: a store that is down gets few warnings.
        if (this.#dirty.size > 0) this.#schedule(ok ? BATCH_MS : RETRY_MS);
      });
    }, ms);
  }

  /**
   * Writes every dirty id, in commits of {@linkcode MAX_BATCH}: a socket
   * opened and closed within one batch costs nothing but its delete.
   */
  async #write(): Promise<boolean> {
    let ok = true;
    const ids = [...this.#dirty];
    this.#dirty.clear();
    const now = Date.now();
    for (let i = 0; i < ids.length; i += MAX_BATCH) {
      const batch = ids.slice(i, i + MAX_BATCH);
      const op = this.#kv.atomic();
      for (const id of batch) {
        const member = this.#held.get(id);
        if (!member) op.delete(connectionKey(id));
        else {
          const record = this.#record(member);
          op.set(connectionKey(id), record, {
            expireIn: Math.max(1000, record.expiresAt - now + EXPIRE_AFTER_TOKEN_MS),
          });
        }
      }
      try {
        if (!(await op.commit()).ok) throw new Error("the commit failed");
      } catch (error) {
        // Written again with the next batch.
        ok = false;
        for (const id of batch) this.#dirty.add(id);
        this.#o.logger.warn("cannot write connection records", { error, count: batch.length });
      }
    }
    return ok;
  }
}
