/**
 * Abuse limits (issue 3): the per-IP gate in front of `/admin/ws`, the
 * per-socket message rate, slow consumers, and login lockout and throttling.
 * Each runs against a real server with small limits.
 */
import assert from "node:assert/strict";
import { putUser } from "../lib/auth/users.ts";
import { encodeRequest } from "../probe/http_wire.ts";
import {
  concat,
  encodeFrame,
  FrameSocket,
  websocketKey,
  Wire,
  type WsEvent,
} from "../probe/ws_wire.ts";
import {
  eventually,
  holdUpgrade,
  randomSecret,
  rawUpgrade,
  startTestServer,
  tempFileKv,
  TestClient,
  type TestServer,
} from "./helpers.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fails the first-message auth of one socket and waits for its close. */
async function failAuth(server: TestServer, headers: Record<string, string> = {}) {
  const client = await TestClient.open(server.wsUrl, { headers });
  client.send({ type: "auth", token: "not-a-jwt" });
  assert.deepEqual(await client.closed, { code: 4401, reason: "malformed_token" });
}

async function rateLimitedAttempts(server: TestServer) {
  return (await server.attempts(500)).filter((a) => a.reason === "rate_limited");
}

function pendingCount(server: TestServer): number {
  return [...server.deps.registry.members()].filter((m) => m.state === "pending").length;
}

