/**
 * The browser client module (client/lookout_client.ts) run in Deno against
 * a real server: Deno has WebSocket and fetch, and the session cookie is
 * handed to the client's fetch the way a browser would send it.
 */
import assert from "node:assert/strict";
import {
  backoffDelay,
  LookoutClient,
  socketUrl,
  type StateDetail,
} from "../client/lookout_client.ts";
import { ulid } from "ulid";
import { FEED_SIZE, mergeAttempts } from "../client/store.ts";
import type { ServerMessage } from "../shared/protocol.ts";
import { putUser } from "../lib/auth/users.ts";
import {
  attemptInput,
  eventually,
  login,
  randomPassword,
  startTestServer,
  type TestServer,
} from "./helpers.ts";

async function signedIn(server: TestServer, firstToken?: string) {
  const password = randomPassword();
  await putUser(server.deps.kv, { name: "ada", role: "admin", password });
  const { cookie } = await login(server.url, "ada", password);
  const states: StateDetail[] = [];
  const messages: ServerMessage[] = [];
  const navigations: string[] = [];
  const tokenCalls: number[] = [];
  const client = new LookoutClient({
    url: server.wsUrl,
    events: ["attempts"],
    baseDelayMs: 50,
    maxDelayMs: 400,
    fetch: (path, init) => {
      tokenCalls.push(Date.now());
      if (firstToken && tokenCalls.length === 1) {
        return Promise.resolve(Response.json({ token: firstToken, expiresAt: 0 }));
      }
      return fetch(new URL(path, server.url), {
        ...init,
        headers: { ...init.headers as Record<string, string>, Cookie: cookie },
      });
    },
    onState: (s) => states.push(s),
    onMessage: (m) => messages.push(m),
    navigate: (path) => navigations.push(path),
  });
  return { client, states, messages, navigations, tokenCalls, cookie };
}

Deno.test("backoffDelay() draws full jitter under a capped exponential", () => {
  assert.equal(backoffDelay(0, 500, 30_000, () => 0.999), 499);
  assert.equal(backoffDelay(3, 500, 30_000, () => 0.5), 2000);
  assert.equal(backoffDelay(20, 500, 30_000, () => 0.999), 29_970, "capped");
  assert.equal(backoffDelay(5, 500, 30_000, () => 0), 0, "full jitter reaches zero");
});

Deno.test("mergeAttempts() keeps each id once, newest first, at most FEED_SIZE", () => {
  const at = (n: number) => ({ ...attemptInput(), id: ulid(1_700_000_000_000 + n), at: n });
  const rendered = Array.from({ length: FEED_SIZE }, (_, i) => at(i));
  // The newest rendered row also came live: it is listed once.
  const live = [at(FEED_SIZE + 1), rendered[FEED_SIZE - 1]];
  const merged = mergeAttempts(live, rendered);
  assert.equal(merged.length, FEED_SIZE);
  assert.deepEqual(merged.slice(0, 3).map((a) => a.at), [
    FEED_SIZE + 1,
    FEED_SIZE - 1,
    FEED_SIZE - 2,
  ]);
  assert.equal(new Set(merged.map((a) => a.id)).size, FEED_SIZE);
  assert.deepEqual(mergeAttempts([], []), []);
});

Deno.test("socketUrl() picks wss: under https and ws: otherwise", () => {
  assert.equal(socketUrl({ protocol: "https:", host: "a.example" }), "wss://a.example/admin/ws");
  assert.equal(
    socketUrl({ protocol: "http:", host: "localhost:8000" }),
    "ws://localhost:8000/admin/ws",
  );
});

Deno.test("LookoutClient fetches a token, authenticates first, subscribes, and goes live", async () => {
  await using server = await startTestServer();
  const { client, states, messages, tokenCalls } = await signedIn(server);
  client.start();
  try {
    await eventually(() => states.at(-1)?.state === "live", 5000, "live");
    assert.equal(states[0].state, "connecting");
    assert.equal(tokenCalls.length, 1);
    await eventually(() => messages.some((m) => m.type === "subscribed"), 5000, "subscribed");
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.transport, "message", "the token went in the first message");
  } finally {
    client.stop();
  }
});

Deno.test("LookoutClient re-authenticates in band on token_expiring and stays connected", async () => {
  await using server = await startTestServer();
  // The first token has 30 s left, so the server warns at once; the refresh
  // brings a full-length one, which is not warned about again.
  const { client, messages, tokenCalls } = await signedIn(
    server,
    await server.mint({ sub: "ada", ttlS: 30 }),
  );
  client.start();
  try {
    await eventually(
      () => messages.some((m) => m.type === "reauthenticated"),
      5000,
      "reauthenticated",
    );
    await new Promise((r) => setTimeout(r, 500));
    const attempts = await server.attempts();
    assert.equal(
      // The sign-in at /auth/login is recorded too (transport login): not the socket's.
      attempts.filter((a) => a.outcome === "success" && a.transport !== "login").length,
      2,
      "one auth, one re-auth",
    );
    assert.equal(messages.filter((m) => m.type === "token_expiring").length, 1);
    assert.equal(tokenCalls.length, 2);
  } finally {
    client.stop();
  }
});

Deno.test("LookoutClient reconnects after the server drops it, with a fresh token", async () => {
  await using server = await startTestServer();
  const { client, states, tokenCalls } = await signedIn(server);
  client.start();
  try {
    await eventually(() => states.at(-1)?.state === "live", 5000, "live");
    for (const member of server.deps.registry.members()) member.close(1011, "test_drop");
    await eventually(() => states.some((s) => s.state === "reconnecting"), 5000, "reconnecting");
    const reconnecting = states.find((s) => s.state === "reconnecting")!;
    assert.equal(reconnecting.close?.code, 1011);
    assert.ok(reconnecting.close?.explanation.length);
    await eventually(() => states.at(-1)?.state === "live", 5000, "live again");
    assert.equal(tokenCalls.length, 2, "a new token for the new connection");
  } finally {
    client.stop();
  }
});

Deno.test("LookoutClient goes to /login when the session is revoked (4403 and refresh refused)", async () => {
  await using server = await startTestServer();
  const { client, states, navigations, cookie } = await signedIn(server);
  client.start();
  try {
    await eventually(() => states.at(-1)?.state === "live", 5000, "live");
    const res = await fetch(new URL("/auth/logout", server.url), {
      method: "POST",
      headers: { Cookie: cookie },
    });
    assert.equal(res.status, 204);
    await eventually(() => navigations.length > 0, 5000, "navigation");
    assert.deepEqual(navigations, ["/login"]);
    assert.equal(states.at(-1)?.state, "offline");
    assert.equal(states.at(-1)?.close?.code, 4403);
  } finally {
    client.stop();
  }
});
