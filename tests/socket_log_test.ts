/**
 * Socket activity in the logs (issue 13 item 7): refused upgrades, failed
 * and successful socket authentications and closes are JSON lines at info,
 * bounded under a flood; LOG_LEVEL picks the lowest level; a start-up banner
 * is written on a terminal only. In-process servers for the lines, real
 * `main.ts` processes (one under a pty from `script`) for the rest.
 */
import assert from "node:assert/strict";
import {
  claims,
  forge,
  freePort,
  holdUpgrade,
  randomSecret,
  rawUpgrade,
  startProcess,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";

type Line = Record<string, unknown>;

function lines(server: TestServer, msg: string): Line[] {
  return server.logs.map((l) => JSON.parse(l) as Line).filter((l) => l.msg === msg);
}

/** Waits until `count` lines of `msg` matching `match` are logged; returns them. */
async function logged(
  server: TestServer,
  msg: string,
  match: (l: Line) => boolean,
  count = 1,
): Promise<Line[]> {
  const deadline = Date.now() + 3000;
  while (true) {
    const found = lines(server, msg).filter(match);
    if (found.length >= count) return found;
    if (Date.now() > deadline) {
      assert.fail(`no ${msg} line matching: got\n${server.logs.join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

const LONG_AGENT = "Mozilla/5.0 " + "x".repeat(300);

Deno.test("a socket dropped without a close frame is logged closed 1006 by the client and leaves the registry", async () => {
  await using server = await startTestServer();
  const held = await holdUpgrade(server.wsUrl, {
    Authorization: `Bearer ${await server.mint({ sub: "dee" })}`,
  });
  assert.equal(held.status, 101);
  const [auth] = await logged(server, "socket authenticated", (l) => l.user === "dee");
  assert.equal([...server.deps.registry.members()].length, 1);
  // The TCP connection goes, no close frame: Deno reports an error, then a close with code 0.
  await held.close();
  const [closed] = await logged(
    server,
    "socket closed",
    (l) => l.connectionId === auth.connectionId,
  );
  assert.deepEqual([closed.code, closed.by, closed.authenticated], [1006, "client", true]);
  assert.equal([...server.deps.registry.members()].length, 0);
});

Deno.test("socket authentications, failures and closes are info lines with ip, user, reason, code and connection id", async () => {
  await using server = await startTestServer();
  const instance = server.deps.instanceId;
  const headers = { Origin: server.url.origin, "User-Agent": LONG_AGENT };

  const ok = await TestClient.open(server.wsUrl, { headers });
  const { connectionId } = await ok.auth(await server.mint({ sub: "ada" }));
  const [auth] = await logged(server, "socket authenticated", (l) => l.user === "ada");
  assert.equal(auth.level, "info");
  assert.equal(auth.connectionId, connectionId);
  assert.equal(auth.instance, instance);
  assert.equal(auth.ip, "127.0.0.1");
  assert.equal(auth.origin, server.url.origin);
  assert.equal(auth.transport, "message");
  assert.equal(auth.reason, "ok");
  assert.equal(typeof auth.durationMs, "number");
  // Deno's client puts its own name in front of the one given.
  const agent = auth.userAgent as string;
  assert.match(agent, /Mozilla\/5\.0 x+\.\.\.$/);
  assert.equal(agent.length, 123, "the user agent is cut to 120 characters");

  // The client closes with a code and a reason of its own.
  ok.ws.close(4000, "ping_timeout");
  await ok.closed;
  const [closed] = await logged(server, "socket closed", (l) => l.connectionId === connectionId);
  assert.equal(closed.level, "info");
  assert.deepEqual(
    [closed.code, closed.reason, closed.by, closed.user, closed.instance, closed.ip],
    [4000, "ping_timeout", "client", "ada", instance, "127.0.0.1"],
  );
  assert.equal(typeof closed.durationMs, "number");

  // A failing first message: the failure, then the server's close, both logged.
  const bad = await TestClient.open(server.wsUrl, { headers });
  const now = Math.floor(Date.now() / 1000);
  const expired = claims({ sub: "eve", iat: now - 1200, exp: now - 600 });
  bad.send({ type: "auth", token: await forge(expired, server.secret) });
  assert.deepEqual(await bad.closed, { code: 4401, reason: "token_expired" });
  const [failed] = await logged(
    server,
    "socket authentication failed",
    (l) => l.reason === "token_expired",
  );
  assert.deepEqual([failed.level, failed.user, failed.transport], ["info", "eve", "message"]);
  const failedId = failed.connectionId;
  const [rejected] = await logged(server, "socket closed", (l) => l.connectionId === failedId);
  assert.deepEqual([rejected.code, rejected.reason, rejected.by], [
    4401,
    "token_expired",
    "server",
  ]);

  // A Bearer header: authenticated at the upgrade, logged with the socket's id.
  const header = await TestClient.open(server.wsUrl, {
    headers: { Authorization: `Bearer ${await server.mint({ sub: "bea" })}` },
  });
  const hello = await header.next("authenticated");
  const [viaHeader] = await logged(server, "socket authenticated", (l) => l.user === "bea");
  assert.deepEqual([viaHeader.transport, viaHeader.connectionId], ["header", hello.connectionId]);
  await header.close();

  // A peer's free-text close reason is not copied into the log.
  const chatty = await TestClient.open(server.wsUrl);
  const { connectionId: chattyId } = await chatty.auth(await server.mint({ sub: "cy" }));
  chatty.ws.close(4000, "my secret is " + "s".repeat(40));
  await chatty.closed;
  const [quiet] = await logged(server, "socket closed", (l) => l.connectionId === chattyId);
  assert.equal(quiet.reason, "(53 characters, not logged)");
});

Deno.test("refused upgrades are info lines when recorded; a flood from one IP writes one rate_limited line per burst", async () => {
  await using server = await startTestServer({}, {
    limits: { wsFailuresPerIp: 5, wsFailureWindowMs: 60_000 },
  });
  const origin = await rawUpgrade(server.wsUrl, { Origin: "https://evil.example" });
  assert.equal(origin.status, 403);
  const [line] = await logged(server, "upgrade refused", (l) => l.reason === "bad_origin");
  assert.deepEqual(
    [line.level, line.status, line.transport, line.origin, line.ip, line.instance],
    ["info", 403, "upgrade", "https://evil.example", "127.0.0.1", server.deps.instanceId],
  );
  const bearer = await rawUpgrade(server.wsUrl, {
    Authorization: `Bearer ${await forge(claims({ sub: "eve" }), randomSecret())}`,
  });
  assert.equal(bearer.status, 401);
  const [header] = await logged(server, "upgrade refused", (l) => l.status === 401);
  assert.deepEqual([header.reason, header.transport, header.user], [
    "invalid_signature",
    "header",
    null,
  ]);

  // 200 more refusals from the same IP: 3 more failures reach the limit of
  // 5, then one rate_limited record and one line for the whole burst.
  const statuses: number[] = [];
  for (let i = 0; i < 200; i++) {
    statuses.push((await rawUpgrade(`${server.wsUrl}?token=x${i}`)).status);
  }
  assert.equal(statuses.filter((s) => s === 400).length, 3);
  assert.equal(statuses.filter((s) => s === 429).length, 197);
  const refused = lines(server, "upgrade refused").filter((l) => l.level === "info");
  assert.deepEqual(refused.map((l) => l.reason), [
    "bad_origin",
    "invalid_signature",
    "token_in_url",
    "token_in_url",
    "token_in_url",
    "rate_limited",
  ]);
  // The lines follow the records, one for one.
  const recorded = await server.attempts(500);
  assert.equal(recorded.length, refused.length);

  // A refusal that is never recorded (not a WebSocket upgrade) is a debug line only.
  const plain = await fetch(server.wsUrl.replace("ws:", "http:"));
  await plain.body?.cancel();
  assert.equal(plain.status, 426);
  const [debug] = await logged(server, "upgrade refused", (l) => l.status === 426);
  assert.equal(debug.level, "debug");
});

/** A temporary folder, removed on dispose. */
async function tempDir() {
  const path = await Deno.makeTempDir({ prefix: "lookout_banner_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Runs `main.ts` with `env`; returns what it wrote when `until` is seen (or it exits). */
async function runMain(env: Record<string, string>, until: RegExp): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    env: { HOSTNAME: "127.0.0.1", KV_PATH: ":memory:", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  return await readUntil(child, until);
}

async function readUntil(child: Deno.ChildProcess, until: RegExp): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      text += decoder.decode(chunk, { stream: true });
      if (until.test(text)) {
        try {
          child.kill("SIGTERM");
        } catch { /* exited */ }
      }
    }
  };
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 20_000);
  await Promise.all([read(child.stdout), read(child.stderr), child.status]);
  clearTimeout(timer);
  return text;
}

Deno.test("LOG_LEVEL picks the lowest level main.ts logs; a bad value stops start-up with one line", async () => {
  const secret = randomSecret();
  const at = async (level: string) => {
    const server = await startProcess({
      KV_PATH: ":memory:",
      JWT_SECRET: secret,
      LOG_LEVEL: level,
    });
    try {
      const client = await TestClient.open(server.wsUrl);
      await client.auth(await forge(claims({ sub: "lou", role: "admin" }), secret));
      await client.close();
      // Logged as the socket closes: give the line a moment to be written.
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      server.child.kill("SIGTERM");
      await server.status;
    }
    return server.output();
  };
  const info = await at("info");
  assert.match(info, /"message":"listening"/);
  assert.match(info, /"message":"socket authenticated"/);
  assert.match(info, /"message":"socket closed"/);
  assert.doesNotMatch(info, /"level":"DEBUG"/);
  const warning = await at("warning");
  assert.doesNotMatch(warning, /"message":"listening"|"message":"socket/);

  const bad = await runMain({ LOG_LEVEL: "loud", PORT: String(freePort()) }, /$^/);
  assert.equal(
    bad.trim(),
    'Cannot start as LOG_LEVEL must be one of debug, info, warning, error: current value is "loud"',
  );
});

Deno.test("main.ts writes its start-up banner on a terminal only", async () => {
  await using temp = await tempDir();
  const dir = temp.path;
  const port = freePort();
  const env = { PORT: String(port), LOOKOUT_WORKERS: "2", JWT_SECRET: randomSecret() };
  // Not a terminal (a pipe, as in CI or a container): JSON lines only.
  const piped = await runMain(
    { ...env, KV_PATH: `${dir}/piped.sqlite3` },
    /"message":"listening"[\s\S]*"message":"listening"/,
  );
  assert.match(piped, /"message":"listening"/);
  assert.doesNotMatch(piped, /Lookout listening on/);
  for (const line of piped.trim().split("\n")) JSON.parse(line);

  // A terminal: `script` gives main.ts a pty for stdout and stderr.
  const kvPath = `${dir}/tty.sqlite3`;
  const command = `${Deno.execPath()} run -A ${new URL("../main.ts", import.meta.url).pathname}`;
  const child = new Deno.Command("script", {
    args: ["-qfec", command, "/dev/null"],
    env: { ...env, HOSTNAME: "0.0.0.0", KV_PATH: kvPath, NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const text = (await readUntil(child, /Logs: [^\n]*\n/)).replaceAll("\r", "");
  assert.match(
    text,
    new RegExp(`^Lookout listening on http://localhost:${port} \\(2 workers\\)$`, "m"),
  );
  assert.match(text, new RegExp(`^KV: ${kvPath}$`, "m"));
  assert.match(text, /^Issuers: lookout \(HS256\)$/m);
  assert.match(text, new RegExp(`^Dashboard: http://localhost:${port}/admin$`, "m"));
  assert.match(text, /^Logs: JSON lines at info and above \(LOG_LEVEL\)$/m);
});

for (const workers of [1, 2]) {
  Deno.test(`main.ts with ${workers} worker(s) writes every socket line whole to its pipe, none lost at stop`, async () => {
    await using temp = await tempDir();
    const secret = randomSecret();
    const server = await startProcess({
      KV_PATH: `${temp.path}/lines.sqlite3`,
      JWT_SECRET: secret,
      LOOKOUT_WORKERS: String(workers),
      TRUST_PROXY: "true",
    });
    const sockets = 200;
    try {
      const token = await forge(claims({ sub: "lou", role: "admin" }), secret);
      // Both workers log at once, from their own threads, into one pipe.
      await Promise.all(Array.from({ length: sockets }, async (_, i) => {
        const client = await TestClient.open(server.wsUrl, {
          headers: { "X-Forwarded-For": `10.9.${i >> 8}.${i & 255}` },
        });
        await client.auth(token);
      }));
    } finally {
      // Held open: each socket's close line is written while the workers stop.
      server.child.kill("SIGTERM");
    }
    assert.equal((await server.status).code, 0);
    const parsed = server.output().trim().split("\n").map((line) => JSON.parse(line) as Line);
    const of = (message: string) => parsed.filter((l) => l.message === message);
    assert.equal(of("socket authenticated").length, sockets);
    const closed = of("socket closed").map((l) => l.properties as Line);
    assert.equal(closed.length, sockets);
    assert.ok(closed.every((p) => p.code === 1001 && p.by === "server"));
    assert.equal(of("stopping").length, 1);
  });
}

Deno.test("main.ts keeps serving and stops cleanly when the reader of its stdout goes away", async () => {
  const port = freePort();
  const secret = randomSecret();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    env: { HOSTNAME: "127.0.0.1", PORT: String(port), KV_PATH: ":memory:", JWT_SECRET: secret },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const base = `http://127.0.0.1:${port}`;
  try {
    const stdout = child.stdout.getReader();
    await stdout.read(); // the first line: it is up
    // Like `deno task start | head -1`: the pipe's reader is gone.
    await stdout.cancel();
    // Lines logged now meet a closed pipe: a refused upgrade, an authentication, a close.
    assert.equal(
      (await rawUpgrade(`${base}/admin/ws`, { Origin: "http://evil.example" })).status,
      403,
    );
    const client = await TestClient.open(`ws://127.0.0.1:${port}/admin/ws`);
    await client.auth(await forge(claims({ sub: "ada", role: "admin" }), secret));
    await client.close();
    await new Promise((r) => setTimeout(r, 100));
    const health = await fetch(`${base}/healthz`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal((await child.status).code, 0);
  assert.equal(await stderr, "");
});
