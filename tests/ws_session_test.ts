/** `/admin/ws` after authentication: CONTRACT 4.2. */
import assert from "node:assert/strict";
import { ServerMessage } from "../shared/protocol.ts";
import { startTestServer, TestClient } from "./helpers.ts";

Deno.test("/admin/ws answers ping with pong, echoing the id when one is given", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  client.send({ type: "ping", id: "abc" });
  const pong = await client.next("pong");
  assert.equal(pong.id, "abc");
  assert.ok(Math.abs(pong.ts - Date.now()) < 2000);
  client.send({ type: "ping" });
  const bare = await client.next("pong");
  assert.equal("id" in bare && bare.id !== undefined, false);
  await client.close();
});

Deno.test("/admin/ws answers get_stats with a stats_update that counts this socket", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint({ sub: "alice" }));
  await client.next("stats_update");
  client.send({ type: "get_stats" });
  const stats = await client.next("stats_update");
  ServerMessage.parse(stats);
  assert.equal(stats.data.connections.authenticated, 1);
  assert.equal(stats.data.connections.open, 1);
  assert.deepEqual(stats.data.presence, [{ name: "alice", role: "admin", connections: 1 }]);
  assert.equal(stats.data.attempts.success, 1);
  await client.close();
});

Deno.test("/admin/ws subscribe and unsubscribe answer with the current set", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  client.send({ type: "subscribe", events: ["attempts", "presence"] });
  assert.deepEqual((await client.next("subscribed")).events, ["attempts", "presence", "stats"]);
  client.send({ type: "unsubscribe", events: ["stats", "presence"] });
  assert.deepEqual((await client.next("subscribed")).events, ["attempts"]);
  client.send({ type: "subscribe", events: [] });
  assert.deepEqual((await client.next("subscribed")).events, ["attempts"]);
  await client.close();
});

Deno.test("/admin/ws answers bad messages after auth with error bad_message and stays open", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  const bad = [
    "not json",
    "[]",
    "42",
    JSON.stringify({ type: "launch_missiles" }),
    JSON.stringify({ noType: true }),
    JSON.stringify({ type: "subscribe", events: ["everything"] }),
    JSON.stringify({ type: "subscribe" }),
    JSON.stringify({ type: "ping", id: { nested: true } }),
    JSON.stringify({ type: "__proto__", __proto__: { polluted: true } }),
  ];
  for (const text of bad) {
    client.send(text);
    const error = await client.next("error");
    assert.equal(error.code, "bad_message", text);
    assert.ok(error.message.length > 0);
  }
  client.ws.send(new Uint8Array([1, 2, 3]));
  assert.match((await client.next("error")).message, /binary/);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  client.send({ type: "ping", id: 1 });
  assert.equal((await client.next("pong")).id, 1);
  await client.close();
});

Deno.test("/admin/ws re-authenticates in band and moves the expiry", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  const first = await client.auth(await server.mint({ sub: "alice", ttlS: 120 }));
  client.send({ type: "auth", token: await server.mint({ sub: "alice", ttlS: 900 }) });
  const re = await client.next("reauthenticated");
  assert.ok(re.expiresAt > first.expiresAt + 700_000);
  const attempts = await server.attempts();
  assert.equal(attempts.length, 2);
  assert.ok(attempts.every((a) => a.outcome === "success" && a.transport === "message"));
  await client.close();
});

Deno.test("/admin/ws warns with token_expiring and closes 4401 token_expired at exp", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  const hello = await client.auth(await server.mint({ ttlS: 2 }));
  // Less than 60 s are left, so the warning comes at once.
  const warning = await client.next("token_expiring", 1000);
  assert.equal(warning.expiresAt, hello.expiresAt);
  const closed = await client.closed;
  assert.deepEqual(closed, { code: 4401, reason: "token_expired" });
  assert.ok(Date.now() >= hello.expiresAt - 50, "not closed before exp");
  assert.ok(Date.now() < hello.expiresAt + 1500, "closed promptly at exp");
});

Deno.test("/admin/ws keeps a socket that re-authenticates on token_expiring open past the old exp", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  const hello = await client.auth(await server.mint({ ttlS: 2 }));
  await client.next("token_expiring");
  client.send({ type: "auth", token: await server.mint({ ttlS: 600 }) });
  await client.next("reauthenticated");
  await new Promise((r) => setTimeout(r, hello.expiresAt - Date.now() + 500));
  client.send({ type: "ping", id: "still-here" });
  assert.equal((await client.next("pong")).id, "still-here");
  await client.close();
});

Deno.test("/admin/ws closes a re-auth with a failing token as in 4.3", async () => {
  await using server = await startTestServer();
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  client.send({ type: "auth", token: "garbage" });
  assert.equal((await client.next("auth_failed")).reason, "malformed_token");
  assert.deepEqual(await client.closed, { code: 4401, reason: "malformed_token" });
});

Deno.test("/admin/ws streams attempt events only to attempts subscribers", async () => {
  await using server = await startTestServer();
  const watcher = await TestClient.open(server.wsUrl);
  await watcher.auth(await server.mint({ sub: "watcher" }));
  watcher.send({ type: "subscribe", events: ["attempts"] });
  await watcher.next("subscribed");
  const bystander = await TestClient.open(server.wsUrl);
  await bystander.auth(await server.mint({ sub: "bystander" }));

  const intruder = await TestClient.open(server.wsUrl);
  intruder.send({ type: "auth", token: "nope" });
  await intruder.closed;

  const event = await watcher.next("attempt");
  // The watcher may first see the bystander's success.
  const failure = event.data.outcome === "failure" ? event : await watcher.next("attempt");
  ServerMessage.parse(failure);
  assert.equal(failure.data.reason, "malformed_token");
  const [stored] = await server.attempts(1);
  assert.deepEqual(failure.data, stored);
  bystander.send({ type: "ping", id: "sync" });
  await bystander.next("pong");
  assert.ok(!bystander.received.some((m) => m.type === "attempt"));
  await watcher.close();
  await bystander.close();
});

Deno.test("/admin/ws pushes presence to presence subscribers as admins come and go", async () => {
  await using server = await startTestServer();
  const watcher = await TestClient.open(server.wsUrl);
  await watcher.auth(await server.mint({ sub: "watcher" }));
  watcher.send({ type: "subscribe", events: ["presence"] });
  await watcher.next("subscribed");
  const other = await TestClient.open(server.wsUrl);
  await other.auth(await server.mint({ sub: "zoe", role: "viewer" }));
  while (true) {
    const p = await watcher.next("presence");
    if (p.data.online.some((u) => u.name === "zoe")) {
      assert.deepEqual(p.data.online.find((u) => u.name === "zoe"), {
        name: "zoe",
        role: "viewer",
        connections: 1,
      });
      break;
    }
  }
  await other.close();
  while (true) {
    const p = await watcher.next("presence");
    if (!p.data.online.some((u) => u.name === "zoe")) break;
  }
  await watcher.close();
});
