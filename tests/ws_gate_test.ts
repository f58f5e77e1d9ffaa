/**
 * `/admin/ws` authentication: one test per pre-upgrade case and per row of
 * CONTRACT 4.3, each checking what the client saw and the stored attempt.
 */
import assert from "node:assert/strict";
import { decodeJwt, SignJWT } from "jose";
import { ServerMessage } from "../shared/protocol.ts";
import {
  claims,
  forge,
  randomSecret,
  rawUpgrade,
  startTestServer,
  TestClient,
  type TestServer,
  unsecured,
} from "./helpers.ts";

/**
 * Opens a socket, sends `first` as the first message, and checks the client
 * got exactly one `auth_failed` with `reason`, then a close with `code`, and
 * that one failed attempt was stored with that reason.
 */
async function expectRejected(
  server: TestServer,
  first: string | Uint8Array | null,
  reason: string,
  code: number,
) {
  const client = await TestClient.open(server.wsUrl);
  if (first !== null) client.ws.send(first);
  const closed = await client.closed;
  assert.deepEqual(client.received, [{ type: "auth_failed", reason }]);
  assert.deepEqual(closed, { code, reason });
  const [attempt] = await server.attempts(1);
  assert.equal(attempt.outcome, "failure");
  assert.equal(attempt.reason, reason);
  assert.equal(attempt.transport, "message");
  assert.equal(attempt.ip, "127.0.0.1");
  return attempt;
}

function authMessage(token: unknown): string {
  return JSON.stringify({ type: "auth", token });
}

Deno.test("/admin/ws answers a plain GET with 426 and records nothing", async () => {
  await using server = await startTestServer();
  const res = await fetch(server.wsUrl.replace("ws:", "http:"));
  assert.equal(res.status, 426);
  assert.equal(res.headers.get("upgrade"), "websocket");
  assert.equal((await res.json()).error, "upgrade_required");
  assert.deepEqual(await server.attempts(), []);
});

Deno.test("/admin/ws refuses a foreign Origin with 403 bad_origin before upgrading", async () => {
  await using server = await startTestServer();
  const res = await rawUpgrade(server.wsUrl, { Origin: "https://evil.example" });
  assert.equal(res.status, 403);
  assert.equal(JSON.parse(res.body).reason, "bad_origin");
  // The answer says what was expected and from which headers.
  const host = `127.0.0.1:${server.url.port}`;
  assert.deepEqual(JSON.parse(res.body), {
    error: "bad_origin",
    reason: "bad_origin",
    message:
      `origin https://evil.example may not open /admin/ws: expected http://${host} (from Host: ${host})`,
    expected: [`http://${host}`],
    from: { Host: host },
  });
  assert.ok(
    server.logs.some((l) =>
      l.includes("upgrade refused: bad origin") && l.includes(`expected http://${host}`)
    ),
    "the log line says what was expected",
  );
  const [attempt] = await server.attempts();
  assert.equal(attempt.reason, "bad_origin");
  assert.equal(attempt.transport, "upgrade");
  assert.equal(attempt.origin, "https://evil.example");
  assert.equal(attempt.user, null);
});

Deno.test("/admin/ws allows the request's own origin by default and listed origins when set", async () => {
  await using server = await startTestServer();
  const own = `http://127.0.0.1:${server.url.port}`;
  const client = await TestClient.open(server.wsUrl, { headers: { Origin: own } });
  await client.auth(await server.mint());
  await client.close();

  await using listed = await startTestServer({
    ALLOWED_ORIGINS: "https://admin.example.com, https://ops.example.com",
  });
  const ok = await rawUpgrade(listed.wsUrl, { Origin: "https://ops.example.com" });
  assert.equal(ok.status, 101);
  const own2 = await rawUpgrade(listed.wsUrl, { Origin: `http://127.0.0.1:${listed.url.port}` });
  assert.equal(own2.status, 403, "only the listed origins are allowed once the list is set");
  assert.deepEqual(JSON.parse(own2.body).expected, [
    "https://admin.example.com",
    "https://ops.example.com",
  ]);
  assert.deepEqual(JSON.parse(own2.body).from, {
    ALLOWED_ORIGINS: "https://admin.example.com,https://ops.example.com",
  });
});

