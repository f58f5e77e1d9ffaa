/**
 * The ceiling for this runtime: a bare Deno server that only upgrades, checks
 * the first message's token with jose, and keeps its sockets in a Set. The
 * benchmark compares Lookout with it; it has no attempt log, no limits, no
 * KV and no timers.
 *
 *   PORT=8001 JWT_SECRET=... deno run -A bench/servers/raw_deno.ts
 *
 * - `GET /admin/ws`: WebSocket. First message `{"type":"auth","token"}`;
 *   answered `{"type":"authenticated","user","expiresAt","connectionId"}` or
 *   `{"type":"auth_failed","reason"}` and a close 4401.
 * - `POST /broadcast`: builds a stats-like message, serializes it once and
 *   sends it to every authenticated socket. With a body, sends the body as
 *   it is instead (bench/metrics_ingest.ts's `--fanout-reference`). Answers
 *   `{"sent","bytes"}`.
 * - `POST /revoke` `{"jti"}`: closes that token's sockets with 4403 `revoked`.
 * - `GET /healthz`: 200.
 */
import { jwtVerify } from "jose";

/** What the raw server knows about one attempt, for a server that records it. */
export interface RawAttempt {
  ip: string;
  origin: string | null;
  userAgent: string | null;
  user: string | null;
  outcome: "success" | "failure";
  reason: "ok" | "invalid_signature";
  tokenId: string | null;
  durationMs: number;
}

/** Called before each answer; the answer waits for it (bench/servers/raw_kv.ts). */
export type RecordHook = (attempt: RawAttempt) => Promise<unknown>;

interface Client {
  socket: WebSocket;
  user: string | null;
  jti: string | null;
}

const encoder = new TextEncoder();

/** The value of environment variable `name`, or `fallback`; exits when neither is set. */
export function env(name: string, fallback?: string): string {
  const value = Deno.env.get(name) ?? fallback;
  if (value === undefined) {
    console.error(`Cannot start the raw Deno server as ${name} is unset`);
    Deno.exit(1);
  }
  return value;
}

/**
 * Serves the raw server; with `record`, every attempt is handed to it and
 * answered only once it resolves (the raw+KV ceiling).
 */
export function serveRaw(record?: RecordHook): void {
  const port = Number(env("PORT", "8001"));
  const secret = encoder.encode(env("JWT_SECRET"));
  const issuer = env("JWT_ISSUER", "lookout");
  const audience = env("JWT_AUDIENCE", "lookout");
  const startedAt = Date.now();
  const authenticated = new Set<Client>();
  const byJti = new Map<string, Client>();
  const presence = new Map<string, number>();
  const counts = { open: 0, success: 0, failure: 0 };
  let nextId = 0;

  function forget(client: Client): void {
    if (!authenticated.delete(client)) return;
    if (client.jti) byJti.delete(client.jti);
    const n = (presence.get(client.user!) ?? 1) - 1;
    if (n > 0) presence.set(client.user!, n);
    else presence.delete(client.user!);
  }

  /** The same shape and about the same size as Lookout's `stats_update`. */
  function statsMessage(): string {
    const now = Date.now();
    return JSON.stringify({
      type: "stats_update",
      data: {
        at: now,
        instance: "raw",
        uptimeS: Math.floor((now - startedAt) / 1000),
        connections: { open: counts.open, authenticated: authenticated.size, pending: 0 },
        attempts: {
          total: counts.success + counts.failure,
          success: counts.success,
          failure: counts.failure,
          byReason: counts.failure ? { invalid_signature: counts.failure } : {},
          lastMinute: { success: 0, failure: 0 },
        },
        presence: [...presence].sort(([a], [b]) => a.localeCompare(b))
          .map(([name, connections]) => ({ name, role: "admin", connections })),
      },
    });
  }

  function upgrade(req: Request, remote: string): Response {
    // What Lookout keeps of the client for its record (TRUST_PROXY=true),
    // read before the upgrade takes the request.
    const info = record
      ? {
        ip: req.headers.get("x-forwarded-for")?.split(",")[0].trim() || remote,
        origin: req.headers.get("origin"),
        userAgent: req.headers.get("user-agent"),
      }
      : null;
    const { socket, response } = Deno.upgradeWebSocket(req);
    const client: Client = { socket, user: null, jti: null };
    counts.open++;
    socket.onmessage = async (event) => {
      if (client.user !== null) return;
      const started = performance.now();
      let token: unknown;
      try {
        const msg = JSON.parse(event.data);
        token = msg?.type === "auth" ? msg.token : undefined;
      } catch {
        token = undefined;
      }
      try {
        if (typeof token !== "string") throw new Error("missing_token");
        const { payload } = await jwtVerify(token, secret, {
          algorithms: ["HS256"],
          issuer,
          audience,
          requiredClaims: ["sub", "exp", "iat"],
        });
        if (info) {
          await record!({
            ...info,
            user: String(payload.sub),
            outcome: "success",
            reason: "ok",
            tokenId: typeof payload.jti === "string" ? payload.jti : null,
            durationMs: performance.now() - started,
          });
        }
        if (socket.readyState !== WebSocket.OPEN) return;
        client.user = String(payload.sub);
        client.jti = typeof payload.jti === "string" ? payload.jti : null;
        authenticated.add(client);
        if (client.jti) byJti.set(client.jti, client);
        presence.set(client.user, (presence.get(client.user) ?? 0) + 1);
        counts.success++;
        socket.send(JSON.stringify({
          type: "authenticated",
          user: { name: client.user, role: payload.role },
          expiresAt: Number(payload.exp) * 1000,
          connectionId: String(++nextId),
        }));
      } catch {
        counts.failure++;
        if (info) {
          await record!({
            ...info,
            user: null,
            outcome: "failure",
            reason: "invalid_signature",
            tokenId: null,
            durationMs: performance.now() - started,
          });
        }
        if (socket.readyState !== WebSocket.OPEN) return;
        socket.send(JSON.stringify({ type: "auth_failed", reason: "invalid_signature" }));
        socket.close(4401, "invalid_signature");
      }
    };
    socket.onclose = () => {
      counts.open--;
      forget(client);
    };
    return response;
  }

  Deno.serve({ port, hostname: "127.0.0.1", onListen: () => {} }, async (req, conn) => {
    const { pathname } = new URL(req.url);
    if (pathname === "/admin/ws") return upgrade(req, conn.remoteAddr.hostname);
    if (pathname === "/healthz") return Response.json({ status: "ok" });
    if (req.method === "POST" && pathname === "/broadcast") {
      // Serialized once; the same string goes to every socket.
      const message = (await req.text()) || statsMessage();
      for (const client of authenticated) {
        if (client.socket.readyState === WebSocket.OPEN) client.socket.send(message);
      }
      return Response.json({ sent: authenticated.size, bytes: message.length });
    }
    if (req.method === "POST" && pathname === "/revoke") {
      const { jti } = await req.json();
      const client = byJti.get(jti);
      if (client) {
        forget(client);
        client.socket.close(4403, "revoked");
      }
      return Response.json({ closed: client ? 1 : 0 });
    }
    return new Response("not found", { status: 404 });
  });
  console.log(JSON.stringify({ msg: "listening", port }));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => Deno.exit(0));
  }
}

if (import.meta.main) serveRaw();
