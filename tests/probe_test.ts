/**
 * `probe`: each step against real servers from startTestServer(), tiny TCP
 * servers that misbehave like broken proxies (one drops Upgrade/Connection,
 * one answers 101 and hangs up, one terminates TLS), and the CLI as a
 * subprocess for exit codes, the output and the scenarios table.
 */
import assert from "node:assert/strict";
import {
  type AuthStep,
  authStep,
  connectStep,
  lookupStep,
  parseTarget,
  probe,
  type ProbeReport,
  ProbeUsageError,
  type Step,
  type UpgradeStep,
  upgradeStep,
} from "../probe/mod.ts";
import { explainStatus, explainTokenTimes, redactUrl } from "../probe/explain.ts";
import { breakSignature, runScenarios } from "../probe/scenarios.ts";
import { acceptFor } from "../probe/ws_wire.ts";
import { maskToken } from "../shared/mask_token.ts";
import {
  claims,
  forge,
  hasOpenssl,
  makeCertificates,
  randomPassword,
  randomSecret,
  runProbeCli,
  startProcess,
  startTestServer,
  unsecured,
} from "./helpers.ts";
import { jwtSecretKey } from "../lib/store/keys.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function stepOf<S extends Step = Step>(report: ProbeReport, name: Step["name"]): S {
  const found = report.steps.find((s) => s.name === name);
  assert.ok(found, `no ${name} step in ${JSON.stringify(report.steps.map((s) => s.name))}`);
  return found as S;
}

/** Hands each connection of `listener` to `handle`; disposing stops and waits for all. */
function serveConns<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  handle: (conn: C) => Promise<void>,
) {
  const tasks = new Set<Promise<void>>();
  const loop = (async () => {
    for await (const conn of listener) {
      const task = handle(conn).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // Closed by the handler.
        }
        tasks.delete(task);
      });
      tasks.add(task);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await loop;
      await Promise.all(tasks);
    },
  };
}

/** A TCP server on a free port that hands each connection to `handle`. */
function tinyServer(handle: (conn: Deno.Conn) => Promise<void>) {
  return serveConns(Deno.listen({ hostname: "127.0.0.1", port: 0 }), handle);
}

/** Copies `from` to `to` until either side ends, then closes both. */
async function pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(16 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      await writeAll(to, buf.subarray(0, n));
    }
  } finally {
    for (const c of [from, to]) {
      try {
        c.close();
      } catch {
        // Already closed by the other direction.
      }
    }
  }
}

/** A TLS-terminating proxy in front of `upstreamPort`, with the given certificate. */
function tlsProxy(upstreamPort: number, tls: { cert: string; key: string }) {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, ...tls });
  return serveConns(listener, async (conn) => {
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
    await Promise.allSettled([pipe(conn, upstream), pipe(upstream, conn)]);
  });
}

/** A throwaway CA and leaf (PEM texts), made in a temp folder that is removed again. */
async function certificates(): Promise<{ ca: string; cert: string; key: string }> {
  const dir = await Deno.makeTempDir({ prefix: "probe_tls_" });
  try {
    const { ca, cert, key } = await makeCertificates(dir);
    return { ca, cert, key };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const OPENSSL = await hasOpenssl();

/** Reads an HTTP head (up to the blank line) off `conn`. */
async function readHead(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += decoder.decode(buf.subarray(0, n));
  }
  return text.slice(0, text.indexOf("\r\n\r\n") + 4);
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** Reads until the peer closes. */
async function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  const parts: number[] = [];
  const buf = new Uint8Array(4096);
  while (true) {
    const n = await conn.read(buf);
    if (n === null) return Uint8Array.from(parts);
    parts.push(...buf.subarray(0, n));
  }
}

/**
 * A proxy that forwards one request per connection with its Upgrade header
 * dropped and Connection set to close, as nginx does without the WebSocket
 * lines, and relays the answer.
 */
function headerDroppingProxy(upstreamPort: number) {
  return tinyServer(async (client) => {
    const head = (await readHead(client)).split("\r\n")
      .filter((line) => !/^(upgrade|connection):/i.test(line));
    head.splice(1, 0, "Connection: close");
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port: upstreamPort });
    try {
      await writeAll(upstream, encoder.encode(head.join("\r\n")));
      await writeAll(client, await readToEnd(upstream));
    } finally {
      upstream.close();
    }
  });
}

