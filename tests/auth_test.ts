/** Login, sessions, refresh, logout, CSRF and security headers: CONTRACT 3. */
import assert from "node:assert/strict";
import { explainRefusal } from "../shared/close_explanations.ts";
import { decodeJwt } from "jose";
import { putUser } from "../lib/auth/users.ts";
import { createSession, liveSession } from "../lib/auth/sessions.ts";
import { login, randomPassword, startTestServer, TestClient, type TestServer } from "./helpers.ts";

async function withUser(server: TestServer, role: "admin" | "viewer" = "admin") {
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "alice", role, password });
  return password;
}

function form(fields: Record<string, string>): URLSearchParams {
  return new URLSearchParams(fields);
}

Deno.test("GET /login serves the sign-in form with strict security headers", async () => {
  await using server = await startTestServer();
  const res = await fetch(new URL("/login", server.url));
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /^<!doctype html>/);
  // The form posts to /login (which /auth/login's handler serves too), so a
  // refused sign-in re-renders at the address the page was opened at.
  assert.match(html, /<form method="post" action="\/login"/);
  assert.doesNotMatch(html, /<script/, "the login page works without JavaScript");
  const csp = res.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
  assert.ok(res.headers.get("referrer-policy"));
  assert.equal(res.headers.get("strict-transport-security"), null, "no HSTS over plain http");
});

Deno.test("an unknown path answers 404 not_found with X-Content-Type-Options: nosniff", async () => {
  await using server = await startTestServer();
  for (const path of ["/nope", "/admin/nope/deeper"]) {
    const res = await fetch(new URL(path, server.url));
    assert.equal(res.status, 404, path);
    assert.deepEqual(await res.json(), {
      error: "not_found",
      message:
        "Nothing is here: check the path (docs/protocol.md lists the routes) or the id in it",
    }, path);
    assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
    assert.ok(res.headers.get("x-request-id"), `${path} carries its request id`);
  }
});

Deno.test("POST /auth/login (JSON) issues a JWT tied to a fresh HttpOnly SameSite=Strict session", async () => {
  await using server = await startTestServer({ ACCESS_TOKEN_TTL_S: "300" });
  const password = await withUser(server);
  const first = await login(server.url, "alice", password);
  assert.equal(first.res.status, 200);
  assert.deepEqual(first.body.user, { name: "alice", role: "admin" });
  assert.ok(Math.abs(Number(first.body.expiresAt) - (Date.now() + 300_000)) < 5000);
  assert.equal(first.res.headers.get("cache-control"), "no-store");
  const setCookie = first.res.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /^lookout_session=[A-Za-z0-9_-]{43};/);
  assert.match(setCookie, /HttpOnly/);
  assert.match(setCookie, /SameSite=Strict/);
  assert.match(setCookie, /Path=\//);
  assert.doesNotMatch(setCookie, /Secure/, "no Secure flag over plain http");
  const claims = decodeJwt(first.token);
  assert.equal(claims.sub, "alice");
  assert.equal(typeof claims.sid, "string");
  assert.ok(
    !first.cookie.includes(String(claims.sid)),
    "the token names the session, not its secret",
  );

  const second = await login(server.url, "alice", password);
  assert.notEqual(second.cookie, first.cookie, "every login gets a new session id");
  assert.notEqual(decodeJwt(second.token).sid, claims.sid);

  const client = await TestClient.open(server.wsUrl);
  await client.auth(first.token);
  await client.close();
});

Deno.test("POST /auth/login over https sets a __Host- cookie with Secure, and HTML gets HSTS", async () => {
  await using server = await startTestServer({ TRUST_PROXY: "true" });
  const password = await withUser(server);
  const https = { "X-Forwarded-Proto": "https" };
  const { res } = await login(server.url, "alice", password, https);
  const setCookie = res.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /^__Host-lookout_session=/);
  assert.match(setCookie, /Secure/);
  assert.match(setCookie, /Path=\//);
  assert.doesNotMatch(setCookie, /Domain=/i);
  const page = await fetch(new URL("/login", server.url), { headers: https });
  await page.body?.cancel();
  assert.match(page.headers.get("strict-transport-security") ?? "", /max-age=\d+/);
});

