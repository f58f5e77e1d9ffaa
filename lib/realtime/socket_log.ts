/**
 * The log lines of `/admin/ws` (issue 13): refused upgrades, socket
 * authentications (failed and successful) and closes, as JSON lines at
 * `info`. They are bounded as the attempt log is: a refusal is logged when
 * it is recorded, so a flood from one IP writes one `rate_limited` line per
 * burst, as it writes one record. Refusals that are never recorded (426, a
 * bad handshake, 503 while stopping) are logged at `debug` only, since
 * nothing bounds them. No line carries a token: only its id (`tokenId`).
 */
import type { ClientInfo, ConnectionDeps } from "./connection_deps.ts";

/** A user agent is cut to this many characters in a log line: enough to tell browsers apart. */
export const MAX_LOGGED_USER_AGENT_CHARS = 120;

/** The client's fields of a log line: ip, origin, and the user agent cut short. */
export function clientFields(
  info: ClientInfo,
): { ip: string; origin: string | null; userAgent: string | null } {
  const ua = info.userAgent;
  return {
    ip: info.ip,
    origin: info.origin,
    userAgent: ua !== null && ua.length > MAX_LOGGED_USER_AGENT_CHARS
      ? ua.slice(0, MAX_LOGGED_USER_AGENT_CHARS) + "..."
      : ua,
  };
}

/**
 * A close reason sent by the peer is its own free text, which could hold
 * anything, a token among it: it is logged only when it looks like a code
 * word (`ping_timeout`), else as its length.
 */
export function peerCloseReason(reason: string): string {
  return /^[A-Za-z0-9_.:-]{0,32}$/.test(reason)
    ? reason
    : `(${reason.length} characters, not logged)`;
}

/** Milliseconds to one decimal, for `durationMs`. */
export function ms(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Where a socket's lines go, and the instance they name. */
export type LogDeps = Pick<ConnectionDeps, "logger" | "instanceId">;

/** What a socket's log line says of the socket itself. */
export interface SocketFacts {
  id: string;
  info: ClientInfo;
  user: { name: string } | null;
  state: string;
  openedAt: number;
}

/**
 * Logs an authentication of `socket`, failed or not: by its first message,
 * a re-authentication (`reauth`), or (`transport` `header`) the upgrade's
 * Bearer header.
 */
export function logAuthentication(
  deps: LogDeps,
  socket: SocketFacts,
  fields: {
    user: string | null;
    reason: string;
    tokenId: string | null;
    transport: "message" | "header";
    role?: string;
    durationMs?: number;
  },
): void {
  const { durationMs, ...rest } = fields;
  deps.logger.info(
    fields.reason === "ok" ? "socket authenticated" : "socket authentication failed",
    {
      connectionId: socket.id,
      instance: deps.instanceId,
      ...rest,
      ...(fields.transport === "message" ? { reauth: socket.state === "authenticated" } : {}),
      ...(durationMs === undefined ? {} : { durationMs: ms(durationMs) }),
      ...clientFields(socket.info),
    },
  );
}

/** Logs the close of `socket`: `code` and `reason` as the close had them, `by` who closed. */
export function logClose(
  deps: LogDeps,
  socket: SocketFacts,
  close: { code: number; reason: string; by: "server" | "client" },
): void {
  deps.logger.info("socket closed", {
    connectionId: socket.id,
    instance: deps.instanceId,
    user: socket.user?.name ?? null,
    code: close.code,
    reason: close.by === "server" ? close.reason : peerCloseReason(close.reason),
    by: close.by,
    authenticated: socket.state === "authenticated",
    durationMs: Date.now() - socket.openedAt,
    ip: socket.info.ip,
  });
}
