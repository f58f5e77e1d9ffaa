/** Seeing and ending live connections: CONTRACT 8.1. */
import assert from "node:assert/strict";
import { createApiKey } from "../lib/api_keys/store.ts";
import { signAccessToken, tokenKey } from "../lib/auth/tokens.ts";
import { putUser } from "../lib/auth/users.ts";
import type { ConnectionRecord } from "../shared/connection_record.ts";
import { connectionKey, instanceKey } from "../lib/store/keys.ts";
import {
  eventually,
  login,
  randomPassword,
  randomSecret,
  startProcess,
  startTestServer,
  tempFileKv,
  TestClient,
} from "./helpers.ts";

function closeTime(client: TestClient): Promise<{ code: number; reason: string; at: number }> {
  return new Promise((resolve) => {
    client.ws.addEventListener("close", (e) => {
      resolve({ code: e.code, reason: e.reason, at: performance.now() });
    }, { once: true });
  });
}

function call(
  base: URL,
  method: string,
  path: string,
  auth: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  const creds: Record<string, string> = auth.startsWith("lookout_session=")
    ? { Cookie: auth }
    : { Authorization: auth.startsWith("lk_") ? `Token ${auth}` : `Bearer ${auth}` };
  return fetch(new URL(path, base), { method, headers: { ...creds, ...headers } });
}

async function list(base: URL, auth: string): Promise<ConnectionRecord[]> {
  const res = await call(base, "GET", "/api/v1/connections", auth);
  assert.equal(res.status, 200);
  return (await res.json()).items;
}

Deno.test("GET /api/v1/connections lists each authenticated socket with its facts", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ sub: "root", role: "admin" });
  const client = await TestClient.open(server.wsUrl, {
    headers: { "User-Agent": "conn-test/1", Origin: server.url.origin },
  });
  const authed = await client.auth(await server.mint({ sub: "vera", role: "viewer", ttlS: 300 }));
  const pending = await TestClient.open(server.wsUrl); // not authenticated: not listed
  const items = await list(server.url, admin);
  assert.equal(items.length, 1);
  const [c] = items;
  assert.equal(c.id, authed.connectionId);
  assert.deepEqual(
    { user: c.user, role: c.role, ip: c.ip, origin: c.origin, userAgent: c.userAgent },
    {
      user: "vera",
      role: "viewer",
      ip: "127.0.0.1",
      origin: server.url.origin,
      userAgent: c.userAgent,
    },
  );
  assert.match(c.userAgent ?? "", /conn-test\/1/);
  assert.equal(c.expiresAt, authed.expiresAt);
  assert.ok(Math.abs(c.openedAt - Date.now()) < 10_000);
  assert.equal(c.instance, server.deps.instanceId);
  assert.deepEqual(Object.keys(c).sort(), [
    "expiresAt",
    "id",
    "instance",
    "ip",
    "openedAt",
    "origin",
    "role",
    "user",
    "userAgent",
  ]);
  await client.close();
  await pending.close();
  await eventually(async () => (await list(server.url, admin)).length === 0, 2000, "empty list");
});

Deno.test("viewers, read keys and ingest keys get 403 on every admin-only connection action", async () => {
  await using server = await startTestServer();
  const viewer = await server.mint({ sub: "vera", role: "viewer" });
  const readKey = (await createApiKey(server.deps.kv, { name: "r", scope: "read" })).key;
  const ingestKey = (await createApiKey(server.deps.kv, { name: "i", scope: "ingest" })).key;
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "val", role: "viewer", password });
  const viewerCookie = (await login(server.url, "val", password)).cookie;
  const target = await TestClient.open(server.wsUrl);
  const { connectionId } = await target.auth(await server.mint({ sub: "tom" }));
  const actions: [string, string][] = [
    ["GET", "/api/v1/connections"],
    ["DELETE", `/api/v1/connections/${connectionId}`],
    ["POST", "/api/v1/users/tom/revoke"],
  ];
  for (const [method, path] of actions) {
    for (const auth of [viewer, readKey, ingestKey, viewerCookie]) {
      const res = await call(server.url, method, path, auth, { Origin: server.url.origin });
      assert.equal(res.status, 403, `${method} ${path} with ${auth.slice(0, 16)}`);
      assert.deepEqual(await res.json(), {
        error: "forbidden",
        message:
          "Cannot use this route as it is for admins only: sign in as an admin, or use an admin's access token",
      });
    }
    const anonymous = await fetch(new URL(path, server.url), { method });
    assert.equal(anonymous.status, 401, `${method} ${path} without credentials`);
    await anonymous.body?.cancel();
  }
  // Nothing was ended by the refused calls.
  assert.equal(target.ws.readyState, WebSocket.OPEN);
  await target.close();
});

