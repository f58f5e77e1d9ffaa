import { newId } from "../store/ids.ts";
import {
  CLOSE_CODES,
  CLOSE_INTERNAL_ERROR,
  type CloseReason,
  type EventName,
  type User,
} from "../../shared/protocol.ts";
import type { Member } from "./registry.ts";
import { encode } from "../../shared/protocol_encode.ts";
import { overLimit, type PendingSlot, TokenBucket } from "./limits.ts";
import type { Deadline } from "./deadlines.ts";
import { readAuthFrame, readFrame } from "./frames.ts";
import { type ClientInfo, type ConnectionDeps, type DeadlineKind } from "./connection_deps.ts";
import { EXPIRY_WARNING_MS } from "./connection_deps.ts";
import { closeHandshake, closeSocket, QUIET, quietEnough, sendBounded } from "./socket_send.ts";
import { eventSet, subscribed, withEvents } from "./subscriptions.ts";
import { recordAttempt } from "./attempt_record.ts";
import { logAuthentication, logClose } from "./socket_log.ts";
import { type AccessClaims, verifyAccessToken } from "../auth/tokens.ts";

/**
 * One `/admin/ws` socket from open to close. Messages are handled one at a
 * time, in order, so a client may pipeline `auth` and its first requests.
 * Until authentication succeeds nothing but `authenticated`, `auth_failed`
 * and the close is ever sent.
 */
export class Connection implements Member {
  readonly id = newId();
  state: "pending" | "authenticated" | "closed" = "pending";
  user: User | null = null;
  claims: AccessClaims | null = null;
  /** Subscriptions as bits of EVENTS (a Set per socket costs memory at 10k). */
  #events = 1;
  readonly openedAt = Date.now();

  #deps: ConnectionDeps;
  #info: ClientInfo;
  #ws: WebSocket | null = null;
  #queue: Promise<void> = Promise.resolve();
  #deadlines: Partial<Record<DeadlineKind, Deadline>> = {};
  #bucket: TokenBucket;
  #lastMessageAt = 0;
  /** Over a limit: reading has stopped, and the close follows. */
  #limited = false;
  /** Sending has stopped too: the close is pending. */
  #quieting = false;
  /** The one attempt (first message or Bearer header) is taken: nothing later can be it. */
  #attemptTaken = false;
  /** Messages came in behind the attempt before it was decided. */
  #pipelined = false;
  /** An attempt failed: the socket is closing, and nothing queued behind it runs. */
  #rejected = false;
  /** This socket's place under its IP's cap of unauthenticated sockets. */
  #slot: PendingSlot | null;

  /** `slot` is the pending slot the upgrade took; the connection releases it. */
  constructor(deps: ConnectionDeps, info: ClientInfo, options: { slot?: PendingSlot } = {}) {
    this.#deps = deps;
    this.#info = info;
    this.#slot = options.slot ?? null;
    this.#bucket = new TokenBucket(deps.limits.messagesPerSecond, deps.limits.messageBurst);
  }

  /** Facts about the client, from the upgrade request. */
  get info(): ClientInfo {
    return this.#info;
  }