/**
 * Answers the upgrade with a 101 (its accept value right unless `accept` is
 * given), reads one frame, and hangs up without a close frame.
 */
function dropAfterUpgrade(accept?: string) {
  return tinyServer(async (conn) => {
    const head = await readHead(conn);
    const key = /sec-websocket-key: *(\S+)/i.exec(head)?.[1] ?? "";
    await writeAll(
      conn,
      encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept ?? await acceptFor(key)}\r\nServer: fake-proxy\r\n\r\n`,
      ),
    );
    await conn.read(new Uint8Array(4096));
  });
}

Deno.test("parseTarget() implies /admin/ws for a bare host and maps http(s) to ws(s)", () => {
  const plain = parseTarget("http://example.com");
  assert.equal(plain.url.href, "ws://example.com/admin/ws");
  assert.equal(plain.httpOrigin, "http://example.com");
  assert.equal(plain.port, 80);
  const tls = parseTarget("https://[::1]:8443/");
  assert.equal(tls.url.href, "wss://[::1]:8443/admin/ws");
  assert.equal(tls.hostname, "::1");
  assert.equal(tls.secure, true);
  assert.equal(parseTarget("wss://h/custom/ws").url.pathname, "/custom/ws");
  assert.throws(() => parseTarget("ftp://h/"), ProbeUsageError);
  assert.throws(() => parseTarget("not a url"), ProbeUsageError);
});

Deno.test("redactUrl() never shows a whole token from the query", () => {
  const token = crypto.randomUUID().repeat(3);
  const shown = redactUrl(new URL(`ws://h/admin/ws?token=${token}`));
  assert.ok(!shown.includes(token));
  assert.ok(shown.includes(`token=${token.slice(0, 8)}…`));
});

Deno.test("maskToken() never shows a whole token, however short", () => {
  for (const token of ["a", "abcdefgh", "abcdefghi", crypto.randomUUID()]) {
    assert.ok(!maskToken(token).includes(token), `${token} shows as ${maskToken(token)}`);
  }
  assert.equal(maskToken("abcdefgh"), "…");
  assert.equal(maskToken("abcdefghi"), "abcdefgh…");
});

Deno.test("probe() passes every step against a live server", async () => {
  await using server = await startTestServer();
  const token = await server.mint({ sub: "alice" });
  const seen: string[] = [];
  const report = await probe(server.wsUrl, { token, onStep: (s) => seen.push(s.name) });
  assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1));
  assert.deepEqual(seen, ["dns", "tcp", "tls", "upgrade", "auth", "stats"]);
  assert.deepEqual(report.steps.map((s) => s.result), ["ok", "ok", "skip", "ok", "ok", "ok"]);
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(upgrade.response?.status, 101);
  assert.equal(upgrade.acceptOk, true);
  assert.ok(upgrade.details.some((d) => d.startsWith("Sec-WebSocket-Accept:")));
  const auth = stepOf<AuthStep>(report, "auth");
  assert.deepEqual(auth.user, { name: "alice", role: "admin" });
  assert.ok(!auth.summary.includes(token));
  const stats = stepOf(report, "stats") as Step & { stats: { connections: { open: number } } };
  assert.ok(stats.stats.connections.open >= 1);
  const [attempt] = await server.attempts(1);
  assert.equal(attempt.outcome, "success");
  assert.equal(attempt.userAgent, "lookout-probe");
});

Deno.test("probe() with header authenticates by Authorization: Bearer", async () => {
  await using server = await startTestServer();
  const report = await probe(server.wsUrl, { token: await server.mint(), header: true });
  assert.equal(report.ok, true);
  assert.match(stepOf(report, "auth").summary, /by Authorization header/);
  assert.equal((await server.attempts(1))[0].transport, "header");
});