Deno.test("POST /auth/login (form) redirects to /admin, which then shows the dashboard", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const res = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    body: form({ username: "alice", password }),
    redirect: "manual",
    headers: { Origin: `http://127.0.0.1:${server.url.port}`, "Sec-Fetch-Site": "same-origin" },
  });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get("location"), "/admin");
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0];
  await res.body?.cancel();
  const admin = await fetch(new URL("/admin", server.url), { headers: { Cookie: cookie } });
  assert.equal(admin.status, 200);
  assert.match(await admin.text(), /alice/);
  assert.match(admin.headers.get("content-security-policy") ?? "", /default-src 'self'/);

  const anonymous = await fetch(new URL("/admin", server.url), { redirect: "manual" });
  await anonymous.body?.cancel();
  assert.equal(anonymous.status, 302);
  assert.equal(anonymous.headers.get("location"), "/login");
});

Deno.test("POST /auth/login answers an unknown user and a wrong password with the same 401", async () => {
  await using server = await startTestServer();
  await withUser(server);
  const unknown = await login(server.url, "nobody", randomPassword());
  const wrong = await login(server.url, "alice", randomPassword());
  assert.equal(unknown.res.status, 401);
  assert.equal(wrong.res.status, 401);
  assert.deepEqual(unknown.body, {
    error: "invalid_credentials",
    message:
      "The user name or the password is wrong: check both, or have an admin reset the password with deno task user:add NAME",
  });
  assert.deepEqual(wrong.body, unknown.body);
  assert.equal(wrong.res.headers.get("set-cookie"), null);
});

Deno.test("POST /auth/login (form) with a wrong password shows the form again with an error", async () => {
  await using server = await startTestServer();
  await withUser(server);
  const res = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    body: form({ username: "alice", password: randomPassword() }),
  });
  assert.equal(res.status, 401);
  const html = await res.text();
  assert.match(html, /Wrong user name or password/);
  assert.match(html, /value="alice"/);
});

Deno.test("POST /auth/login refuses a malformed or oversized body with 400 invalid_request", async () => {
  await using server = await startTestServer();
  await withUser(server);
  const post = (body: BodyInit, type = "application/json") =>
    fetch(new URL("/auth/login", server.url), {
      method: "POST",
      headers: { "Content-Type": type },
      body,
    });
  for (
    const body of [
      "not json",
      JSON.stringify({ username: "alice" }),
      JSON.stringify({ username: 42, password: [] }),
      JSON.stringify([1, 2]),
    ]
  ) {
    const res = await post(body);
    assert.equal(res.status, 400, body);
    const json = await res.json();
    assert.equal(json.error, "invalid_request");
    assert.ok(Array.isArray(json.issues) && json.issues.length > 0);
  }
  const started = performance.now();
  const huge = await post(JSON.stringify({ username: "alice", password: "x".repeat(1024 * 1024) }));
  const elapsed = performance.now() - started;
  assert.equal(huge.status, 400);
  assert.equal((await huge.json()).error, "invalid_request");
  assert.ok(elapsed < 500, `a 1 MB password was answered in ${elapsed.toFixed(0)} ms`);
  const long = await post(JSON.stringify({ username: "alice", password: "x".repeat(2000) }));
  assert.equal(long.status, 400, "a password over 1024 characters is refused before hashing");
  await long.body?.cancel();
});

Deno.test("POST /auth/login refuses a cross-site form post or JSON with 403", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const cases: Record<string, string>[] = [
    { Origin: "https://evil.example" },
    { "Sec-Fetch-Site": "cross-site" },
    { Origin: "null" },
  ];
  for (const headers of cases) {
    const viaForm = await fetch(new URL("/auth/login", server.url), {
      method: "POST",
      headers,
      body: form({ username: "alice", password }),
    });
    assert.equal(viaForm.status, 403, JSON.stringify(headers));
    assert.equal(viaForm.headers.get("set-cookie"), null);
    await viaForm.body?.cancel();
    const viaJson = await login(server.url, "alice", password, headers);
    assert.equal(viaJson.res.status, 403);
  }
});