  /** What the socket is subscribed to. */
  get events(): ReadonlySet<EventName> {
    return eventSet(this.#events);
  }

  /** The socket opened. `preAuth` holds claims already checked from a header. */
  open(ws: WebSocket, preAuth: AccessClaims | null): void {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    this.#deps.registry.add(this);
    if (preAuth) {
      // Recorded by the upgrade, which had no connection id yet: logged here.
      logAuthentication(this.#deps, this, {
        user: preAuth.sub,
        reason: "ok",
        role: preAuth.role,
        tokenId: preAuth.jti,
        transport: "header",
      });
      this.#attemptTaken = true;
      this.#enqueue(() => this.#authenticated(preAuth));
    } else {
      this.#at("auth", Date.now() + this.#deps.authTimeoutMs, () => {
        this.#enqueue(() => this.#reject("auth_timeout", Date.now() - this.openedAt));
      });
    }
  }

  /** A message arrived. Its size is checked before anything parses it. */
  message(data: unknown): void {
    this.#lastMessageAt = Date.now();
    if (this.state === "closed" || this.#limited) return;
    // Both limits act before anything is queued or parsed.
    const over = overLimit(data, this.#deps.maxMessageBytes, this.#bucket);
    if (over) {
      this.#limited = true;
      this.#clear("auth");
      if (!this.#attemptTaken) {
        // This message is the first: it is the attempt, and it fails.
        this.#attemptTaken = true;
        this.#quieting = true;
        this.#enqueue(() => this.#reject(over, 0));
      } else {
        if (this.state === "pending") this.#pipelined = true;
        // What was queued first is answered first (a pending attempt, messages
        // within the limit), then the limit closes the socket: a close, not a
        // second attempt. A failed attempt's own close wins.
        this.#enqueue(() => {
          if (this.state === "authenticated") {
            this.#quieting = true;
            this.#closeWhenQuiet(over);
          }
          return Promise.resolve();
        });
      }
      return;
    }
    const first = !this.#attemptTaken;
    if (!first && this.state === "pending") this.#pipelined = true;
    this.#attemptTaken = true;
    this.#clear("auth");
    const received = performance.now();
    // Only the first message is the attempt. What follows it waits for the
    // answer: handled once authenticated, dropped when the attempt failed.
    this.#enqueue(() =>
      first
        ? this.#first(data, received)
        : this.state === "authenticated"
        ? this.#handle(data, received)
        : Promise.resolve()
    );
  }

  /**
   * The socket closed, from either side: `code` and `reason` as the close
   * event has them (1006 without a close frame), `by` who closed.
   */
  closed(code = 1005, reason = "", by: "server" | "client" = "client"): void {
    if (this.state === "closed") return;
    logClose(this.#deps, this, { code, reason, by });
    this.#slot?.release();
    this.#slot = null;
    this.state = "closed";
    this.#ws = null;
    for (const deadline of Object.values(this.#deadlines)) deadline?.cancel();
    this.#deadlines = {};
    this.#deps.registry.remove(this);
  }

  send(text: string): void {
    if (!this.#quieting) this.#sendNow(text);
  }

  #sendNow(text: string): void {
    const buffered = sendBounded(this.#ws, text, this.#deps.limits.slowConsumerBytes);
    if (buffered === 0) return;
    this.#deps.logger.warn("closing a slow consumer", {
      connectionId: this.id,
      user: this.user?.name,
      bufferedBytes: buffered,
    });
    this.close(CLOSE_CODES.slow_consumer, "slow_consumer");
  }

  /**
   * Closes the socket and resolves when its close handshake is done (the
   * close frame is out and answered), or at once when there is no socket.
   */
  closeAndWait(code: number, reason: string): Promise<void> {
    const done = closeHandshake(this.#ws);
    this.close(code, reason);
    return done;
  }

  /** Closes the socket and forgets it at once, without waiting for the peer. */
  close(code: number, reason: string): void {
    closeSocket(this.#ws, code, reason);
    this.closed(code, reason, "server");
  }

  #enqueue(task: () => Promise<void>): void {
    this.#queue = this.#queue.then(() =>
      this.state === "closed" || this.#rejected ? undefined : task()
    )
      .catch((error) => {
        this.#deps.logger.error("connection task failed", { connectionId: this.id, error });
        this.close(CLOSE_INTERNAL_ERROR, "internal_error");
      });
  }

  async #first(data: unknown, received: number): Promise<void> {
    const auth = readAuthFrame(data);
    if (!auth) return await this.#reject("bad_message", performance.now() - received);
    await this.#verify(auth.token, received);
  }

  /** Verifies a token from an auth message, first or re-authentication. */
  async #verify(token: unknown, received: number): Promise<void> {
    const result = await verifyAccessToken(this.#deps.tokenKey, token, {
      isRevoked: this.#deps.isRevoked,
    });
    const durationMs = performance.now() - received;
    if (!result.ok) {
      return await this.#reject(result.reason, durationMs, result.user, result.tokenId);
    }
    const { claims } = result;
    if (this.state === "authenticated" && claims.sub !== this.user?.name) {
      return await this.#reject("invalid_claims", durationMs, claims.sub, claims.jti);
    }
    if (!await this.#record(claims.sub, "success", "ok", durationMs, claims.jti)) {
      return;
    }
    if (this.state === "authenticated") {
      const before = this.user!;
      this.claims = claims;
      this.user = { name: claims.sub, role: claims.role };
      this.#scheduleExpiry(claims.exp * 1000);
      this.send(encode({ type: "reauthenticated", expiresAt: claims.exp * 1000 }));
      if (before.role !== claims.role) this.#deps.registry.userChanged(this, before);
      else this.#deps.registry.renewed(this);
      return;
    }
    await this.#authenticated(claims);
  }

  /** Marks the socket authenticated; the attempt is already recorded. */
  async #authenticated(claims: AccessClaims): Promise<void> {
    this.#clear("auth");
    this.#slot?.release();
    this.#slot = null;
    this.state = "authenticated";
    this.claims = claims;
    this.user = { name: claims.sub, role: claims.role };
    this.#deps.registry.authenticated(this, this.events);

    this.send(encode({
      type: "authenticated",
      user: this.user,
      expiresAt: claims.exp * 1000,
      connectionId: this.id,
    }));
    this.#scheduleExpiry(claims.exp * 1000);
    // The first stats_update, unless a push already brought these counts.
    await this.#deps.stats.sendTo(this, { always: false });
  }

  /** Records a failed attempt, then answers `auth_failed` and closes. */
  async #reject(
    reason: CloseReason,
    durationMs: number,
    user: string | null = null,
    tokenId: string | null = null,
  ): Promise<void> {
    if (!await this.#record(user, "failure", reason, durationMs, tokenId)) {
      return;
    }
    this.#rejected = true;
    this.#sendNow(encode({ type: "auth_failed", reason }));
    // A peer still sending would have its connection dropped by a close
    // now, and never see the close code (see #closeWhenQuiet).
    if (this.#limited || this.#pipelined) {
      this.#quieting = true;
      this.#closeWhenQuiet(reason);
    } else this.close(CLOSE_CODES[reason], reason);
  }

  /** Closes once the peer stops sending (see {@linkcode quietEnough}); meanwhile nothing is read or sent. */
  #closeWhenQuiet(reason: CloseReason): void {
    const deadline = Date.now() + QUIET.maxMs;
    const check = () => {
      if (quietEnough(this.#lastMessageAt, deadline)) this.close(CLOSE_CODES[reason], reason);
      else this.#at("quiet", Date.now() + QUIET.pollMs, check);
    };
    this.#at("quiet", Date.now() + QUIET.ms, check);
  }

  /** Writes the attempt record; on a KV failure closes 1011 and returns false. */
  async #record(
    user: string | null,
    outcome: "success" | "failure",
    reason: CloseReason | "ok",
    durationMs: number,
    tokenId: string | null,
  ): Promise<boolean> {
    const attempt = { ...this.#info, user, outcome, reason, tokenId, durationMs };
    if (await recordAttempt(this.#deps, this, { ...attempt, transport: "message" })) return true;
    this.close(CLOSE_INTERNAL_ERROR, "attempt_log_unavailable");
    return false;
  }

  async #handle(data: unknown, received: number): Promise<void> {
    const frame = readFrame(data);
    if (frame.kind === "invalid") return this.#error(frame.error);
    // A re-auth whatever its token field holds: a missing or empty token
    // fails (and is recorded) like any other failing token.
    if (frame.kind === "auth") return await this.#verify(frame.token, received);
    const msg = frame.message;
    switch (msg.type) {
      case "ping":
        return this.send(encode({ type: "pong", ts: Date.now(), id: msg.id }));
      case "get_stats":
        // The stats as pushed, with this instance's counts as they are now:
        // an answer from a read of its own could be older than a push.
        return await this.#deps.stats.sendTo(this, { always: true });
      case "subscribe":
      case "unsubscribe": {
        const before = this.#events;
        this.#events = withEvents(before, msg.type === "subscribe", msg.events);
        return await subscribed(this, this.#deps, before);
      }
    }
  }

  #error(message: string): void {
    this.send(encode({ type: "error", code: "bad_message", message }));
  }

  /** The warning, then the close: one deadline at a time (memory per socket). */
  #scheduleExpiry(expiresAt: number): void {
    this.#at("expiry", expiresAt - EXPIRY_WARNING_MS, () => {
      this.send(encode({ type: "token_expiring", expiresAt }));
      this.#at("expiry", expiresAt, () => this.close(CLOSE_CODES.token_expired, "token_expired"));
    });
  }

  /** Runs `fn` at epoch ms `when` (soon if past), replacing the deadline `kind`. */
  /** A fired deadline stays until replaced: cancelling it does nothing (no wrapper closure). */
  #at(kind: DeadlineKind, when: number, fn: () => void): void {
    this.#clear(kind);
    this.#deadlines[kind] = this.#deps.deadlines.schedule(when, fn);
  }

  #clear(kind: DeadlineKind): void {
    this.#deadlines[kind]?.cancel();
    this.#deadlines[kind] = undefined;
  }
}