Deno.test("cli/probe.ts exits 0 with a ✓ line per step and no whole token", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const { code, stdout } = await runProbeCli([server.wsUrl, "--token", token, "--hold", "2"]);
  assert.equal(code, 0, stdout);
  // Lookout itself keeps a quiet authenticated socket open through the hold.
  assert.match(
    stdout,
    /^✓ Hold +the socket stayed open through 2 s in which the probe sent nothing/m,
  );
  assert.match(stdout, /stays open 2 s when quiet\.$/m);
  for (const label of ["DNS", "TCP", "Upgrade", "Auth", "Stats"]) {
    assert.match(stdout, new RegExp(`^✓ ${label} `, "m"));
  }
  assert.match(stdout, /^– TLS +not used/m);
  assert.match(stdout, /HTTP\/1\.1 101 Switching Protocols/);
  assert.ok(!stdout.includes(token));
  assert.ok(stdout.includes(`${token.slice(0, 8)}…`));
});

Deno.test("probe() explains 400 token_in_url", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const report = await probe(`${server.wsUrl}?token=${token}`, { token });
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(report.ok, false);
  assert.equal(upgrade.result, "fail");
  assert.equal(upgrade.response?.status, 400);
  assert.equal(upgrade.json?.reason, "token_in_url");
  assert.match(upgrade.cause!, /URLs leak/);
  assert.match(upgrade.cause!, /first message/);
  assert.equal(report.steps.at(-1)?.name, "upgrade");
});

Deno.test("probe() explains a 401 for a Bearer header that fails, reason in words", async () => {
  await using server = await startTestServer();
  const report = await probe(server.wsUrl, {
    token: await forge(claims(), randomSecret()),
    header: true,
  });
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(upgrade.response?.status, 401);
  assert.match(upgrade.cause!, /401 invalid_signature/);
  assert.match(upgrade.cause!, /signed with another secret/);
});

Deno.test("probe() names the origin and ALLOWED_ORIGINS on 403 bad_origin", async () => {
  await using server = await startTestServer();
  const report = await probe(server.wsUrl, {
    token: await server.mint(),
    origin: "https://evil.example",
  });
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(upgrade.response?.status, 403);
  assert.match(upgrade.cause!, /Origin https:\/\/evil\.example/);
  assert.match(upgrade.cause!, /ALLOWED_ORIGINS/);
});

Deno.test("probe() explains 426 behind a proxy that drops Upgrade and Connection", async () => {
  await using server = await startTestServer();
  await using proxy = headerDroppingProxy(Number(server.url.port));
  const report = await probe(`ws://127.0.0.1:${proxy.port}/admin/ws`, {
    token: await server.mint(),
  });
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(upgrade.response?.status, 426);
  assert.match(upgrade.cause!, /only answers WebSocket upgrades/, "the server's message is shown");
  assert.match(upgrade.cause!, /drops the Upgrade and Connection headers/);
  assert.match(upgrade.cause!, /proxy_set_header Upgrade/);
});

Deno.test("probe() says a path that is no WebSocket answers 200, and a wrong one 404", async () => {
  await using server = await startTestServer();
  const health = await probe(`http://127.0.0.1:${server.url.port}/healthz`);
  const ordinary = stepOf<UpgradeStep>(health, "upgrade");
  assert.equal(ordinary.response?.status, 200);
  assert.match(ordinary.cause!, /\/healthz is not a WebSocket endpoint/);
  const missing = stepOf<UpgradeStep>(
    await probe(`ws://127.0.0.1:${server.url.port}/ws`),
    "upgrade",
  );
  assert.equal(missing.response?.status, 404);
  assert.match(missing.cause!, /Nothing answers at \/ws/);
});