for (const param of ["token", "access_token", "authorization"]) {
  Deno.test(`/admin/ws refuses ?${param}= with 400 token_in_url and never stores the token`, async () => {
    await using server = await startTestServer();
    const token = await server.mint();
    const res = await rawUpgrade(`${server.wsUrl}?${param}=${token}`);
    assert.equal(res.status, 400);
    const body = JSON.parse(res.body);
    assert.equal(body.reason, "token_in_url");
    assert.match(body.message, /first message/);
    assert.ok(!res.body.includes(token));
    const [attempt] = await server.attempts();
    assert.equal(attempt.reason, "token_in_url");
    assert.equal(attempt.transport, "upgrade");
    assert.ok(!JSON.stringify(attempt).includes(token));
  });
}

Deno.test("/admin/ws records the nearest X-Forwarded-For hop as the IP only when it is an address (TRUST_PROXY=true)", async () => {
  await using server = await startTestServer({ TRUST_PROXY: "true" });
  const cases: [string, string][] = [
    ["203.0.113.7", "203.0.113.7"],
    ["198.51.100.1, 2001:db8::7", "2001:db8::7"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["cafe", "127.0.0.1"],
    ["deadbeef", "127.0.0.1"],
    ["::::", "127.0.0.1"],
    ["....", "127.0.0.1"],
    ["999.999.999.999", "127.0.0.1"],
    ["203.0.113.7, 01.2.3.4", "127.0.0.1"],
    ["192.0.2.1:443", "127.0.0.1"],
    ["fe80::1%eth0", "127.0.0.1"],
  ];
  for (const [forwarded, ip] of cases) {
    // A token in the URL is refused before the upgrade and recorded with the client's IP.
    const res = await rawUpgrade(`${server.wsUrl}?token=x`, { "X-Forwarded-For": forwarded });
    assert.equal(res.status, 400, forwarded);
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.reason, "token_in_url");
    assert.equal(attempt.ip, ip, forwarded);
  }
});

Deno.test("/admin/ws answers 401 with the reason for a failing Authorization: Bearer header", async () => {
  await using server = await startTestServer();
  const expired = await forge(
    claims({
      sub: "bob",
      iat: Math.floor(Date.now() / 1000) - 700,
      exp: Math.floor(Date.now() / 1000) - 100,
    }),
    server.secret,
  );
  const cases: [string, string][] = [
    [`Bearer ${expired}`, "token_expired"],
    [`Bearer ${await forge(claims(), randomSecret())}`, "invalid_signature"],
    ["Bearer not-a-jwt", "malformed_token"],
    ["Bearer", "missing_token"],
  ];
  for (const [header, reason] of cases) {
    const res = await rawUpgrade(server.wsUrl, { Authorization: header });
    assert.equal(res.status, 401, header);
    assert.equal(JSON.parse(res.body).reason, reason);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.reason, reason);
    assert.equal(attempt.transport, "header");
  }
  const [expiredAttempt] = (await server.attempts()).filter((a) => a.reason === "token_expired");
  assert.equal(expiredAttempt.user, "bob", "a verified signature names the user");
});