Deno.test("DELETE /api/v1/connections/:id closes the socket 4403 revoked; unknown and hostile ids are 404", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ sub: "root" });
  const victim = await TestClient.open(server.wsUrl);
  const bystander = await TestClient.open(server.wsUrl);
  const { connectionId } = await victim.auth(await server.mint({ sub: "tom" }));
  await bystander.auth(await server.mint({ sub: "tom" }));
  const res = await call(server.url, "DELETE", `/api/v1/connections/${connectionId}`, admin);
  assert.equal(res.status, 204);
  assert.deepEqual(await victim.closed, { code: 4403, reason: "revoked" });
  assert.equal(bystander.ws.readyState, WebSocket.OPEN, "only that socket");
  const again = await call(server.url, "DELETE", `/api/v1/connections/${connectionId}`, admin);
  assert.equal(again.status, 404);
  assert.deepEqual(await again.json(), {
    error: "not_found",
    message:
      `Cannot disconnect as no open socket has the id ${connectionId}: it may have closed already; GET /api/v1/connections lists the open ones`,
  });
  const hostile = [
    "01ARZ3NDEKTSV4RRFFQ69G5FAV", // a well-formed id nobody holds
    "x".repeat(5000),
    "..%2F..%2Fusers%2Froot",
    "%E2%80%AE%F0%9F%92%A3",
    connectionId.toLowerCase(),
  ];
  for (const id of hostile) {
    const r = await call(server.url, "DELETE", `/api/v1/connections/${id}`, admin);
    assert.equal(r.status, 404, id.slice(0, 40));
    await r.body?.cancel();
  }
  assert.equal(bystander.ws.readyState, WebSocket.OPEN);
  await bystander.close();
});

Deno.test("concurrent DELETEs of one socket on its own instance: exactly one 204, the rest 404", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ sub: "root" });
  const victim = await TestClient.open(server.wsUrl);
  const { connectionId } = await victim.auth(await server.mint({ sub: "tom" }));
  const statuses = await Promise.all(Array.from({ length: 10 }, async () => {
    const r = await call(server.url, "DELETE", `/api/v1/connections/${connectionId}`, admin);
    await r.body?.cancel();
    return r.status;
  }));
  assert.deepEqual(statuses.sort(), [204, ...Array(9).fill(404)]);
  assert.deepEqual(await victim.closed, { code: 4403, reason: "revoked" });
});

Deno.test("a cookie-made DELETE or revoke from another site is 403", async () => {
  await using server = await startTestServer();
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "ada", role: "admin", password });
  const { cookie } = await login(server.url, "ada", password);
  const victim = await TestClient.open(server.wsUrl);
  const { connectionId } = await victim.auth(await server.mint({ sub: "tom" }));
  const evil = { Origin: "https://evil.example" };
  for (
    const [m, p] of [["DELETE", `/api/v1/connections/${connectionId}`], [
      "POST",
      "/api/v1/users/tom/revoke",
    ]]
  ) {
    const res = await call(server.url, m, p, cookie, evil);
    assert.equal(res.status, 403, `${m} ${p}`);
    await res.body?.cancel();
  }
  assert.equal(victim.ws.readyState, WebSocket.OPEN);
  // The same cookie from the dashboard's own origin may.
  const ok = await call(server.url, "DELETE", `/api/v1/connections/${connectionId}`, cookie, {
    Origin: server.url.origin,
  });
  assert.equal(ok.status, 204);
  assert.deepEqual(await victim.closed, { code: 4403, reason: "revoked" });
});

Deno.test("POST /api/v1/users/:name/revoke is 204 for a name with no account and ends its sockets and older tokens", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ sub: "root" });
  const idpToken = await server.mint({ sub: "idp|user-7", role: "viewer" });
  const other = await TestClient.open(server.wsUrl);
  await other.auth(await server.mint({ sub: "someone-else" }));
  const victim = await TestClient.open(server.wsUrl);
  await victim.auth(idpToken);
  await new Promise((r) => setTimeout(r, 1100)); // iat has a one-second grain
  const res = await call(
    server.url,
    "POST",
    `/api/v1/users/${encodeURIComponent("idp|user-7")}/revoke`,
    admin,
  );
  assert.equal(res.status, 204);
  assert.deepEqual(await victim.closed, { code: 4403, reason: "revoked" });
  assert.equal(other.ws.readyState, WebSocket.OPEN);
  const retry = await TestClient.open(server.wsUrl);
  retry.send({ type: "auth", token: idpToken });
  assert.equal((await retry.next("auth_failed")).reason, "revoked");
  await retry.closed;
  const tooLong = await call(server.url, "POST", `/api/v1/users/${"n".repeat(300)}/revoke`, admin);
  assert.equal(tooLong.status, 400);
  assert.equal((await tooLong.json()).error, "invalid_request");
  await other.close();
});