Deno.test("POST /auth/token refreshes from the session cookie and is 401 without one", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const { token, cookie } = await login(server.url, "alice", password);
  const refresh = (headers: Record<string, string>) =>
    fetch(new URL("/auth/token", server.url), { method: "POST", headers });
  const res = await refresh({ Cookie: cookie });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "no-store");
  const body = await res.json();
  assert.notEqual(body.token, token);
  assert.equal(decodeJwt(body.token).sid, decodeJwt(token).sid, "the same session");
  assert.notEqual(decodeJwt(body.token).jti, decodeJwt(token).jti);
  assert.ok(body.expiresAt > Date.now());

  const anonymous: [Record<string, string>, string][] = [
    [{}, "missing_token"],
    [{ Cookie: "lookout_session=forged" }, "session_expired"],
    [{ Cookie: "lookout_session=" + "A".repeat(43) }, "session_expired"],
  ];
  for (const [headers, reason] of anonymous) {
    const denied = await refresh(headers);
    assert.equal(denied.status, 401);
    assert.deepEqual(await denied.json(), {
      error: "unauthorized",
      reason,
      message: explainRefusal(reason),
    });
  }
  const crossSite = await refresh({ Cookie: cookie, Origin: "https://evil.example" });
  assert.equal(crossSite.status, 403);
  await crossSite.body?.cancel();
});

Deno.test("POST /auth/logout answers 204, clears the cookie and ends the session", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const { cookie, token } = await login(server.url, "alice", password);
  const res = await fetch(new URL("/auth/logout", server.url), {
    method: "POST",
    headers: { Cookie: cookie },
  });
  assert.equal(res.status, 204);
  assert.match(res.headers.get("set-cookie") ?? "", /lookout_session=;.*Max-Age=0/);
  const refresh = await fetch(new URL("/auth/token", server.url), {
    method: "POST",
    headers: { Cookie: cookie },
  });
  assert.equal(refresh.status, 401);
  await refresh.body?.cancel();
  const api = await fetch(new URL("/api/v1/stats", server.url), {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(api.status, 401, "tokens issued under the session are revoked too");
  await api.body?.cancel();

  const again = await login(server.url, "alice", password);
  const viaForm = await fetch(new URL("/auth/logout", server.url), {
    method: "POST",
    headers: { Cookie: again.cookie },
    body: form({}),
    redirect: "manual",
  });
  assert.equal(viaForm.status, 303);
  assert.equal(viaForm.headers.get("location"), "/login");
  await viaForm.body?.cancel();
});

Deno.test("/api/v1/* accepts the session cookie, and a bad Bearer header is not rescued by it", async () => {
  await using server = await startTestServer();
  const password = await withUser(server, "viewer");
  const { cookie } = await login(server.url, "alice", password);
  const ok = await fetch(new URL("/api/v1/stats", server.url), { headers: { Cookie: cookie } });
  assert.equal(ok.status, 200);
  await ok.body?.cancel();
  const attempts = await fetch(new URL("/api/v1/attempts", server.url), {
    headers: { Cookie: cookie },
  });
  assert.equal(attempts.status, 200);
  await attempts.body?.cancel();
  const bad = await fetch(new URL("/api/v1/stats", server.url), {
    headers: { Cookie: cookie, Authorization: "Bearer nope" },
  });
  assert.equal(bad.status, 401);
  await bad.body?.cancel();
});

Deno.test("liveSession() ends a session after its idle timeout and after its absolute age", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const timeouts = { idleMs: 10 * 60_000, maxAgeMs: 60 * 60_000 };
    const { secret, session } = await createSession(kv, { name: "alice", role: "admin" }, timeouts);
    const t0 = session.createdAt;
    assert.ok(await liveSession(kv, secret, timeouts, t0 + 9 * 60_000));
    assert.equal(await liveSession(kv, secret, timeouts, t0 + 9 * 60_000 + 11 * 60_000), null);
    // Activity every 9 minutes keeps it alive, but never past the absolute age.
    let now = t0;
    for (let i = 0; i < 6; i++) {
      now += 9 * 60_000;
      assert.ok(
        await liveSession(kv, secret, timeouts, now),
        `alive at ${(now - t0) / 60_000} min`,
      );
    }
    assert.equal(await liveSession(kv, secret, timeouts, t0 + 60 * 60_000), null);
    assert.equal(await liveSession(kv, "not-a-secret", timeouts), null);
    // Only a hash of the secret is stored.
    for await (const entry of kv.list({ prefix: [] })) {
      assert.ok(!JSON.stringify(entry).includes(secret));
    }
  } finally {
    kv.close();
  }
});