Deno.test("/admin/ws answers 429 rate_limited to an IP past its failed auths, recorded once per burst", async () => {
  await using server = await startTestServer({ TRUST_PROXY: "true" }, {
    limits: { wsFailuresPerIp: 5, wsFailureWindowMs: 2000 },
  });
  for (let i = 0; i < 5; i++) await failAuth(server);

  for (let i = 0; i < 10; i++) {
    const res = await rawUpgrade(server.wsUrl);
    assert.equal(res.status, 429, `refused upgrade ${i + 1}`);
    const retryAfter = Number(res.headers.get("retry-after"));
    assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${retryAfter}`);
    const body = JSON.parse(res.body);
    assert.equal(body.error, "rate_limited");
    assert.equal(body.reason, "rate_limited");
  }
  const recorded = await rateLimitedAttempts(server);
  assert.equal(recorded.length, 1, "ten refusals of one burst are one record");
  assert.equal(recorded[0].ip, "127.0.0.1");
  assert.equal(recorded[0].transport, "upgrade");
  const api = await fetch(new URL("/api/v1/attempts?reason=rate_limited", server.url), {
    headers: { Authorization: `Bearer ${await server.mint()}` },
  });
  assert.equal((await api.json()).items.length, 1);

  // Another address (through the trusted proxy) is not held back by this one.
  const other = await rawUpgrade(server.wsUrl, { "X-Forwarded-For": "198.51.100.9" });
  assert.equal(other.status, 101);

  await sleep(2100);
  const client = await TestClient.open(server.wsUrl);
  await client.auth(await server.mint());
  await client.close();
});

Deno.test("/admin/ws answers 429 to an IP holding its cap of pending sockets, until one authenticates", async () => {
  await using server = await startTestServer({}, { limits: { wsPendingPerIp: 3 } });
  const pending = await Promise.all([1, 2, 3].map(() => TestClient.open(server.wsUrl)));
  await eventually(() => pendingCount(server) === 3, 2000, "three pending sockets");

  const refused = await rawUpgrade(server.wsUrl);
  assert.equal(refused.status, 429);
  assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  assert.equal(JSON.parse(refused.body).reason, "rate_limited");
  assert.equal((await rateLimitedAttempts(server)).length, 1);

  await pending[0].auth(await server.mint());
  const fourth = await TestClient.open(server.wsUrl);
  await fourth.auth(await server.mint());
  for (const c of [...pending, fourth]) await c.close();
});

Deno.test("/admin/ws closes 4429 rate_limited a socket that sends 50 pings at once", async () => {
  await using server = await startTestServer({}, {
    limits: { messagesPerSecond: 5, messageBurst: 10 },
  });
  const flood = await TestClient.open(server.wsUrl);
  await flood.auth(await server.mint());
  for (let i = 0; i < 50; i++) flood.send({ type: "ping", id: i });
  const closed = await flood.closed;
  const pongs = flood.received.filter((m) => m.type === "pong").length;
  assert.ok(pongs < 50, `${pongs} of 50 pings answered before the close`);
  assert.equal([...server.deps.registry.members()].length, 0, "the server let the socket go");
  // What the client is told is the contract (CONTRACT 4.3), not only that it was dropped.
  assert.deepEqual(closed, { code: 4429, reason: "rate_limited" });
});

Deno.test("/admin/ws keeps a socket that pings 4 times a second under a limit of 5", async () => {
  await using server = await startTestServer({}, {
    limits: { messagesPerSecond: 5, messageBurst: 10 },
  });
  const paced = await TestClient.open(server.wsUrl);
  await paced.auth(await server.mint());
  for (let i = 0; i < 8; i++) {
    paced.send({ type: "ping", id: i });
    assert.equal((await paced.next("pong")).id, i);
    await sleep(250);
  }
  assert.equal(paced.ws.readyState, WebSocket.OPEN);
  await paced.close();
});

/**
 * Opens `/admin/ws` over a bare TCP socket: writes the handshake, reads the
 * 101 (and no further), then sends `messages` as masked text frames. Nothing
 * reads the socket after that, so the server's frames back up in it.
 */
async function rawSocket(server: TestServer, messages: unknown[]): Promise<Deno.TcpConn> {
  const url = new URL(server.wsUrl);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  await conn.write(encodeRequest(url, [
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", websocketKey()],
    ["Sec-WebSocket-Version", "13"],
  ]));
  // Read one byte at a time so nothing past the handshake is consumed: a
  // Wire would keep reading, and the socket would not stall.
  let head = "";
  const byte = new Uint8Array(1);
  while (!head.endsWith("\r\n\r\n")) {
    if (await conn.read(byte) === null) throw new Error("closed during the handshake");
    head += String.fromCharCode(byte[0]);
  }
  assert.match(head, /^HTTP\/1\.1 101/);
  const encoder = new TextEncoder();
  for (const m of messages) await conn.write(encodeFrame(0x1, encoder.encode(JSON.stringify(m))));
  return conn;
}

/** Records `n` successful attempts at once, as if from one busy client. */
function recordMany(server: TestServer, n: number, userAgent: string | null) {
  return Promise.all(Array.from({ length: n }, () =>
    server.deps.attempts.record({
      ip: "192.0.2.1",
      user: null,
      outcome: "success",
      reason: "ok",
      transport: "message",
      origin: null,
      userAgent,
      tokenId: null,
      durationMs: 1,
    })));
}

/**
 * Reads the server's messages off `conn` with the probe's frame reader until
 * a close frame (or a drop, or `timeoutMs`), and returns them in order.
 */
async function readFrames(conn: Deno.TcpConn, timeoutMs: number): Promise<WsEvent[]> {
  const socket = new FrameSocket(new Wire(conn));
  const events: WsEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const event = await socket.next(deadline - Date.now());
    if (event.type === "timeout") {
      throw new Error(`no close frame within ${timeoutMs} ms (${events.length} frames read)`);
    }
    events.push(event);
    if (event.type === "close" || event.type === "dropped") return events;
  }
}

Deno.test("/admin/ws closes a slow consumer 4409 and keeps serving the other subscribers", async () => {
  await using server = await startTestServer({}, {
    limits: { slowConsumerBytes: 256 * 1024 },
  });
  const reader = await TestClient.open(server.wsUrl);
  await reader.auth(await server.mint({ sub: "reader" }));
  reader.send({ type: "subscribe", events: ["attempts"] });
  await reader.next("subscribed");

  const stalled = await rawSocket(server, [
    { type: "auth", token: await server.mint({ sub: "stalled" }) },
    { type: "subscribe", events: ["attempts"] },
  ]);
  try {
    const subscribers = () =>
      [...server.deps.registry.members()].filter((m) =>
        m.state === "authenticated" && m.events.has("attempts")
      );
    await eventually(() => subscribers().length === 2, 2000, "both subscribed");
    const stalledMember = subscribers().find((m) => m.user?.name === "stalled")!;

    // Each record becomes an `attempt` event of about 1.4 KB for both subscribers.
    // They come in commits of 64 with a pause between, so the reader, which
    // shares this event loop with the server, gets a turn to read: a reader in
    // its own process always has one.
    const userAgent = "A".repeat(1024);
    const started = performance.now();
    let recorded = 0;
    let last = "";
    while (stalledMember.state !== "closed" && performance.now() - started < 15_000) {
      await sleep(2);
      const batch = await recordMany(server, 64, userAgent);
      recorded += batch.length;
      last = batch[batch.length - 1].id;
    }
    const elapsed = performance.now() - started;
    console.log(
      `slow consumer closed after ${recorded} attempt events (${elapsed.toFixed(0)} ms)`,
    );
    assert.equal(stalledMember.state, "closed", `still open after ${recorded} events`);
    const line = server.logs.find((l) => l.includes("closing a slow consumer"));
    assert.ok(line, "the close is logged");
    const logged = JSON.parse(line);
    assert.equal(logged.connectionId, stalledMember.id);
    assert.equal(logged.user, "stalled");
    assert.ok(logged.bufferedBytes > 256 * 1024);
    assert.deepEqual(
      [...server.deps.registry.members()].map((m) => m.user?.name),
      ["reader"],
      "only the reader is left",
    );

    // The reader got every event, the last included, and still gets new ones.
    await eventually(
      () => reader.received.some((m) => m.type === "attempt" && m.data.id === last),
      10_000,
      "the reader to catch up",
    );
    const ours = reader.received.filter((m) => m.type === "attempt" && m.data.ip === "192.0.2.1");
    assert.equal(ours.length, recorded);
    const [after] = await recordMany(server, 1, null);
    await eventually(
      () => reader.received.some((m) => m.type === "attempt" && m.data.id === after.id),
      2000,
      "an event after the close",
    );

    // Now read the stalled socket's backlog: it ends with the close frame.
    const frames = await readFrames(stalled, 10_000);
    const close = frames.at(-1)!;
    assert.equal(close.type, "close", "the last frame is a close");
    assert.deepEqual(close, { type: "close", code: 4409, reason: "slow_consumer" });
    const delivered = frames.filter((f) =>
      f.type === "text" && JSON.parse(f.data).type === "attempt"
    ).length;
    console.log(
      `the stalled socket got ${delivered} of ${recorded} attempt events, then the close`,
    );
    assert.ok(delivered > 0 && delivered < recorded, "nothing is queued for it after the bound");
  } finally {
    stalled.close();
    await reader.close();
  }
});

async function loginRequest(
  server: TestServer,
  username: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; retryAfter: number | null; body: Record<string, unknown> }> {
  const res = await fetch(new URL("/auth/login", server.url), {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify({ username, password }),
  });
  const retryAfter = res.headers.get("retry-after");
  return {
    status: res.status,
    retryAfter: retryAfter === null ? null : Number(retryAfter),
    body: await res.json(),
  };
}

Deno.test("POST /auth/login locks an account after its free failures, for longer each time", async () => {
  await using server = await startTestServer({}, {
    limits: { loginFreeFailures: 3, loginBaseLockMs: 1000 },
  });
  const password = crypto.randomUUID();
  const wrong = crypto.randomUUID();
  await putUser(server.deps.kv, { name: "hana", role: "admin", password });

  for (let i = 0; i < 3; i++) {
    const res = await loginRequest(server, "hana", wrong);
    assert.equal(res.status, 401, `wrong password ${i + 1}`);
  }
  const locked = await loginRequest(server, "hana", password);
  assert.equal(locked.status, 429, "locked even for the right password");
  assert.equal(locked.body.error, "rate_limited");
  assert.ok(
    locked.retryAfter !== null && locked.retryAfter >= 1,
    `Retry-After ${locked.retryAfter}`,
  );

  await sleep(locked.retryAfter * 1000 + 100);
  assert.equal((await loginRequest(server, "hana", wrong)).status, 401);
  const longer = await loginRequest(server, "hana", password);
  assert.equal(longer.status, 429);
  assert.ok(
    longer.retryAfter !== null && longer.retryAfter > locked.retryAfter,
    `the second lock (${longer.retryAfter} s) is longer than the first (${locked.retryAfter} s)`,
  );

  await sleep(longer.retryAfter * 1000 + 100);
  const ok = await loginRequest(server, "hana", password);
  assert.equal(ok.status, 200, "the right password works once the lock is over");
  // The success cleared the count: one more failure is a plain 401, not a lock.
  assert.equal((await loginRequest(server, "hana", wrong)).status, 401);
  assert.equal((await loginRequest(server, "hana", password)).status, 200);
});

Deno.test("POST /auth/login throttles one IP whatever the account, and not another IP", async () => {
  await using server = await startTestServer({ TRUST_PROXY: "true" }, {
    limits: { loginPerIp: 5, loginIpWindowMs: 3000 },
  });
  const password = crypto.randomUUID();
  await putUser(server.deps.kv, { name: "ivan", role: "viewer", password });
  const from = { "X-Forwarded-For": "203.0.113.5" };

  for (let i = 0; i < 5; i++) {
    const res = await loginRequest(server, `nobody${i}`, crypto.randomUUID(), from);
    assert.equal(res.status, 401, `request ${i + 1}`);
  }
  const throttled = await loginRequest(server, "ivan", password, from);
  assert.equal(throttled.status, 429, "the right password of another account is throttled too");
  assert.ok(throttled.retryAfter !== null && throttled.retryAfter >= 1);
  assert.ok(throttled.retryAfter <= 3);

  const elsewhere = await loginRequest(server, "ivan", password, {
    "X-Forwarded-For": "203.0.113.6",
  });
  assert.equal(elsewhere.status, 200);

  await sleep(throttled.retryAfter * 1000 + 100);
  assert.equal((await loginRequest(server, "ivan", password, from)).status, 200);
});

Deno.test("POST /auth/login admits no more concurrent guesses than the lockout allows, and never 500", async () => {
  await using server = await startTestServer({}, {
    limits: { loginFreeFailures: 5, loginBaseLockMs: 60_000, loginPerIp: 1000 },
  });
  const password = crypto.randomUUID();
  await putUser(server.deps.kv, { name: "jonas", role: "admin", password });

  const answers = await Promise.all(
    Array.from({ length: 25 }, () => loginRequest(server, "jonas", crypto.randomUUID())),
  );
  const statuses = answers.map((a) => a.status);
  const count = (status: number) => statuses.filter((s) => s === status).length;
  assert.equal(count(401), 5, `password checks: ${statuses.join(" ")}`);
  assert.equal(count(429), 20, `refused: ${statuses.join(" ")}`);
  for (const a of answers.filter((a) => a.status === 429)) {
    assert.equal(a.body.error, "rate_limited");
    assert.ok(a.retryAfter !== null && a.retryAfter >= 1, `Retry-After ${a.retryAfter}`);
  }
  const locked = await loginRequest(server, "jonas", password);
  assert.equal(locked.status, 429, "the right password is locked out afterwards too");
});

Deno.test("/admin/ws accepts exactly its cap of pending sockets from 100 upgrades sent at once", async () => {
  await using server = await startTestServer({}, { limits: { wsPendingPerIp: 16 } });
  const held = await Promise.all(Array.from({ length: 100 }, () => holdUpgrade(server.wsUrl)));
  try {
    const statuses = held.map((h) => h.status);
    const count = (status: number) => statuses.filter((s) => s === status).length;
    assert.equal(count(101), 16, `upgrades accepted: ${count(101)}`);
    assert.equal(count(429), 84, `upgrades refused: ${count(429)}`);
    await eventually(() => pendingCount(server) === 16, 2000, "16 pending sockets");
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
  // The slots come back when the sockets go: a new one is admitted.
  await eventually(() => pendingCount(server) === 0, 2000, "no pending socket");
  const again = await TestClient.open(server.wsUrl);
  await again.auth(await server.mint());
  await again.close();
});

Deno.test("/admin/ws gives the pending slot back when the upgrade is refused after the cap check", async () => {
  await using server = await startTestServer({}, {
    limits: { wsPendingPerIp: 2, wsFailuresPerIp: 1000 },
  });
  for (let i = 0; i < 5; i++) {
    const refused = await rawUpgrade(`${server.wsUrl}?token=x`);
    assert.equal(refused.status, 400, `refusal ${i + 1}`);
    const badOrigin = await rawUpgrade(server.wsUrl, { Origin: "https://evil.example" });
    assert.equal(badOrigin.status, 403, `refusal ${i + 1}`);
  }
  const held = await Promise.all([1, 2].map(() => holdUpgrade(server.wsUrl)));
  try {
    assert.deepEqual(held.map((h) => h.status), [101, 101]);
  } finally {
    await Promise.all(held.map((h) => h.close()));
  }
});

/** Reads a raw socket's events until its close (or a drop), at most `timeoutMs`. */
async function readUntilEnd(frames: FrameSocket, timeoutMs = 5000): Promise<WsEvent[]> {
  const events: WsEvent[] = [];
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const event = await frames.next(Math.max(0, deadline - Date.now()));
    events.push(event);
    if (event.type !== "text") return events;
  }
}

Deno.test("/admin/ws takes auth pipelined with 100 pings in one write as one attempt, one record, one answer", async () => {
  await using server = await startTestServer();
  const held = await holdUpgrade(server.wsUrl);
  try {
    assert.equal(held.status, 101);
    const text = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const burst = [encodeFrame(0x1, text({ type: "auth", token: await server.mint() }))];
    for (let i = 0; i < 100; i++) burst.push(encodeFrame(0x1, text({ type: "ping", id: i })));
    await held.frames.wire.write(concat(burst));

    const events = await readUntilEnd(held.frames);
    const messages = events.flatMap((e) => e.type === "text" ? [JSON.parse(e.data)] : []);
    const end = events.at(-1)!;
    assert.equal(messages[0]?.type, "authenticated", "the attempt's answer comes first");
    assert.ok(!messages.some((m) => m.type === "auth_failed"), "no answer contradicts it");
    const pongs = messages.filter((m) => m.type === "pong").length;
    assert.ok(pongs > 0 && pongs < 100, `${pongs} of 100 pings answered before the close`);
    // Too many messages after authentication: the contract's close, not an attempt.
    assert.deepEqual(end, { type: "close", code: 4429, reason: "rate_limited" });

    const attempts = (await server.attempts()).filter((a) => a.transport === "message");
    assert.deepEqual(
      attempts.map((a) => [a.outcome, a.reason]),
      [["success", "ok"]],
      "one socket, one first message: one record",
    );
  } finally {
    await held.close();
  }
});

Deno.test("/admin/ws takes a failing auth pipelined with 100 pings as one failed attempt, closed with its own reason", async () => {
  await using server = await startTestServer();
  const held = await holdUpgrade(server.wsUrl);
  try {
    const text = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
    const burst = [encodeFrame(0x1, text({ type: "auth", token: "not-a-jwt" }))];
    for (let i = 0; i < 100; i++) burst.push(encodeFrame(0x1, text({ type: "ping", id: i })));
    await held.frames.wire.write(concat(burst));

    const events = await readUntilEnd(held.frames);
    const messages = events.flatMap((e) => e.type === "text" ? [JSON.parse(e.data)] : []);
    assert.deepEqual(messages, [{ type: "auth_failed", reason: "malformed_token" }]);
    assert.deepEqual(events.at(-1), { type: "close", code: 4401, reason: "malformed_token" });
    const attempts = (await server.attempts()).filter((a) => a.transport === "message");
    assert.deepEqual(attempts.map((a) => [a.outcome, a.reason]), [["failure", "malformed_token"]]);
  } finally {
    await held.close();
  }
});

Deno.test("POST /auth/login holds the lockout across two instances on one KV file under concurrent guesses", async () => {
  const { kv: kvA, path, close } = await tempFileKv("lookout_lockout_");
  const kvB = await Deno.openKv(path);
  try {
    const limits = { loginFreeFailures: 5, loginBaseLockMs: 60_000, loginPerIp: 1000 };
    const env = { JWT_SECRET: randomSecret() };
    await using a = await startTestServer(env, { kv: kvA, limits });
    await using b = await startTestServer(env, { kv: kvB, limits });
    const password = crypto.randomUUID();
    await putUser(kvA, { name: "kira", role: "viewer", password });

    const answers = await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) => loginRequest(i % 2 ? a : b, "kira", crypto.randomUUID()),
      ),
    );
    const statuses = answers.map((x) => x.status);
    assert.equal(statuses.filter((s) => s === 401).length, 5, `statuses: ${statuses.join(" ")}`);
    assert.equal(statuses.filter((s) => s === 429).length, 25, `statuses: ${statuses.join(" ")}`);
    for (const server of [a, b]) {
      assert.equal((await loginRequest(server, "kira", password)).status, 429);
    }
  } finally {
    kvB.close();
    await close();
  }
});