Deno.test("/admin/ws answers malformed_token for a signed token that is not strict base64url, by message and by header", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const [head, payload, signature] = token.split(".");
  const spaced = `${head}.${payload}.${signature.slice(0, 8)} ${signature.slice(8)}`;
  // Each of these once verified: jose's base64url decoding skips whitespace and padding.
  for (const bad of [`${token} `, `${token}\n`, `${token}\t`, spaced, `${token}=`, `${token}==`]) {
    // Not expectRejected: on a server that accepts the token no close would come.
    const client = await TestClient.open(server.wsUrl);
    client.send({ type: "auth", token: bad });
    assert.deepEqual(await client.next(), { type: "auth_failed", reason: "malformed_token" });
    assert.deepEqual(await client.closed, { code: 4401, reason: "malformed_token" });
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.reason, "malformed_token");
    assert.equal(attempt.transport, "message");
  }
  for (const bad of [spaced, `${token}=`, `${head}.${payload}=.${signature}`]) {
    const res = await rawUpgrade(server.wsUrl, { Authorization: `Bearer ${bad}` });
    assert.equal(res.status, 401, bad);
    assert.equal(JSON.parse(res.body).reason, "malformed_token");
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.reason, "malformed_token");
    assert.equal(attempt.transport, "header");
    const api = await fetch(new URL("/api/v1/stats", server.url), {
      headers: { Authorization: `Bearer ${bad}` },
    });
    assert.equal(api.status, 401, `/api/v1/stats with ${bad}`);
    await api.body?.cancel();
  }
  // The same token, exactly as issued, still passes both ways.
  const client = await TestClient.open(server.wsUrl);
  assert.equal((await client.auth(token)).user.name, "alice");
  await client.close();
  const upgraded = await rawUpgrade(server.wsUrl, { Authorization: `Bearer ${token}` });
  assert.equal(upgraded.status, 101);
});

Deno.test("/admin/ws authenticates a valid Authorization: Bearer header at once, with no auth message", async () => {
  await using server = await startTestServer();
  const token = await server.mint({ sub: "cli-bot", role: "viewer" });
  const client = await TestClient.open(server.wsUrl, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const hello = await client.next();
  assert.equal(hello.type, "authenticated");
  if (hello.type === "authenticated") {
    assert.deepEqual(hello.user, { name: "cli-bot", role: "viewer" });
  }
  assert.equal((await client.next()).type, "stats_update");
  client.send({ type: "ping", id: "p1" });
  assert.equal((await client.next("pong")).id, "p1");
  await client.close();
  const [attempt] = await server.attempts();
  assert.equal(attempt.outcome, "success");
  assert.equal(attempt.transport, "header");
  assert.equal(attempt.user, "cli-bot");
});

Deno.test("/admin/ws authenticates a first auth message, then sends stats_update", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl, { headers: { "User-Agent": "gate-test/1" } });
  const token = await server.mint({ sub: "alice", ttlS: 600 });
  client.send({ type: "auth", token });
  const hello = await client.next();
  assert.equal(hello.type, "authenticated");
  ServerMessage.parse(hello);
  if (hello.type === "authenticated") {
    assert.deepEqual(hello.user, { name: "alice", role: "admin" });
    assert.ok(Math.abs(hello.expiresAt - (Date.now() + 600_000)) < 5000);
    assert.ok(hello.connectionId.length > 0);
  }
  const stats = await client.next();
  assert.equal(stats.type, "stats_update");
  ServerMessage.parse(stats);
  await client.close();
  const [attempt] = await server.attempts();
  assert.equal(attempt.outcome, "success");
  assert.equal(attempt.reason, "ok");
  assert.equal(attempt.user, "alice");
  assert.match(attempt.userAgent ?? "", /gate-test\/1/);
  const payload = decodeJwt(token);
  assert.equal(attempt.tokenId, payload.jti, "the attempt keeps the jti, not the token");
});

// CONTRACT 4.3, row by row.

Deno.test("/admin/ws closes 4400 bad_message for a first message that is not JSON", async () => {
  await using server = await startTestServer();
  await expectRejected(server, "hello", "bad_message", 4400);
});

Deno.test("/admin/ws closes 4400 bad_message for a first message that is not an object", async () => {
  await using server = await startTestServer();
  await expectRejected(server, "[1,2]", "bad_message", 4400);
  await expectRejected(server, "null", "bad_message", 4400);
});

Deno.test("/admin/ws closes 4400 bad_message for a binary first message", async () => {
  await using server = await startTestServer();
  await expectRejected(server, new TextEncoder().encode(authMessage("x")), "bad_message", 4400);
});

