/**
 * Revocation reaching live sockets (CONTRACT 3 and 4.3): logout closes the
 * session's sockets with 4403 `revoked`, on this instance and on another one
 * sharing the KV file, and the revocation records expire with the tokens.
 */
import assert from "node:assert/strict";
import { explainRefusal } from "../shared/close_explanations.ts";
import { decodeJwt } from "jose";
import { DatabaseSync } from "node:sqlite";
import {
  afterUserRevocation,
  revokeSession,
  revokeToken,
  revokeUser,
} from "../lib/auth/revocation.ts";
import { revokedTokenKey } from "../lib/store/keys.ts";
import { putUser } from "../lib/auth/users.ts";
import {
  login as loginOverHttp,
  randomSecret,
  startProcess,
  startTestServer,
  TestClient,
} from "./helpers.ts";

/** Logs in over JSON; returns the token and the `Cookie` header to send back. */
async function login(server: { url: URL }, username: string, password: string) {
  const { res, token, cookie } = await loginOverHttp(server.url, username, password);
  assert.equal(res.status, 200);
  assert.ok(cookie.startsWith("lookout_session="), "the login sets the session cookie");
  return { token, cookie };
}

/**
 * Logs `user` in on `loginAt`, authenticates a socket with the token on
 * `socketAt`, logs out on `loginAt`; resolves with how the socket closed,
 * how long after the logout was sent, and the token.
 */
async function logoutClosesSocket(
  loginAt: { url: URL },
  socketAt: { wsUrl: string },
  user: { name: string; password: string },
) {
  const { token, cookie } = await login(loginAt, user.name, user.password);
  const client = await TestClient.open(socketAt.wsUrl);
  await client.auth(token);
  const seen = closeTime(client);
  const sent = performance.now();
  const res = await post(loginAt, "/auth/logout", cookie);
  assert.equal(res.status, 204);
  await res.body?.cancel();
  const closed = await seen;
  return {
    close: { code: closed.code, reason: closed.reason },
    latencyMs: closed.at - sent,
    token,
    cookie,
  };
}

/** The payload of a compact JWS, read without verifying (the server did that). */
function payloadOf(token: string): { jti: string; sid: string; exp: number } {
  return decodeJwt(token) as { jti: string; sid: string; exp: number };
}

function post(server: { url: URL }, path: string, cookie: string): Promise<Response> {
  return fetch(new URL(path, server.url), { method: "POST", headers: { Cookie: cookie } });
}

/** Resolves with the close and the `performance.now()` at which the client saw it. */
function closeTime(client: TestClient): Promise<{ code: number; reason: string; at: number }> {
  return new Promise((resolve) => {
    client.ws.addEventListener("close", (e) => {
      resolve({ code: e.code, reason: e.reason, at: performance.now() });
    }, { once: true });
  });
}

/** A user with a generated password, stored in `kv`. */
async function newUser(kv: Deno.Kv, name: string) {
  const password = crypto.randomUUID();
  await putUser(kv, { name, role: "admin", password });
  return { name, password };
}

/** Two Lookout instances in this process, each with its own handle on one KV file. */
async function twoInstances() {
  const path = await Deno.makeTempFile({ prefix: "lookout_revocation_", suffix: ".sqlite3" });
  const kvA = await Deno.openKv(path);
  const kvB = await Deno.openKv(path);
  const env = { JWT_SECRET: randomSecret() };
  const a = await startTestServer(env, { kv: kvA });
  const b = await startTestServer(env, { kv: kvB });
  return {
    a,
    b,
    async [Symbol.asyncDispose]() {
      await a.close();
      await b.close();
      kvA.close();
      kvB.close();
      await Deno.remove(path);
    },
  };
}