Deno.test("every log line of a request carries its request id, which the response names", async () => {
  await using server = await startTestServer();
  await withUser(server);
  const res = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Request-Id": "trace-42" },
    body: JSON.stringify({ username: "alice", password: randomPassword() }),
  });
  await res.body?.cancel();
  assert.equal(res.headers.get("x-request-id"), "trace-42");
  const line = server.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "login failed");
  assert.equal(line?.requestId, "trace-42");
  const own = await fetch(new URL("/healthz", server.url));
  await own.body?.cancel();
  assert.match(
    own.headers.get("x-request-id") ?? "",
    /^[0-9a-f-]{36}$/,
    "one is made when none is sent",
  );
});

Deno.test("/api/v1/* takes the session cookie beside a Basic header from a proxy's auth_basic", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const { cookie } = await login(server.url, "alice", password);
  const res = await fetch(new URL("/api/v1/stats", server.url), {
    headers: { Cookie: cookie, Authorization: "Basic " + btoa("proxy-user:proxy-password") },
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
});

Deno.test("the login form posts to /login: a wrong password re-renders the page there", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const page = await (await fetch(new URL("/login", server.url))).text();
  assert.match(page, /<form method="post" action="\/login"/);
  const wrong = await fetch(new URL("/login", server.url), {
    method: "POST",
    body: form({ username: "alice", password: "not-" + password }),
  });
  assert.equal(wrong.status, 401);
  assert.equal(new URL(wrong.url).pathname, "/login", "the address stays /login");
  assert.match(wrong.headers.get("content-type") ?? "", /text\/html/);
  assert.match(await wrong.text(), /Wrong user name or password\./);
  const right = await fetch(new URL("/login", server.url), {
    method: "POST",
    body: form({ username: "alice", password }),
    redirect: "manual",
  });
  assert.equal(right.status, 303);
  assert.equal(right.headers.get("location"), "/admin");
  assert.ok(right.headers.get("set-cookie"));
  await right.body?.cancel();
});

Deno.test("a refused cross-origin login says which origin was expected and from which headers", async () => {
  await using server = await startTestServer();
  const password = await withUser(server);
  const own = `http://127.0.0.1:${server.url.port}`;
  const viaForm = await fetch(new URL("/login", server.url), {
    method: "POST",
    headers: { Origin: "https://evil.example" },
    body: form({ username: "alice", password }),
  });
  assert.equal(viaForm.status, 403);
  assert.equal(new URL(viaForm.url).pathname, "/login");
  assert.match(viaForm.headers.get("content-type") ?? "", /text\/html/);
  const page = await viaForm.text();
  assert.ok(
    page.includes(
      `origin https://evil.example is not allowed: expected ${own} (from Host: 127.0.0.1:${server.url.port})`,
    ),
    page,
  );
  assert.match(page, /proxy_set_header Host \$http_host, not \$host/);

  const viaJson = await login(server.url, "alice", password, { Origin: "https://evil.example" });
  assert.equal(viaJson.res.status, 403);
  const body = viaJson.body;
  assert.equal(body.error, "forbidden");
  assert.deepEqual(body.expected, [own]);
  assert.deepEqual(body.from, { Host: `127.0.0.1:${server.url.port}` });
});