Deno.test("/admin/ws closes 4400 bad_message for a first message that is not auth", async () => {
  await using server = await startTestServer();
  await expectRejected(server, JSON.stringify({ type: "ping" }), "bad_message", 4400);
});

Deno.test("/admin/ws closes 4401 missing_token for an auth message without a usable token", async () => {
  await using server = await startTestServer();
  await expectRejected(server, JSON.stringify({ type: "auth" }), "missing_token", 4401);
  await expectRejected(server, authMessage(""), "missing_token", 4401);
  await expectRejected(server, authMessage(42), "missing_token", 4401);
  await expectRejected(server, authMessage(null), "missing_token", 4401);
});

Deno.test("/admin/ws closes 4401 malformed_token for a token that is not a compact JWS", async () => {
  await using server = await startTestServer();
  await expectRejected(server, authMessage("abc"), "malformed_token", 4401);
  await expectRejected(server, authMessage("a.b.c"), "malformed_token", 4401);
  await expectRejected(server, authMessage("eyJ!.eyJ!.x"), "malformed_token", 4401);
});

Deno.test("/admin/ws closes 4401 alg_not_allowed for alg none, HS512 and RS256", async () => {
  await using server = await startTestServer();
  await expectRejected(server, authMessage(unsecured(claims())), "alg_not_allowed", 4401);
  await expectRejected(
    server,
    authMessage(await forge(claims(), server.secret, "HS512")),
    "alg_not_allowed",
    4401,
  );
  const { privateKey } = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  ) as CryptoKeyPair;
  const rs = await new SignJWT(claims()).setProtectedHeader({ alg: "RS256" }).sign(privateKey);
  const attempt = await expectRejected(server, authMessage(rs), "alg_not_allowed", 4401);
  assert.equal(attempt.user, null, "an unverified token names no user");
});

Deno.test("/admin/ws closes 4401 invalid_signature for a token signed with another key", async () => {
  await using server = await startTestServer();
  const attempt = await expectRejected(
    server,
    authMessage(await forge(claims({ sub: "mallory" }), randomSecret())),
    "invalid_signature",
    4401,
  );
  assert.equal(attempt.user, null);
  assert.equal(attempt.tokenId, null);
});

Deno.test("/admin/ws closes 4401 token_expired for an expired token", async () => {
  await using server = await startTestServer();
  const now = Math.floor(Date.now() / 1000);
  const payload = claims({ sub: "bob", iat: now - 120, exp: now - 1 });
  const attempt = await expectRejected(
    server,
    authMessage(await forge(payload, server.secret)),
    "token_expired",
    4401,
  );
  assert.equal(attempt.user, "bob");
  assert.equal(attempt.tokenId, payload.jti);
});

Deno.test("/admin/ws closes 4401 token_not_yet_valid for nbf or iat in the future", async () => {
  await using server = await startTestServer();
  const now = Math.floor(Date.now() / 1000);
  await expectRejected(
    server,
    authMessage(await forge(claims({ nbf: now + 120 }), server.secret)),
    "token_not_yet_valid",
    4401,
  );
  await expectRejected(
    server,
    authMessage(await forge(claims({ iat: now + 120, exp: now + 900 }), server.secret)),
    "token_not_yet_valid",
    4401,
  );
});

Deno.test("/admin/ws closes 4401 invalid_claims for a missing claim or a wrong iss or aud", async () => {
  await using server = await startTestServer();
  for (
    const bad of [
      { sub: undefined },
      { exp: undefined },
      { iat: undefined },
      { iss: "someone-else" },
      { aud: "another-app" },
    ]
  ) {
    await expectRejected(
      server,
      authMessage(await forge(claims(bad), server.secret)),
      "invalid_claims",
      4401,
    );
  }
});