Deno.test("probe() explains each 4401 reason in words", async () => {
  await using server = await startTestServer();
  const now = Math.floor(Date.now() / 1000);
  const cases: [string, string, RegExp][] = [
    ["not-a-jwt", "malformed_token", /not a JWT/],
    [await forge(claims(), randomSecret()), "invalid_signature", /another secret/],
    [unsecured(claims()), "alg_not_allowed", /algorithm/],
    [
      await forge(claims({ aud: "elsewhere" }), server.secret),
      "invalid_claims",
      /claims are wrong/,
    ],
    [
      await forge(claims({ iat: now + 120 }), server.secret),
      "token_not_yet_valid",
      /^The token is valid only from .*, (1 min 5\d s|2 min( \d s)?) ahead by the server's clock .*fix the clocks/,
    ],
    [
      await forge(claims({ iat: now - 900, exp: now - 120 }), server.secret),
      "token_expired",
      /^The token expired 2 min( \d+ s)? ago \(exp .*; server time .* from its Date header, this machine .*: the clocks agree.*\): get a fresh one/,
    ],
  ];
  for (const [token, reason, words] of cases) {
    const report = await probe(server.wsUrl, { token });
    const auth = stepOf<AuthStep>(report, "auth");
    assert.equal(auth.outcome, "closed", reason);
    assert.deepEqual(auth.close, { code: 4401, reason });
    assert.equal(auth.failedReason, reason);
    assert.match(auth.cause!, words, auth.cause);
    assert.ok(!auth.cause!.includes(token) || token === "not-a-jwt");
  }
});

Deno.test("explainTokenTimes() blames the clocks when only the server sees the token expired", async () => {
  const localNow = Date.now();
  const token = await forge(
    claims({ iat: Math.floor(localNow / 1000) - 60, exp: Math.floor(localNow / 1000) + 60 }),
    randomSecret(),
  );
  const words = explainTokenTimes(token, "token_expired", { localNow, skewMs: 180_000 });
  assert.match(words!, /server's clock is 3 min ahead of this machine's/);
  assert.match(words!, /expired 2 min( 1 s)? ago by the server's clock but not by this machine's/);
  assert.match(words!, /fix the clocks \(NTP\)/);
});

Deno.test("probe() with waitAuth sees the server close 4408 auth_timeout", async () => {
  await using server = await startTestServer({ AUTH_TIMEOUT_MS: "300" });
  const report = await probe(server.wsUrl, { waitAuth: true, authWaitMs: 5000 });
  const auth = stepOf<AuthStep>(report, "auth");
  assert.equal(report.ok, true);
  assert.deepEqual(auth.close, { code: 4408, reason: "auth_timeout" });
  assert.ok(auth.elapsedMs >= 250 && auth.elapsedMs < 3000, String(auth.elapsedMs));
  assert.equal((await server.attempts(1))[0].reason, "auth_timeout");
});

Deno.test("authStep() explains auth_timeout when the server closes before the auth arrives", async () => {
  await using server = await startTestServer({ AUTH_TIMEOUT_MS: "100" });
  const target = parseTarget(server.wsUrl);
  const tcp = await connectStep(target);
  const up = await upgradeStep(tcp.conn!, target);
  await new Promise((r) => setTimeout(r, 400));
  const auth = await authStep(up.socket!, { token: await server.mint() });
  await up.socket!.close();
  assert.deepEqual(auth.close, { code: 4408, reason: "auth_timeout" });
  assert.match(auth.cause!, /No auth message came in time/);
});

Deno.test("probe() without a token stops after the upgrade and does not pass", async () => {
  await using server = await startTestServer();
  const report = await probe(server.wsUrl);
  assert.equal(report.ok, false);
  const auth = stepOf<AuthStep>(report, "auth");
  assert.equal(auth.result, "skip");
  assert.equal(auth.outcome, "no_token");
  assert.equal(report.steps.at(-1)?.name, "auth");
});

