/** Logins in the attempt log: CONTRACT 9 (transport `login`). */
import assert from "node:assert/strict";
import { putUser } from "../lib/auth/users.ts";
import type { Attempt } from "../shared/protocol.ts";
import { login, randomPassword, startTestServer, TestClient, type TestServer } from "./helpers.ts";

async function withUser(server: TestServer): Promise<string> {
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "alice", role: "admin", password });
  return password;
}

async function logins(server: TestServer): Promise<Attempt[]> {
  return (await server.attempts(500)).filter((a) => a.transport === "login");
}

function formPost(server: TestServer, fields: Record<string, string>, headers = {}) {
  return fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers,
    body: new URLSearchParams(fields),
    redirect: "manual",
  });
}

Deno.test("POST /auth/login records ok and invalid_credentials, user only for an existing account", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const ok = await login(server.url, "alice", password, { "User-Agent": "audit-test/1" });
  assert.equal(ok.res.status, 200);
  const wrong = await login(server.url, "alice", randomPassword());
  const unknown = await login(server.url, "nobody", randomPassword());
  assert.equal(wrong.res.status, 401);
  assert.equal(unknown.res.status, 401);
  // The answers stay identical: the record's user is never returned.
  assert.deepEqual(wrong.body, unknown.body);
  assert.deepEqual(unknown.body, {
    error: "invalid_credentials",
    message:
      "The user name or the password is wrong: check both, or have an admin reset the password with deno task user:add NAME",
  });

  const [u, w, o] = await logins(server); // newest first
  assert.equal(o.outcome, "success");
  assert.equal(o.reason, "ok");
  assert.equal(o.user, "alice");
  assert.equal(o.userAgent, "audit-test/1");
  assert.equal(o.ip, "127.0.0.1");
  assert.equal(o.tokenId, null, "the login's token id is not in the record");
  assert.equal(w.reason, "invalid_credentials");
  assert.equal(w.outcome, "failure");
  assert.equal(w.user, "alice", "an existing account is named");
  assert.equal(u.reason, "invalid_credentials");
  assert.equal(u.user, null, "an unknown name is not recorded as a user");
  // Readable through the API with the transport filter.
  const res = await fetch(new URL("/api/v1/attempts?transport=login", server.url), {
    headers: { Authorization: `Bearer ${ok.token}` },
  });
  const page = await res.json();
  assert.deepEqual(page.items.map((a: Attempt) => a.reason), [
    "invalid_credentials",
    "invalid_credentials",
    "ok",
  ]);
  const secret = JSON.stringify(await server.attempts(500));
  assert.ok(!secret.includes(password), "no password in the log");
  assert.ok(!secret.includes(ok.token), "no token in the log");
});

Deno.test("POST /auth/login (form) records each login too, and a malformed body as bad_message", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const good = await formPost(server, { username: "alice", password });
  assert.equal(good.status, 303);
  const bad = await formPost(server, { username: "alice" });
  assert.equal(bad.status, 400);
  await bad.body?.cancel();
  const notJson = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{nope",
  });
  assert.equal(notJson.status, 400);
  await notJson.body?.cancel();
  const huge = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: "alice", password: "x".repeat(20_000) }),
  });
  assert.equal(huge.status, 400);
  await huge.body?.cancel();
  const [h, j, b, g] = await logins(server);
  assert.deepEqual([g.reason, g.user], ["ok", "alice"]);
  assert.deepEqual([b.reason, b.user, b.outcome], ["bad_message", "alice", "failure"]);
  assert.deepEqual([j.reason, j.user], ["bad_message", null]);
  assert.deepEqual([h.reason, h.user], ["bad_message", null], "a body over the limit");
});

Deno.test("POST /auth/login refused cross-site (403) is not recorded", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const viaForm = await formPost(server, { username: "alice", password }, {
    Origin: "https://evil.example",
  });
  assert.equal(viaForm.status, 403);
  await viaForm.body?.cancel();
  const viaJson = await login(server.url, "alice", password, { "Sec-Fetch-Site": "cross-site" });
  assert.equal(viaJson.res.status, 403);
  assert.deepEqual(await logins(server), []);
});

Deno.test("POST /auth/login under 25 concurrent wrong passwords: the lock holds and each is one record", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const answers = await Promise.all(
    Array.from({ length: 25 }, () => login(server.url, "alice", randomPassword())),
  );
  const statuses = answers.map((a) => a.res.status);
  assert.equal(statuses.filter((s) => s === 401).length, 5, statuses.join(","));
  assert.equal(statuses.filter((s) => s === 429).length, 20, statuses.join(","));
  const records = await logins(server);
  assert.equal(records.length, 25, "exactly one record per request");
  assert.equal(records.filter((r) => r.reason === "invalid_credentials").length, 5);
  assert.equal(records.filter((r) => r.reason === "rate_limited").length, 20);
  assert.ok(records.every((r) => r.user === "alice" && r.outcome === "failure"));
  // The right password is refused while locked, and that refusal is recorded too.
  const locked = await login(server.url, "alice", password);
  assert.equal(locked.res.status, 429);
  assert.equal((await logins(server))[0].reason, "rate_limited");
  // Login failures do not hold the address off the socket (its own limit).
  const client = await TestClient.open(server.wsUrl);
  const authed = await client.auth(await server.mint());
  assert.equal(authed.type, "authenticated");
  await client.close();
});

Deno.test("POST /auth/login over the per-IP limit is recorded rate_limited without a user", async () => {
  await using server = await startTestServer({}, { limits: { loginPerIp: 2 } });
  await withUser(server);
  for (let i = 0; i < 3; i++) await login(server.url, "alice", randomPassword());
  const [last] = await logins(server);
  assert.deepEqual([last.reason, last.user], ["rate_limited", null]);
  assert.equal((await logins(server)).length, 3);
});