Deno.test("POST /auth/logout closes the session's live socket with 4403 revoked and kills its token", async () => {
  await using server = await startTestServer();
  const user = await newUser(server.deps.kv, "dana");
  const { close, latencyMs, token, cookie } = await logoutClosesSocket(server, server, user);
  console.log(`logout → close 4403 on the same instance: ${latencyMs.toFixed(1)} ms`);
  assert.deepEqual(close, { code: 4403, reason: "revoked" });
  assert.ok(latencyMs < 1000, `the socket closed ${latencyMs} ms after the logout`);

  const again = await TestClient.open(server.wsUrl);
  again.send({ type: "auth", token });
  assert.deepEqual(await again.closed, { code: 4403, reason: "revoked" });
  assert.deepEqual(again.received, [{ type: "auth_failed", reason: "revoked" }]);

  const stats = await fetch(new URL("/api/v1/stats", server.url), {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(stats.status, 401);
  assert.deepEqual(await stats.json(), {
    error: "unauthorized",
    reason: "revoked",
    message: explainRefusal("revoked"),
  });

  const refresh = await post(server, "/auth/token", cookie);
  assert.equal(refresh.status, 401, "the old cookie no longer refreshes");
  await refresh.body?.cancel();
});

// Instances in one process are woken by each other's commits through
// kv.watch; the test with another process takes that away, to show the
// 250 ms poll on its own.
Deno.test("POST /auth/logout on one instance closes the session's socket on another within 1 s", async () => {
  await using pair = await twoInstances();
  const { a, b } = pair;
  const user = await newUser(a.deps.kv, "erin");
  const { close, latencyMs, token } = await logoutClosesSocket(a, b, user);
  console.log(`logout on A → close 4403 on B: ${latencyMs.toFixed(1)} ms`);
  assert.deepEqual(close, { code: 4403, reason: "revoked" });
  assert.ok(latencyMs < 1000, `B closed the socket ${latencyMs} ms after the logout on A`);

  const again = await TestClient.open(b.wsUrl);
  again.send({ type: "auth", token });
  assert.deepEqual(await again.closed, { code: 4403, reason: "revoked" });
});

Deno.test("a session revocation that reaches only KV closes the socket on another instance within 1 s", async () => {
  await using pair = await twoInstances();
  const { a, b } = pair;
  const user = await newUser(a.deps.kv, "jude");
  const { token } = await login(a, user.name, user.password);
  const { sid, exp } = payloadOf(token);
  const client = await TestClient.open(b.wsUrl);
  await client.auth(token);
  const seen = closeTime(client);

  // The library call writes the records and the feed event to KV and closes
  // nothing itself: as when the revoking instance is another process or region.
  const sent = performance.now();
  await revokeSession(a.deps.kv, sid, exp * 1000);
  const closed = await seen;
  const latencyMs = closed.at - sent;
  console.log(`revocation in KV only → close 4403 on B: ${latencyMs.toFixed(1)} ms`);
  assert.deepEqual({ code: closed.code, reason: closed.reason }, { code: 4403, reason: "revoked" });
  assert.ok(latencyMs < 1000, `B closed the socket ${latencyMs} ms after the KV write`);
});

Deno.test("POST /auth/logout closes the session's socket on an instance in another process within 1 s", async () => {
  const path = await Deno.makeTempFile({ prefix: "lookout_revocation_", suffix: ".sqlite3" });
  const kv = await Deno.openKv(path);
  try {
    const secret = randomSecret();
    await using a = await startTestServer({ JWT_SECRET: secret }, { kv });
    const b = await startProcess({ KV_PATH: path, JWT_SECRET: secret, LOOKOUT_WORKERS: "1" });
    try {
      const user = await newUser(kv, "kai");
      const { close, latencyMs } = await logoutClosesSocket(a, b, user);
      console.log(`logout on A → close 4403 on B in another process: ${latencyMs.toFixed(1)} ms`);
      assert.deepEqual(close, { code: 4403, reason: "revoked" });
      assert.ok(latencyMs < 1000, `B closed the socket ${latencyMs} ms after the logout on A`);
    } finally {
      b.child.kill("SIGTERM");
      await b.status;
    }
  } finally {
    kv.close();
    await Deno.remove(path);
  }
});

Deno.test("revokeToken() on one instance closes only the sockets of that jti on another", async () => {
  await using pair = await twoInstances();
  const { a, b } = pair;
  const user = await newUser(a.deps.kv, "finn");
  const first = await login(a, user.name, user.password);
  // A second token of the same session and user: same sid, another jti.
  const refresh = await post(a, "/auth/token", first.cookie);
  assert.equal(refresh.status, 200);
  const second = (await refresh.json()).token as string;
  const revoked = payloadOf(first.token);
  const kept = payloadOf(second);
  assert.equal(revoked.sid, kept.sid);
  assert.notEqual(revoked.jti, kept.jti);

  const victim = await TestClient.open(b.wsUrl);
  await victim.auth(first.token);
  const bystander = await TestClient.open(b.wsUrl);
  await bystander.auth(second);
  const seen = closeTime(victim);

  const sent = performance.now();
  await a.deps.revokeToken(revoked.jti, revoked.exp * 1000);
  const closed = await seen;
  const latencyMs = closed.at - sent;
  console.log(`revokeToken on A → close 4403 on B: ${latencyMs.toFixed(1)} ms`);
  assert.deepEqual({ code: closed.code, reason: closed.reason }, { code: 4403, reason: "revoked" });
  assert.ok(latencyMs < 1000, `B closed the socket ${latencyMs} ms after revokeToken on A`);

  // B polls every 250 ms: wait past several polls, then the other token's socket still answers.
  await new Promise((r) => setTimeout(r, 750));
  bystander.send({ type: "ping", id: "still-here" });
  assert.equal((await bystander.next("pong")).id, "still-here");
  assert.equal(bystander.ws.readyState, WebSocket.OPEN);

  const fresh = await TestClient.open(b.wsUrl);
  await fresh.auth(second);
  await fresh.close();
  await bystander.close();
});

/** KV key encoding (FoundationDB tuple layer) of a key of plain ASCII strings. */
function encodeStringKey(parts: string[]): Uint8Array {
  const bytes: number[] = [];
  for (const part of parts) bytes.push(0x02, ...new TextEncoder().encode(part), 0x00);
  return Uint8Array.from(bytes);
}

/**
 * The stored expiry (epoch ms) of a key, read from the KV file's SQLite table.
 * `kv.get` does not show `expireIn`, and local KV deletes expired keys only in
 * a periodic sweep, so waiting for the key to vanish is not observable in a
 * test; the column the sweep reads is.
 */
function storedExpiry(path: string, key: string[]): number | null {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const row = db.prepare("SELECT expiration_ms FROM kv WHERE k = ?").get(encodeStringKey(key));
    return row ? Number(row.expiration_ms) : null;
  } finally {
    db.close();
  }
}

Deno.test("revocation records expire about when the tokens they cover would", async () => {
  const path = await Deno.makeTempFile({ prefix: "lookout_revocation_", suffix: ".sqlite3" });
  const kv = await Deno.openKv(path);
  try {
    await using server = await startTestServer({ ACCESS_TOKEN_TTL_S: "600" }, { kv });
    const user = await newUser(kv, "gale");
    const { token, cookie } = await login(server, user.name, user.password);
    const { jti, sid, exp } = payloadOf(token);
    // Slack the records keep beyond the token's end, for clock skew (lib/auth/revocation.ts).
    const slackMs = 60_000;
    const toleranceMs = 5_000;

    await server.deps.revokeToken(jti, exp * 1000);
    assert.notEqual((await kv.get(["revoked_tokens", jti])).versionstamp, null);
    const tokenExpiry = storedExpiry(path, ["revoked_tokens", jti]);
    assert.ok(tokenExpiry !== null && tokenExpiry > 0, "the record has an expiry");
    assert.ok(
      Math.abs(tokenExpiry - (exp * 1000 + slackMs)) < toleranceMs,
      `the token record expires at ${tokenExpiry}, the token at ${exp * 1000}`,
    );

    const loggedOutAt = Date.now();
    const res = await post(server, "/auth/logout", cookie);
    assert.equal(res.status, 204);
    await res.body?.cancel();
    assert.notEqual((await kv.get(["revoked_sessions", sid])).versionstamp, null);
    const sessionExpiry = storedExpiry(path, ["revoked_sessions", sid]);
    assert.ok(sessionExpiry !== null && sessionExpiry > 0, "the session record has an expiry");
    // Tokens issued under the session live at most one ACCESS_TOKEN_TTL_S from the logout.
    assert.ok(
      Math.abs(sessionExpiry - (loggedOutAt + 600_000 + slackMs)) < toleranceMs,
      `the session record expires ${sessionExpiry - loggedOutAt} ms after the logout`,
    );

    // A token that has already expired needs no record for long.
    const stale = crypto.randomUUID();
    const before = Date.now();
    await server.deps.revokeToken(stale, before - 10 * 60_000);
    const staleExpiry = storedExpiry(path, ["revoked_tokens", stale]);
    assert.ok(staleExpiry !== null && staleExpiry > 0);
    assert.ok(
      staleExpiry - before <= 1_000 + toleranceMs,
      `a record for a long-expired token lives ${staleExpiry - before} ms`,
    );
    const claims = {
      sub: user.name,
      role: "admin" as const,
      jti: stale,
      sid: null,
      iat: 0,
      exp: 0,
    };
    // The record is in KV while it lives; the instance itself never needs to
    // ask about a token that expired long ago (exp fails first).
    assert.notEqual((await kv.get(revokedTokenKey(claims.jti))).versionstamp, null);
  } finally {
    kv.close();
    await Deno.remove(path);
  }
});

Deno.test("a revocation written to KV by another process is in force on this instance within a poll", async () => {
  const path = await Deno.makeTempFile({ prefix: "lookout_revocation_", suffix: ".sqlite3" });
  const kv = await Deno.openKv(path);
  const other = await Deno.openKv(path);
  try {
    await using server = await startTestServer({}, { kv });
    const token = await server.mint({ sub: "ivy" });
    const { jti, exp } = payloadOf(token);
    // Another process (its own handle) revokes the token.
    await revokeToken(other, jti, exp * 1000);
    await new Promise((r) => setTimeout(r, 600));
    const client = await TestClient.open(server.wsUrl);
    client.send({ type: "auth", token });
    assert.deepEqual(await client.closed, { code: 4403, reason: "revoked" });
  } finally {
    other.close();
    kv.close();
    await Deno.remove(path);
  }
});

/** How the client's socket closed, or a note that it was still open after `ms`. */
async function closedWithin(client: TestClient, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      client.closed,
      new Promise((r) => timer = setTimeout(() => r(`still open after ${ms} ms`), ms)),
    ]);
  } finally {
    clearTimeout(timer);
    if (client.ws.readyState <= WebSocket.OPEN) client.ws.close();
  }
}