Deno.test("two processes on one KV file: A lists B's sockets, and A's DELETE and user revoke close them on B within 1 s", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_connections_" });
  const path = `${dir}/kv.sqlite3`;
  const secret = randomSecret();
  const env = { KV_PATH: path, JWT_SECRET: secret, LOOKOUT_WORKERS: "1" };
  const a = await startProcess(env);
  const b = await startProcess(env);
  const key = await tokenKey(secret, "lookout", "lookout");
  const mint = async (sub: string, role = "admin") =>
    (await signAccessToken(key, { sub, role, ttlS: 600 })).token;
  try {
    const admin = await mint("root");
    const aInstance = (await (await call(a.url, "GET", "/api/v1/stats", admin)).json()).instance;
    const victim = await TestClient.open(b.wsUrl);
    const { connectionId } = await victim.auth(await mint("tom", "viewer"));
    const listed = await eventually(
      async () => {
        const items = await list(a.url, admin);
        return items.find((i) => i.id === connectionId);
      },
      3000,
      "B's socket in A's list",
    );
    assert.ok(listed);
    assert.equal(listed.user, "tom");
    assert.notEqual(listed.instance, aInstance, "held by B");

    // DELETE on A, concurrently several times: one 204; B closes it within 1 s.
    const seen = closeTime(victim);
    const sent = performance.now();
    const statuses = await Promise.all(Array.from({ length: 5 }, async () => {
      const r = await call(a.url, "DELETE", `/api/v1/connections/${connectionId}`, admin);
      await r.body?.cancel();
      return r.status;
    }));
    assert.deepEqual(statuses.sort(), [204, 404, 404, 404, 404]);
    const closed = await seen;
    const latency = closed.at - sent;
    console.log(`DELETE on A → close 4403 on B (another process): ${latency.toFixed(1)} ms`);
    assert.deepEqual({ code: closed.code, reason: closed.reason }, {
      code: 4403,
      reason: "revoked",
    });
    assert.ok(latency < 1000, `closed ${latency} ms after the DELETE`);
    await eventually(
      async () => !(await list(a.url, admin)).some((i) => i.id === connectionId),
      3000,
      "the record gone",
    );

    // User revoke on A: B's sockets of that user close, their older tokens fail.
    const oldToken = await mint("kim", "viewer");
    const kim1 = await TestClient.open(b.wsUrl);
    const kim2 = await TestClient.open(b.wsUrl);
    const bob = await TestClient.open(b.wsUrl);
    await kim1.auth(oldToken);
    await kim2.auth(oldToken);
    await bob.auth(await mint("bob", "viewer"));
    await new Promise((r) => setTimeout(r, 1100)); // iat has a one-second grain
    const closes = [closeTime(kim1), closeTime(kim2)];
    const revokeSent = performance.now();
    const res = await call(a.url, "POST", "/api/v1/users/kim/revoke", admin);
    assert.equal(res.status, 204);
    for (const c of await Promise.all(closes)) {
      assert.deepEqual({ code: c.code, reason: c.reason }, { code: 4403, reason: "revoked" });
      const ms = c.at - revokeSent;
      console.log(`user revoke on A → close 4403 on B (another process): ${ms.toFixed(1)} ms`);
      assert.ok(ms < 1000, `closed ${ms} ms after the revoke`);
    }
    assert.equal(bob.ws.readyState, WebSocket.OPEN, "other users stay");
    const retry = await TestClient.open(b.wsUrl);
    retry.send({ type: "auth", token: oldToken });
    assert.equal((await retry.next("auth_failed")).reason, "revoked");
    await retry.closed;
    // A token of a later second than the revoke is taken again.
    await new Promise((r) => setTimeout(r, 1100));
    const fresh = await TestClient.open(b.wsUrl);
    assert.equal((await fresh.auth(await mint("kim", "viewer"))).type, "authenticated");
    await fresh.close();
    await bob.close();

    // B stops: its sockets leave A's list.
    const last = await TestClient.open(b.wsUrl);
    const { connectionId: lastId } = await last.auth(await mint("zed"));
    await eventually(
      async () => (await list(a.url, admin)).some((i) => i.id === lastId),
      3000,
      "zed listed",
    );
    b.child.kill("SIGTERM");
    await b.status;
    await last.closed;
    assert.ok(!(await list(a.url, admin)).some((i) => i.id === lastId), "gone after B stopped");
  } finally {
    for (const p of [a, b]) {
      try {
        p.child.kill("SIGTERM");
      } catch { /* already stopped */ }
      await p.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record of an instance that stopped heartbeating is neither listed nor deletable", async () => {
  await using server = await startTestServer();
  const admin = await server.mint({ sub: "root" });
  const id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
  const ghost: ConnectionRecord = {
    id,
    user: "ghost",
    role: "admin",
    ip: "10.0.0.9",
    origin: null,
    userAgent: null,
    openedAt: Date.now() - 60_000,
    expiresAt: Date.now() + 600_000,
    instance: "deadbeef",
  };
  await server.deps.kv.set(connectionKey(id), ghost);
  // Its instance entry is there but stale (as a killed process leaves it).
  await server.deps.kv.set(instanceKey("deadbeef"), {
    id: "deadbeef",
    heartbeatAt: Date.now() - 60_000,
    open: 1,
    authenticated: 1,
    pending: 0,
    presence: [],
  });
  assert.deepEqual(await list(server.url, admin), []);
  const res = await call(server.url, "DELETE", `/api/v1/connections/${id}`, admin);
  assert.equal(res.status, 404);
  await res.body?.cancel();
  // The same record under a live heartbeat is listed (the filter is the heartbeat).
  await server.deps.kv.set(instanceKey("deadbeef"), {
    id: "deadbeef",
    heartbeatAt: Date.now(),
    open: 1,
    authenticated: 1,
    pending: 0,
    presence: [],
  });
  assert.deepEqual((await list(server.url, admin)).map((i) => i.id), [id]);
});

Deno.test("a re-auth renews the listed expiry and role, on another instance too", async () => {
  const kvFile = await tempFileKv();
  const secret = randomSecret();
  try {
    await using a = await startTestServer({ JWT_SECRET: secret }, { kv: kvFile.kv });
    await using b = await startTestServer({ JWT_SECRET: secret }, { kv: kvFile.kv });
    const admin = await a.mint({ sub: "root" });
    const client = await TestClient.open(b.wsUrl);
    const { connectionId } = await client.auth(
      await b.mint({ sub: "tom", role: "viewer", ttlS: 120 }),
    );
    const first = await eventually(
      async () => (await list(a.url, admin)).find((i) => i.id === connectionId),
      3000,
      "listed on A",
    );
    assert.equal(first?.role, "viewer");
    const renew = async (role: string, ttlS: number) => {
      client.send({ type: "auth", token: await b.mint({ sub: "tom", role, ttlS }) });
      const renewed = await client.next("reauthenticated");
      return await eventually(
        async () => {
          const item = (await list(a.url, admin)).find((i) => i.id === connectionId);
          return item?.expiresAt === renewed.expiresAt && item.role === role ? item : null;
        },
        3000,
        `the renewed expiry (${role}, ${ttlS} s) on A`,
      );
    };
    // The same role and a later expiry; then another role.
    await renew("viewer", 600);
    const seen = await renew("admin", 900);
    assert.equal(seen?.role, "admin");
    assert.equal(seen?.instance, b.deps.instanceId);
    await client.close();
  } finally {
    await kvFile.close();
  }
});

Deno.test("/admin/connections: admins get the list and a nav link; viewers a 403 page and no link", async () => {
  await using server = await startTestServer();
  const victim = await TestClient.open(server.wsUrl);
  const { connectionId } = await victim.auth(await server.mint({ sub: "tom" }));
  const cookies: Record<string, string> = {};
  for (const [name, role] of [["ada", "admin"], ["val", "viewer"]] as const) {
    const password = randomPassword();
    await putUser(server.deps.kv, { name, role, password });
    cookies[role] = (await login(server.url, name, password)).cookie;
  }
  const asAdmin = await fetch(new URL("/admin/connections", server.url), {
    headers: { Cookie: cookies.admin },
  });
  assert.equal(asAdmin.status, 200);
  const adminHtml = await asAdmin.text();
  assert.match(adminHtml, new RegExp(`data-connection-id="${connectionId}"`));
  assert.match(adminHtml, /href="\/admin\/connections"/);
  const overview = await (await fetch(new URL("/admin", server.url), {
    headers: { Cookie: cookies.viewer },
  })).text();
  assert.doesNotMatch(overview, /href="\/admin\/connections"/, "no link for a viewer");
  const asViewer = await fetch(new URL("/admin/connections", server.url), {
    headers: { Cookie: cookies.viewer },
  });
  assert.equal(asViewer.status, 403);
  const viewerHtml = await asViewer.text();
  assert.match(viewerHtml, /Forbidden/);
  assert.doesNotMatch(viewerHtml, /data-connection-id/);
  assert.doesNotMatch(viewerHtml, /href="\/admin\/connections"/);
  const anonymous = await fetch(new URL("/admin/connections", server.url), { redirect: "manual" });
  assert.equal(anonymous.status, 302);
  await anonymous.body?.cancel();
  await victim.close();
});
