/**
 * The `probe` steps after a 101: auth (by first message, by header, or
 * waiting for the server's auth timeout) and the first stats, read frame by
 * frame so a drop with no close frame is told from a real close.
 */
import { maskToken } from "../shared/mask_token.ts";
import { DEFAULT_TIMEOUT_MS, type ProbeOptions, type Step, step } from "./core.ts";
import { type Clocks, duration, explainAuthClose, explainDrop, isoTime } from "./explain.ts";
import { ServerMessage, Stats, type User } from "../shared/protocol.ts";
import type { FrameSocket } from "./ws_wire.ts";

/** What the auth step saw: authenticated, or how the socket ended. */
export interface AuthStep extends Step {
  name: "auth";
  outcome: "authenticated" | "closed" | "dropped" | "timeout" | "no_token" | "unexpected";
  user?: User;
  expiresAt?: number;
  /** The close, when a close frame came. */
  close?: { code: number; reason: string };
  /** The reason of an `auth_failed` that came before the close. */
  failedReason?: string;
  /** From the start of the step to its outcome. */
  elapsedMs: number;
}

/** The first `stats_update`, checked against the `Stats` schema. */
export interface StatsStep extends Step {
  name: "stats";
  stats: Stats | null;
}

/**
 * Step 5: authenticates. With a token (and no `header`), sends
 * `{"type":"auth","token":...}`; with `header`, the server answers at once;
 * with `waitAuth`, sends nothing and expects 4408 auth_timeout.
 */
export async function authStep(
  socket: FrameSocket,
  options: ProbeOptions & { clocks?: Clocks } = {},
): Promise<AuthStep> {
  const { token, clocks } = options;
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  if (!options.waitAuth && !token) {
    return step<AuthStep>({
      name: "auth",
      result: "skip",
      summary: "no token given: pass --token T or --login USER to check auth and stats",
      outcome: "no_token",
      elapsedMs: 0,
    });
  }
  const via = options.header ? "Authorization header" : "first message";
  if (!options.waitAuth && !options.header) {
    await socket.sendText(JSON.stringify({ type: "auth", token }));
  }
  const timeoutMs = options.waitAuth
    ? options.authWaitMs ?? 360_000
    : options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let failedReason: string | undefined;
  while (true) {
    const event = await socket.next(deadline - Date.now());
    if (event.type === "text") {
      const parsed = ServerMessage.safeParse(safeJson(event.data));
      if (!parsed.success) {
        return step<AuthStep>({
          name: "auth",
          result: "fail",
          summary: `unexpected message: ${event.data.slice(0, 120)}`,
          cause:
            "The server's answer does not match the Lookout protocol: this endpoint is not Lookout's /admin/ws, or runs another version.",
          outcome: "unexpected",
          elapsedMs: elapsed(),
        });
      }
      const msg = parsed.data;
      if (msg.type === "auth_failed") failedReason = msg.reason;
      if (msg.type === "authenticated") {
        if (options.waitAuth) continue;
        return step<AuthStep>({
          name: "auth",
          result: "ok",
          summary: `authenticated as ${msg.user.name} (${msg.user.role}) by ${via}, token ${
            maskToken(token ?? "")
          } expires ${isoTime(msg.expiresAt)} (in ${duration(msg.expiresAt - Date.now())})`,
          details: [`connectionId: ${msg.connectionId}`],
          outcome: "authenticated",
          user: msg.user,
          expiresAt: msg.expiresAt,
          elapsedMs: elapsed(),
        });
      }
      continue;
    }
    if (event.type === "close") {
      const close = { code: event.code, reason: event.reason };
      const timedOut = options.waitAuth && event.reason === "auth_timeout";
      return step<AuthStep>({
        name: "auth",
        result: timedOut ? "ok" : "fail",
        summary: timedOut
          ? `the server closed ${event.code} auth_timeout after ${
            duration(elapsed())
          } without an auth message, as it should`
          : `closed ${event.code}${event.reason ? ` ${event.reason}` : ""}${
            failedReason ? ` after auth_failed ${failedReason}` : ""
          } (${duration(elapsed())})`,
        cause: timedOut ? undefined : explainAuthClose(event.code, event.reason, { token, clocks }),
        outcome: "closed",
        close,
        failedReason,
        elapsedMs: elapsed(),
      });
    }
    if (event.type === "dropped") {
      return step<AuthStep>({
        name: "auth",
        result: "fail",
        summary: `the connection dropped without a close frame (1006) after ${duration(elapsed())}`,
        cause: explainDrop(event.error, Date.now() - socket.lastFrameAt),
        outcome: "dropped",
        failedReason,
        elapsedMs: elapsed(),
      });
    }
    if (event.type === "timeout") {
      return step<AuthStep>({
        name: "auth",
        result: "fail",
        summary: `no answer within ${duration(timeoutMs)}`,
        cause: options.waitAuth
          ? `The server kept an unauthenticated socket open for ${
            duration(timeoutMs)
          }: it should close it with 4408 auth_timeout after AUTH_TIMEOUT_MS.`
          : `The server did not answer the auth within ${
            duration(timeoutMs)
          }: it may be overloaded, or a proxy holds WebSocket frames back; check the app's logs.`,
        outcome: "timeout",
        elapsedMs: elapsed(),
      });
    }
  }
}