Deno.test("probe() says 1006 when a 101 is followed by a drop with no close frame", async () => {
  await using dropper = dropAfterUpgrade();
  const report = await probe(`ws://127.0.0.1:${dropper.port}/admin/ws`, {
    token: await forge(claims(), randomSecret()),
  });
  assert.equal(stepOf(report, "upgrade").result, "ok");
  const auth = stepOf<AuthStep>(report, "auth");
  assert.equal(auth.outcome, "dropped");
  assert.equal(auth.close, undefined);
  assert.match(auth.summary, /without a close frame \(1006\)/);
  assert.match(auth.cause!, /1006/);
  // After a 101 the proxy passed the Upgrade headers: a drop right after the
  // handshake is a restart or a cut, never the headers, and not an idle cut.
  assert.doesNotMatch(auth.cause!, /proxy that does not pass Upgrade and Connection/);
  assert.match(auth.cause!, /Upgrade headers are not the cause/);
  assert.match(auth.cause!, /restarted or crashed, or the network was cut/);
});

Deno.test({
  name: "tlsStep() explains a certificate from an authority this machine does not trust",
  ignore: !OPENSSL,
  async fn() {
    await using server = await startTestServer();
    const certs = await certificates();
    await using proxy = tlsProxy(Number(server.url.port), certs);
    const report = await probe(`wss://127.0.0.1:${proxy.port}/admin/ws`, {
      token: await server.mint(),
    });
    const tls = stepOf(report, "tls");
    assert.equal(tls.result, "fail");
    assert.match(tls.cause!, /not signed by an authority this machine trusts/);
    assert.match(tls.cause!, /DENO_CERT/);
    assert.equal(report.steps.at(-1)?.name, "tls");
  },
});

Deno.test({
  name: "probe() passes every step over wss:// through a TLS proxy whose CA is trusted",
  ignore: !OPENSSL,
  async fn() {
    await using server = await startTestServer();
    const certs = await certificates();
    await using proxy = tlsProxy(Number(server.url.port), certs);
    const report = await probe(`https://127.0.0.1:${proxy.port}`, {
      token: await server.mint(),
      caCerts: [certs.ca],
    });
    assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1));
    assert.match(stepOf(report, "tls").summary, /certificate valid/);
  },
});

Deno.test({
  name: "tlsStep() says when the certificate does not name the host",
  ignore: !OPENSSL,
  async fn() {
    await using server = await startTestServer();
    const certs = await certificates();
    await using proxy = tlsProxy(Number(server.url.port), certs);
    const report = await probe(`wss://localhost:${proxy.port}/admin/ws`, { caCerts: [certs.ca] });
    const tls = stepOf(report, "tls");
    assert.equal(tls.result, "fail");
    assert.match(tls.cause!, /does not name localhost/);
  },
});

Deno.test("upgradeStep() fails a 101 whose Sec-WebSocket-Accept does not match the key", async () => {
  await using fake = dropAfterUpgrade(await acceptFor("not the key"));
  const report = await probe(`ws://127.0.0.1:${fake.port}/admin/ws`, { token: "t" });
  const upgrade = stepOf<UpgradeStep>(report, "upgrade");
  assert.equal(upgrade.result, "fail");
  assert.equal(upgrade.acceptOk, false);
  assert.ok(upgrade.details.some((d) => d.includes("(does NOT match the key)")));
  assert.match(upgrade.cause!, /wrong Sec-WebSocket-Accept.*\(fake-proxy\) rewrote the handshake/);
});

Deno.test("connectStep() explains a refused connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const report = await probe(`ws://127.0.0.1:${port}/admin/ws`);
  const tcp = stepOf(report, "tcp");
  assert.equal(tcp.result, "fail");
  assert.match(tcp.cause!, /Nothing listens on 127\.0\.0\.1:\d+ \(connection refused\)/);
  assert.deepEqual(report.steps.map((s) => s.name), ["dns", "tcp"]);
});

Deno.test("probe() warns when DNS has no address and fails at TCP when nothing resolves", async () => {
  const report = await probe("ws://lookout-probe-test.invalid:8000/", { timeoutMs: 3000 });
  const dns = stepOf(report, "dns");
  assert.equal(dns.result, "warn");
  assert.match(dns.cause!, /DNS|lookup/);
  const tcp = stepOf(report, "tcp");
  assert.equal(tcp.result, "fail");
  assert.match(tcp.cause!, /lookout-probe-test\.invalid/);
  assert.equal(report.ok, false);
});

