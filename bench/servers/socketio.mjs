/**
 * What users pick instead: Socket.IO 4 on Node with a JWT auth middleware.
 *
 *   PORT=8002 JWT_SECRET=... node bench/servers/socketio.mjs
 *
 * - Socket.IO at `/socket.io/`; `io.use()` verifies `socket.handshake.auth.token`
 *   with jose (HS256, the same issuer and audience as Lookout) and refuses the
 *   connect with an error otherwise.
 * - `POST /broadcast`: `io.emit("stats_update", stats)`, a stats-like object
 *   of Lookout's shape; Socket.IO encodes the packet once for all sockets.
 * - `POST /revoke` `{"jti"}`: `socket.disconnect(true)` for that token.
 * - `GET /healthz`: 200.
 */
import { createServer } from "node:http";
import { jwtVerify } from "jose";
import { Server } from "socket.io";

function env(name, fallback) {
  const value = process.env[name] ?? fallback;
  if (value === undefined) {
    console.error(`Cannot start the Socket.IO server as ${name} is unset`);
    process.exit(1);
  }
  return value;
}

const port = Number(env("PORT", "8002"));
const secret = new TextEncoder().encode(env("JWT_SECRET"));
const issuer = env("JWT_ISSUER", "lookout");
const audience = env("JWT_AUDIENCE", "lookout");
const startedAt = Date.now();
const byJti = new Map();
const presence = new Map();
const counts = { success: 0, failure: 0 };

function stats() {
  const now = Date.now();
  return {
    at: now,
    instance: "socketio",
    uptimeS: Math.floor((now - startedAt) / 1000),
    connections: {
      open: io.engine.clientsCount,
      authenticated: io.of("/").sockets.size,
      pending: 0,
    },
    attempts: {
      total: counts.success + counts.failure,
      success: counts.success,
      failure: counts.failure,
      byReason: counts.failure ? { invalid_signature: counts.failure } : {},
      lastMinute: { success: 0, failure: 0 },
    },
    presence: [...presence].sort(([a], [b]) => a.localeCompare(b))
      .map(([name, connections]) => ({ name, role: "admin", connections })),
  };
}

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  let text = "";
  for await (const chunk of req) text += chunk;
  return JSON.parse(text || "{}");
}

const http = createServer(async (req, res) => {
  // Socket.IO answers its own path before this handler sees it.
  if (req.url === "/healthz") return json(res, 200, { status: "ok" });
  if (req.method === "POST" && req.url === "/broadcast") {
    const data = stats();
    io.emit("stats_update", data);
    return json(res, 200, {
      sent: io.of("/").sockets.size,
      bytes: JSON.stringify(["stats_update", data]).length + 2,
    });
  }
  if (req.method === "POST" && req.url === "/revoke") {
    const { jti } = await readJson(req);
    const socket = byJti.get(jti);
    socket?.disconnect(true);
    return json(res, 200, { closed: socket ? 1 : 0 });
  }
  if (!req.url?.startsWith("/socket.io/")) json(res, 404, { error: "not_found" });
});

const io = new Server(http, { serveClient: false });

io.use(async (socket, next) => {
  try {
    const token = socket.handshake.auth?.token;
    if (typeof token !== "string") throw new Error("missing_token");
    const { payload } = await jwtVerify(token, secret, {
      algorithms: ["HS256"],
      issuer,
      audience,
      requiredClaims: ["sub", "exp", "iat"],
    });
    socket.data.user = String(payload.sub);
    socket.data.jti = typeof payload.jti === "string" ? payload.jti : null;
    counts.success++;
    next();
  } catch {
    counts.failure++;
    next(new Error("unauthorized"));
  }
});

io.on("connection", (socket) => {
  const { user, jti } = socket.data;
  if (jti) byJti.set(jti, socket);
  presence.set(user, (presence.get(user) ?? 0) + 1);
  socket.on("disconnect", () => {
    if (jti) byJti.delete(jti);
    const n = (presence.get(user) ?? 1) - 1;
    if (n > 0) presence.set(user, n);
    else presence.delete(user);
  });
});

http.listen(port, "127.0.0.1", () => console.log(JSON.stringify({ msg: "listening", port })));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => process.exit(0));