Deno.test("/admin/ws closes 4401 invalid_claims on a re-auth for another user", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint({ sub: "alice" }));
  client.send({ type: "auth", token: await server.mint({ sub: "bob" }) });
  assert.deepEqual(await client.next("auth_failed"), {
    type: "auth_failed",
    reason: "invalid_claims",
  });
  assert.deepEqual(await client.closed, { code: 4401, reason: "invalid_claims" });
  const [attempt] = await server.attempts(1);
  assert.equal(attempt.reason, "invalid_claims");
  assert.equal(attempt.user, "bob");
});

Deno.test("/admin/ws closes 4403 revoked for a token whose jti was revoked", async () => {
  await using server = await startTestServer();
  const now = Math.floor(Date.now() / 1000);
  const payload = claims({ sub: "alice", jti: "revoked-jti-1" });
  await server.deps.revokeToken("revoked-jti-1", (now + 600) * 1000);
  const attempt = await expectRejected(
    server,
    authMessage(await forge(payload, server.secret)),
    "revoked",
    4403,
  );
  assert.equal(attempt.tokenId, "revoked-jti-1");
});

Deno.test("/admin/ws closes 4403 forbidden for a missing or unknown role", async () => {
  await using server = await startTestServer();
  await expectRejected(
    server,
    authMessage(await server.mint({ role: "guest" })),
    "forbidden",
    4403,
  );
  await expectRejected(
    server,
    authMessage(await forge(claims({ role: undefined }), server.secret)),
    "forbidden",
    4403,
  );
});

Deno.test("/admin/ws closes 4408 auth_timeout when no auth message comes in time", async () => {
  await using server = await startTestServer({ AUTH_TIMEOUT_MS: "300" });
  const started = Date.now();
  const attempt = await expectRejected(server, null, "auth_timeout", 4408);
  const waited = Date.now() - started;
  assert.ok(waited >= 250 && waited < 3000, `closed after ${waited} ms`);
  assert.ok(attempt.durationMs >= 250);
});

Deno.test("/admin/ws closes 1009 message_too_large for a 70 KB first message, before parsing it", async () => {
  await using server = await startTestServer();
  const huge = authMessage("x".repeat(70 * 1024));
  await expectRejected(server, huge, "message_too_large", 1009);
});

Deno.test("/admin/ws closes 1009 message_too_large for an oversized message after auth", async () => {
  await using server = await startTestServer({ MAX_MESSAGE_BYTES: "1024" });
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  // 400 three-byte characters: 400 UTF-16 units but 1200 bytes.
  client.send(JSON.stringify({ type: "ping", id: "€".repeat(400) }));
  assert.deepEqual(await client.closed, { code: 1009, reason: "message_too_large" });
});

Deno.test("/admin/ws closes 1001 when the server stops", async () => {
  const server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  await server.close();
  assert.equal((await client.closed).code, 1001);
});

Deno.test("/admin/ws sends nothing but auth_failed to a socket that pipelines requests before auth", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  client.send({ type: "get_stats" });
  client.send({ type: "subscribe", events: ["attempts"] });
  client.send({ type: "ping" });
  await client.closed;
  assert.deepEqual(client.received, [{ type: "auth_failed", reason: "bad_message" }]);
});

Deno.test("/admin/ws handles requests pipelined right after auth in order, once authenticated", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  client.send({ type: "auth", token: await server.mint() });
  client.send({ type: "ping", id: 7 });
  assert.equal((await client.next()).type, "authenticated");
  assert.equal((await client.next()).type, "stats_update");
  assert.deepEqual((await client.next("pong")).id, 7);
  await client.close();
});

Deno.test("/admin/ws cuts a 10 KB user agent and a hostile origin to 1024 characters, stored as text", async () => {
  await using server = await startTestServer();
  // Tabs and bytes above 0x7f are legal in header values; they arrive as text.
  const origin = "https://" + "\t\xff".repeat(3000) + ".example";
  const res = await rawUpgrade(server.wsUrl, {
    Origin: origin,
    "User-Agent": "U".repeat(10 * 1024),
  });
  assert.equal(res.status, 403);
  const [attempt] = await server.attempts();
  assert.equal(attempt.userAgent, "U".repeat(1024));
  assert.equal(attempt.origin?.length, 1024);
  assert.ok(attempt.origin?.startsWith("https://\t"));
});