Deno.test("lookupStep() skips IP literals and localhost", async () => {
  for (const url of ["ws://127.0.0.1:1/", "ws://[::1]:1/", "ws://localhost:1/"]) {
    const dns = await lookupStep(parseTarget(url));
    assert.equal(dns.result, "ok");
    assert.match(dns.summary, /no DNS lookup/);
  }
});

Deno.test("explainStatus() names the cause of 429, 502, 503 and 504", () => {
  const ctx = { path: "/admin/ws" };
  const answer = (status: number, headers: Record<string, string> = {}) => ({
    status,
    headers: new Headers(headers),
    json: null,
    body: "",
  });
  assert.match(
    explainStatus(answer(429, { "Retry-After": "17" }), ctx),
    /wait 17 s \(Retry-After\)/,
  );
  assert.match(
    explainStatus(answer(502, { Server: "nginx/1.22.1" }), ctx),
    /^The proxy \(nginx\/1\.22\.1\) cannot reach the app/,
  );
  assert.match(explainStatus(answer(503), ctx), /Deno KV/);
  assert.match(
    explainStatus(answer(504, { Via: "1.1 edge" }), ctx),
    /timed out waiting for the app/,
  );
  assert.match(
    explainStatus(answer(302, { Location: "https://h/admin/ws" }), ctx),
    /redirects to https:\/\/h\/admin\/ws/,
  );
});

Deno.test("breakSignature() changes the signature and nothing else", () => {
  const token = "aaa.bbb.Ccc";
  assert.equal(breakSignature(token), "aaa.bbb.Acc");
  assert.equal(breakSignature("aaa.bbb.Acc"), "aaa.bbb.Bcc");
});

Deno.test("runScenarios() skips the expired and revoked cases without a secret or a login", async () => {
  await using server = await startTestServer();
  const rows = await runScenarios(parseTarget(server.wsUrl), { token: await server.mint() });
  assert.deepEqual(rows.map((r) => [r.case, r.ok]), [
    ["valid token", true],
    ["expired token", null],
    ["invalid signature", true],
    ["missing token", true],
    ["revoked (open socket)", null],
    ["revoked (new socket)", null],
  ]);
  assert.match(rows[1].seen, /skipped: set JWT_SECRET to forge an expired token/);
});

Deno.test("cli/probe.ts --scenarios --login exits 0 and prints the table", async () => {
  const password = randomPassword();
  await using server = await startTestServer({ ADMIN_USERNAME: "root", ADMIN_PASSWORD: password });
  const { code, stdout } = await runProbeCli(
    [`http://127.0.0.1:${server.url.port}`, "--login", "root", "--scenarios", "--quick"],
    { LOOKOUT_PASSWORD: password, JWT_SECRET: server.secret },
  );
  assert.equal(code, 0, stdout);
  assert.match(stdout, /^case +\| expected +\| seen +\| ok$/m);
  for (
    const [name, expected] of [
      ["valid token", "authenticated"],
      ["expired token", "4401 token_expired"],
      ["invalid signature", "4401 invalid_signature"],
      ["missing token", "4401 missing_token"],
      ["revoked \\(open socket\\)", "4403 revoked"],
      ["revoked \\(new socket\\)", "4403 revoked"],
    ]
  ) {
    assert.match(stdout, new RegExp(`^${name} +\\| ${expected} +\\| ${expected} +\\| ✓$`, "m"));
  }
  assert.ok(!stdout.includes(password));
  assert.ok(!stdout.includes(server.secret));
});