Deno.test("revokeUser() from another KV handle closes that user's older sockets, and binds instances started later", async () => {
  const path = await Deno.makeTempFile({ prefix: "lookout_revocation_", suffix: ".sqlite3" });
  const kv = await Deno.openKv(path);
  const other = await Deno.openKv(path);
  const later = await Deno.openKv(path);
  const env = { JWT_SECRET: randomSecret() };
  try {
    await using server = await startTestServer(env, { kv });
    // A minted token has no session: only the user-level revocation can catch it.
    const old = await server.mint({ sub: "gus" });
    const victim = await TestClient.open(server.wsUrl);
    await victim.auth(old);
    const bystander = await TestClient.open(server.wsUrl);
    await bystander.auth(await server.mint({ sub: "hal" }));

    const event = await revokeUser(other, "gus");
    assert.equal(event.user, "gus");
    assert.deepEqual(await closedWithin(victim, 2000), { code: 4403, reason: "revoked" });
    assert.equal(bystander.ws.readyState, WebSocket.OPEN, "another user's socket stays");

    // A token issued after the revocation is not covered by it.
    await afterUserRevocation(kv, "gus");
    const fresh = await TestClient.open(server.wsUrl);
    await fresh.auth(await server.mint({ sub: "gus" }));
    await fresh.close();

    // An instance that starts after the event reads the record, not the event.
    await using restarted = await startTestServer(env, { kv: later });
    const again = await TestClient.open(restarted.wsUrl);
    again.send({ type: "auth", token: old });
    assert.deepEqual(await closedWithin(again, 2000), { code: 4403, reason: "revoked" });
    await bystander.close();
  } finally {
    later.close();
    other.close();
    kv.close();
    await Deno.remove(path);
  }
});