Deno.test("/admin/ws survives control characters in headers: HTTP refuses them, the server goes on", async () => {
  await using server = await startTestServer();
  const res = await rawUpgrade(server.wsUrl, { Origin: "https://a\u0001\u001b[31mb.example" });
  assert.equal(res.status, 400);
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  await client.close();
});

Deno.test("/admin/ws closes 1011 and authenticates nobody when the attempt log cannot be written", async () => {
  const kv = await Deno.openKv(":memory:");
  await using server = await startTestServer({}, { kv });
  const token = await server.mint();
  const client = await TestClient.open(server.wsUrl);
  kv.close();
  client.send({ type: "auth", token });
  const closed = await client.closed;
  assert.equal(closed.code, 1011);
  assert.deepEqual(client.received, []);
  const refused = await rawUpgrade(server.wsUrl, { Origin: "https://evil.example" });
  assert.equal(refused.status, 503, "a refusal that cannot be recorded is not answered as usual");
});

Deno.test("/admin/ws leaves a Basic Authorization header to the first message (nginx auth_basic in front)", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl, {
    headers: { Authorization: "Basic " + btoa("alice:proxy-password") },
  });
  await client.auth(await server.mint());
  await client.close();
  const attempts = await server.attempts();
  assert.equal(attempts.length, 1);
  assert.equal(attempts[0].transport, "message");
});

Deno.test("/admin/ws upgrades an Upgrade: WebSocket header spelt in any case", async () => {
  await using server = await startTestServer();
  const res = await rawUpgrade(server.wsUrl, { Upgrade: "WebSocket" });
  assert.equal(res.status, 101);
});

Deno.test("/admin/ws answers a broken handshake with 426 or 400 that names the header, never 500", async () => {
  await using server = await startTestServer();
  const noConnection = await rawUpgrade(server.wsUrl, { Connection: "keep-alive" });
  assert.equal(noConnection.status, 426);
  assert.match(JSON.parse(noConnection.body).message, /Connection header/);
  const oldVersion = await rawUpgrade(server.wsUrl, { "Sec-WebSocket-Version": "8" });
  assert.equal(oldVersion.status, 426);
  assert.equal(oldVersion.headers.get("sec-websocket-version"), "13");
  const badKey = await rawUpgrade(server.wsUrl, { "Sec-WebSocket-Key": "short" });
  assert.equal(badKey.status, 400);
  assert.equal(JSON.parse(badKey.body).error, "bad_handshake");
  assert.deepEqual(await server.attempts(), [], "a broken handshake is no authentication attempt");
});

Deno.test("/admin/ws closes 4401 missing_token on a re-auth without a token, and records it", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  client.send({ type: "auth" });
  assert.equal((await client.next("auth_failed")).reason, "missing_token");
  assert.deepEqual(await client.closed, { code: 4401, reason: "missing_token" });
  const [attempt] = await server.attempts(1);
  assert.equal(attempt.reason, "missing_token");
});

Deno.test("/admin/ws sends a first stats_update that already counts the socket it is sent to", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint({ sub: "alice" }));
  const first = await client.next("stats_update");
  assert.equal(first.data.connections.authenticated, 1);
  assert.deepEqual(first.data.presence, [{ name: "alice", role: "admin", connections: 1 }]);
  client.send({ type: "subscribe", events: ["presence"] });
  const presence = await client.next("presence");
  assert.deepEqual(presence.data.online, [{ name: "alice", role: "admin", connections: 1 }]);
  await client.close();
});

Deno.test("/admin/ws sends a first stats_update that counts the attempt that authenticated it", async () => {
  await using server = await startTestServer();
  const warmup = await TestClient.open(server.wsUrl);
  await warmup.auth(await server.mint());
  await warmup.close();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  const first = await client.next("stats_update");
  assert.equal(first.data.attempts.success, 2);
  assert.equal(first.data.attempts.total, 2);
  await client.close();
});