Deno.test("cli/probe.ts --scenarios exits 1 against a server with another JWT_AUDIENCE", async () => {
  await using server = await startTestServer({ JWT_AUDIENCE: "elsewhere" });
  // Signed with the server's key, but for the default audience.
  const token = await forge(claims({ aud: "lookout" }), server.secret);
  const { code, stdout } = await runProbeCli([
    server.wsUrl,
    "--token",
    token,
    "--scenarios",
    "--quick",
  ], {
    JWT_SECRET: server.secret,
  });
  assert.equal(code, 1, stdout);
  assert.match(stdout, /^✗ Auth +closed 4401 invalid_claims/m);
  assert.match(stdout, /^valid token +\| authenticated +\| 4401 invalid_claims +\| ✗$/m);
  assert.match(stdout, /→ valid token: The token's claims are wrong/);
});

Deno.test("cli/probe.ts exits 2 on bad usage", async () => {
  for (
    const args of [
      [],
      ["ftp://h/"],
      ["ws://h/", "--token", "t", "--login", "u"],
      ["ws://h/", "--scenarios"],
      ["ws://h/", "--header"],
      ["ws://h/", "--origin", "https://h/path"],
      ["ws://h/", "--bogus"],
      ["ws://h/", "--hold", "-1"],
      ["ws://h/", "--hold", "soon"],
      ["ws://h/", "--hold", "5", "--quick"],
      ["ws://h/", "--token", "t", "--kv", "data.sqlite3"],
    ]
  ) {
    const { code, stderr } = await runProbeCli(args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    assert.match(stderr, /^Cannot probe/);
    assert.match(stderr, /usage: deno task probe URL/);
  }
});

Deno.test("probe() explains key_unavailable and an unknown iss in one sentence each", async () => {
  const { freePort } = await import("./helpers.ts");
  const { issuerEntry, makeKey, signIdp } = await import("./idp_fixtures.ts");
  const signing = await makeKey("RS256", "k");
  const idp = "https://idp.test/";
  await using server = await startTestServer({
    JWT_ISSUERS: JSON.stringify([
      issuerEntry(idp, `http://127.0.0.1:${freePort()}/jwks.json`),
    ]),
  });
  const cases: [string, { code: number; reason: string }, RegExp][] = [
    [
      await signIdp(signing, idp),
      { code: 1013, reason: "key_unavailable" },
      /^The server could not fetch the keys of the token's issuer "https:\/\/idp\.test\/" \(its jwksUrl in JWT_ISSUERS is down/,
    ],
    [
      await signIdp(signing, "https://unknown.test/"),
      { code: 4401, reason: "invalid_claims" },
      /^The token's claims are wrong for this server \(its iss is "https:\/\/unknown\.test\/"\): an iss that is neither the server's JWT_ISSUER nor an issuer in its JWT_ISSUERS is refused/,
    ],
  ];
  for (const [token, close, words] of cases) {
    const report = await probe(server.wsUrl, { token });
    const auth = stepOf<AuthStep>(report, "auth");
    assert.deepEqual(auth.close, close);
    assert.equal(auth.failedReason, close.reason);
    assert.match(auth.cause!, words, auth.cause);
    assert.doesNotMatch(auth.cause!, /[\r\n]/);
    assert.ok(!auth.cause!.includes(token));
  }
});

Deno.test("explainStatus() explains 503 key_unavailable for a Bearer header", () => {
  const header = btoa(JSON.stringify({ alg: "RS256" })).replaceAll("=", "");
  const payload = btoa(JSON.stringify({ iss: "https://idp.test/" })).replaceAll("=", "");
  const words = explainStatus({
    status: 503,
    headers: new Headers({ "Retry-After": "30" }),
    json: { error: "unavailable", reason: "key_unavailable" },
    body: "",
  }, { path: "/admin/ws", token: `${header}.${payload}.c2ln` });
  assert.match(
    words,
    /^The server could not check the Bearer token \(503 key_unavailable\): the server could not fetch the keys of the token's issuer "https:\/\/idp\.test\/"/,
  );
});

Deno.test("cli/probe.ts shows a proxy's multi-line HTML answer indented and cut", async () => {
  const page = [
    "<html>",
    "<head><title>502 Bad Gateway</title></head>",
    "<body>",
    `<center><h1>502 Bad Gateway</h1>${"x".repeat(200)}</center>`,
    ...Array.from({ length: 10 }, (_, i) => `<!-- padding ${i} -->`),
    "</body>",
    "</html>",
  ].join("\r\n");
  await using proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(page, {
        status: 502,
        headers: { "Content-Type": "text/html", Server: "nginx" },
      }),
  );
  const { code, stdout } = await runProbeCli([
    `ws://127.0.0.1:${proxy.addr.port}/admin/ws`,
    "--token",
    "t",
  ]);
  assert.equal(code, 1, stdout);
  assert.match(stdout, /^ {13}body \(16 lines\):$/m);
  assert.match(stdout, /^ {15}<head><title>502 Bad Gateway<\/title><\/head>$/m);
  assert.match(stdout, new RegExp(`^ {15}<center><h1>502 Bad Gateway</h1>x{88}…$`, "m"));
  assert.match(stdout, /^ {15}<!-- padding 3 -->$/m);
  assert.doesNotMatch(stdout, /padding 4/, "cut after 8 lines");
  assert.match(stdout, /^ {15}… 8 more lines$/m);
  assert.match(stdout, /→ The proxy \(nginx\) cannot reach the app behind it \(502\)/);
});

Deno.test("cli/probe.ts --scenarios --kv forges the expired token with the secret the server keeps in KV", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout-probe-kv-" });
  const kvPath = `${dir}/kv.sqlite3`;
  // No JWT_SECRET anywhere: the server generates its secret and keeps it in KV.
  const env = { KV_PATH: kvPath, LOOKOUT_WORKERS: "1" };
  assert.equal(Deno.env.get("JWT_SECRET"), undefined, "the test needs JWT_SECRET unset");
  const proc = await startProcess(env);
  try {
    const minted = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "cli/token.ts", "--sub", "alice", "--role", "admin"],
      cwd: new URL("..", import.meta.url),
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(minted.success, new TextDecoder().decode(minted.stderr));
    const token = new TextDecoder().decode(minted.stdout).trim();

    const without = await runProbeCli([proc.wsUrl, "--token", token, "--scenarios", "--quick"], {
      JWT_SECRET: "",
    });
    assert.match(
      without.stdout,
      /^expired token +\| 4401 token_expired +\| skipped: set JWT_SECRET to forge an expired token, or pass --kv PATH/m,
    );

    const { code, stdout } = await runProbeCli(
      [proc.wsUrl, "--token", token, "--scenarios", "--quick", "--kv", kvPath],
      { JWT_SECRET: "" },
    );
    assert.equal(code, 0, stdout);
    assert.ok(stdout.includes(`(the expired token is signed with the secret in ${kvPath})`));
    assert.match(stdout, /^expired token +\| 4401 token_expired +\| 4401 token_expired +\| ✓$/m);
    const secret = await (async () => {
      const kv = await Deno.openKv(kvPath);
      try {
        return (await kv.get<string>(jwtSecretKey())).value;
      } finally {
        kv.close();
      }
    })();
    assert.ok(secret && !stdout.includes(secret), "the secret is never printed");

    const missing = await runProbeCli(
      [proc.wsUrl, "--token", token, "--scenarios", "--kv", `${dir}/nope.sqlite3`],
    );
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /^Cannot probe as --kv names no file/);
  } finally {
    proc.child.kill("SIGTERM");
    await proc.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli/probe.ts --help lists every flag it takes", async () => {
  const { code, stdout } = await runProbeCli(["--help"]);
  assert.equal(code, 0);
  const [usageLine] = stdout.split("\n  URL");
  for (
    const flag of [
      "--token",
      "--login",
      "--origin",
      "--header",
      "--scenarios",
      "--kv",
      "--wait-auth",
      "--hold",
      "--quick",
      "--timeout",
    ]
  ) {
    assert.ok(usageLine.includes(flag), `the usage line lists ${flag}: ${usageLine}`);
    assert.match(stdout, new RegExp(`^  ${flag} `, "m"), `${flag} is explained`);
  }
});