/** Step 6: waits for the first `stats_update` and checks it against the `Stats` schema. */
export async function statsStep(
  socket: FrameSocket,
  options: ProbeOptions = {},
): Promise<StatsStep> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  const fail = (summary: string, cause: string) =>
    step<StatsStep>({
      name: "stats",
      result: "fail",
      summary,
      cause,
      stats: null,
      ms: performance.now() - started,
    });
  while (true) {
    const event = await socket.next(deadline - Date.now());
    if (event.type === "text") {
      const json = safeJson(event.data) as { type?: unknown; data?: unknown } | null;
      if (json?.type !== "stats_update") continue;
      const parsed = Stats.safeParse(json.data);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return fail(
          "the first stats_update does not match the Stats schema",
          `The server's stats are malformed at ${
            issue.path.map(String).join(".") || "the top"
          } (${issue.message}): the server runs another version of the protocol.`,
        );
      }
      return step<StatsStep>({
        name: "stats",
        result: "ok",
        summary: summarizeStats(parsed.data),
        stats: parsed.data,
        ms: performance.now() - started,
      });
    }
    if (event.type === "close") {
      return fail(
        `closed ${event.code} ${event.reason} before the first stats`,
        explainAuthClose(event.code, event.reason),
      );
    }
    if (event.type === "dropped") {
      return fail(
        "the connection dropped before the first stats",
        explainDrop(event.error, Date.now() - socket.lastFrameAt),
      );
    }
    if (event.type === "timeout" || event.type === "binary") {
      return fail(
        `no stats_update within ${duration(timeoutMs)}`,
        "The server authenticated the socket but sent no stats: check the app's logs (is its store answering?).",
      );
    }
  }
}

/** Step 7: what the socket did while the probe held it open and sent nothing. */
export interface HoldStep extends Step {
  name: "hold";
  outcome: "held" | "closed" | "dropped";
  close?: { code: number; reason: string };
  /** For a drop: how long the server had sent nothing when the connection ended. */
  silenceMs?: number;
  elapsedMs: number;
}

/**
 * Step 7: keeps the authenticated socket open for `holdMs` sending nothing
 * (pings are answered, as any client does), so a proxy that cuts quiet
 * sockets shows here rather than in a dashboard a minute later. A drop is
 * named with the silence before it; a close frame is the server's own
 * policy, told by its code and reason.
 */
export async function holdStep(
  socket: FrameSocket,
  options: ProbeOptions & { token?: string; clocks?: Clocks } = {},
): Promise<HoldStep> {
  const holdMs = options.holdMs ?? 0;
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const end = Date.now() + holdMs;
  while (true) {
    const left = end - Date.now();
    const event = left > 0 ? await socket.next(left) : { type: "timeout" as const };
    if (event.type === "text" || event.type === "binary") continue;
    if (event.type === "timeout") {
      return step<HoldStep>({
        name: "hold",
        result: "ok",
        summary: `the socket stayed open through ${
          duration(holdMs)
        } in which the probe sent nothing (no proxy cut it)`,
        outcome: "held",
        elapsedMs: elapsed(),
      });
    }
    if (event.type === "close") {
      return step<HoldStep>({
        name: "hold",
        result: "fail",
        summary: `the server closed ${event.code}${event.reason ? ` ${event.reason}` : ""} after ${
          duration(elapsed())
        } of holding`,
        cause: explainAuthClose(event.code, event.reason, options),
        outcome: "closed",
        close: { code: event.code, reason: event.reason },
        elapsedMs: elapsed(),
      });
    }
    const silenceMs = Date.now() - socket.lastFrameAt;
    return step<HoldStep>({
      name: "hold",
      result: "fail",
      summary: `the connection dropped without a close frame (1006) after ${
        duration(elapsed())
      } of holding, ${duration(silenceMs)} after the server last sent anything`,
      cause: explainDrop(event.error, silenceMs),
      outcome: "dropped",
      silenceMs,
      elapsedMs: elapsed(),
    });
  }
}

/** A `Stats` in one line. */
export function summarizeStats(stats: Stats): string {
  const c = stats.connections;
  const a = stats.attempts;
  const online = stats.presence.map((p) => p.name).join(", ") || "nobody";
  return `instance ${stats.instance}, up ${
    duration(stats.uptimeS * 1000)
  }: sockets ${c.open} open, ${c.authenticated} authenticated, ${c.pending} pending; attempts ${a.total} (${a.success} ok, ${a.failure} failed), last minute ${a.lastMinute.success} ok, ${a.lastMinute.failure} failed; online: ${online}`;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
