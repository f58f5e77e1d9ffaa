/**
 * Lookout behind a real nginx (Debian's binary), configured from the shipped
 * deploy/nginx.conf with only the upstream address and the listen port
 * swapped, so the file users copy is the file tested; its optional lines
 * (TLS, realip) are turned on from their commented form. Proves that auth,
 * stats and the API work through it, that the logged IP is the hop nginx
 * appended to X-Forwarded-For (never one the client made up, also behind a
 * second proxy), that the origin check holds over http and https, and that
 * `probe` explains the two classic mistakes: a config without the
 * Upgrade/Connection lines (426 from Lookout, 1006 in a browser) and a
 * proxy_read_timeout that cuts idle sockets (1006, no close frame).
 */
import assert from "node:assert/strict";
import {
  type AuthStep,
  openSocket,
  parseTarget,
  probe,
  type ProbeReport,
  type Step,
  type UpgradeStep,
} from "../probe/mod.ts";
import { encodeFrame } from "../probe/ws_wire.ts";
import {
  eventually,
  hasOpenssl,
  makeCertificates,
  randomPassword,
  rawUpgrade,
  runProbeCli,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";

const ROOT = new URL("..", import.meta.url);
const SHIPPED = await Deno.readTextFile(new URL("deploy/nginx.conf", ROOT));
const decoder = new TextDecoder();

async function findNginx(): Promise<string | null> {
  const candidates = [Deno.env.get("NGINX_PATH"), "/usr/sbin/nginx"].filter((p) => p) as string[];
  for (const path of candidates) {
    if (await Deno.stat(path).then((s) => s.isFile, () => false)) return path;
  }
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", "command -v nginx"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const path = decoder.decode(out.stdout).trim();
    return out.success && path ? path : null;
  } catch {
    return null;
  }
}

const NGINX = await findNginx();
if (!NGINX) {
  console.warn(
    `\n${
      "!".repeat(72)
    }\n!! SKIPPED: nginx tests, nginx not installed (not at /usr/sbin/nginx nor on PATH).\n` +
      `!! Install it (apt-get install nginx, as .ci/run does) or set NGINX_PATH.\n${
        "!".repeat(72)
      }\n`,
  );
}

/** A port nothing listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** Replaces `from` in `text`, failing when it is not there: the test must track the file. */
function swap(text: string, from: string | RegExp, to: string): string {
  const out = text.replace(from, to);
  assert.notEqual(out, text, `deploy/nginx.conf no longer contains ${from}`);
  return out;
}

/** The config without the two WebSocket lines: the classic mistake. */
function withoutUpgradeLines(conf: string): string {
  return swap(conf, /^\s*proxy_set_header (Upgrade|Connection) .*\n/gm, "");
}

/** The config with its optional realip lines on, trusting `from` as the proxy in front. */
function withRealIp(conf: string, from: string): string {
  conf = swap(conf, /# set_real_ip_from \S+;/, `set_real_ip_from ${from};`);
  conf = swap(conf, "# real_ip_header X-Forwarded-For;", "real_ip_header X-Forwarded-For;");
  return swap(conf, "# real_ip_recursive on;", "real_ip_recursive on;");
}

interface NginxOptions {
  /** Lookout's port: replaces the shipped upstream 127.0.0.1:8000. */
  upstreamPort: number;
  /** An edit of the shipped text (simulating a mistake, or turning on an option). */
  edit?: (conf: string) => string;
  /** nginx connects to Lookout from this loopback address, so its hop differs from the client's. */
  bind?: string;
  /** More http {} text (given nginx's port) and the ports it listens on. */
  extra?: (port: number) => { text: string; ports: number[] };
}

interface Nginx {
  port: number;
  base: string;
  wsUrl: string;
  /** What nginx wrote to its error log (stderr) so far. */
  errors(): string;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Runs nginx in the foreground as the current user, everything it writes in
 * a temp dir, with deploy/nginx.conf (edited as asked) inside a minimal
 * main config; resolves once it accepts connections.
 */
async function startNginx(options: NginxOptions): Promise<Nginx> {
  for (let attempt = 1;; attempt++) {
    try {
      return await startNginxOnce(options);
    } catch (error) {
      // The free port was taken between our probe and nginx's bind: pick another.
      if (attempt < 3 && /Address already in use/.test(String(error))) continue;
      throw error;
    }
  }
}

async function startNginxOnce(options: NginxOptions): Promise<Nginx> {
  const dir = await Deno.makeTempDir({ prefix: "lookout_nginx_" });
  // Started as root, nginx runs its workers as nobody, who must reach the temp paths.
  await Deno.chmod(dir, 0o755);
  const port = freePort();
  let site = swap(SHIPPED, "server 127.0.0.1:8000;", `server 127.0.0.1:${options.upstreamPort};`);
  site = swap(site, /^(\s*)listen 8080;$/m, `$1listen 127.0.0.1:${port};`);
  if (options.edit) site = options.edit(site);
  const extra = options.extra?.(port);
  const conf = [
    "worker_processes 1;",
    "events { worker_connections 256; }",
    "http {",
    ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((name) =>
      `    ${name}_temp_path ${dir}/${name}_temp;`
    ),
    `    access_log ${dir}/access.log;`,
    options.bind ? `    proxy_bind ${options.bind};` : "",
    site,
    extra?.text ?? "",
    "}",
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/nginx.conf`, conf);
  const child = new Deno.Command(NGINX!, {
    args: [
      "-p",
      `${dir}/`,
      "-c",
      `${dir}/nginx.conf`,
      "-g",
      `daemon off; pid ${dir}/nginx.pid; error_log stderr info;`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let errors = "";
  const reading = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (errors += chunk) }),
  ).catch(() => {});
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited meanwhile.
      }
    }
    await status;
    await reading;
    await Deno.remove(dir, { recursive: true });
  };
  try {
    for (const p of [port, ...extra?.ports ?? []]) {
      await eventually(
        async () => {
          if (exited) throw new Error(`nginx exited at start (${(await status).code}): ${errors}`);
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port: p })).close();
            return true;
          } catch {
            return false;
          }
        },
        5000,
        `nginx to accept on port ${p}`,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/admin/ws`,
    errors: () => errors,
    [Symbol.asyncDispose]: stop,
  };
}

function stepOf<S extends Step = Step>(report: ProbeReport, name: Step["name"]): S {
  const found = report.steps.find((s) => s.name === name);
  assert.ok(found, `no ${name} step in ${JSON.stringify(report.steps, null, 1)}`);
  return found as S;
}

/** The newest attempt of `user`, straight from KV. */
async function attemptOf(server: TestServer, user: string) {
  const found = (await server.attempts()).find((a) => a.user === user);
  assert.ok(found, `no attempt by ${user}`);
  return found;
}

/**
 * How a WebSocket client ends up: whether it opened, and the close. A browser
 * reports a failed handshake or a drop without a close frame as 1006; Deno's
 * client (2.9) reports the same abnormal closure as code 0, so both count.
 */
async function abnormalEnd(url: string): Promise<{ opened: boolean; abnormal: boolean }> {
  const ws = new WebSocket(url);
  let opened = false;
  ws.onopen = () => opened = true;
  const close = await new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  return { opened, abnormal: !close.wasClean && (close.code === 1006 || close.code === 0) };
}

/** Pings every 400 ms, six times, after authenticating: Lookout's pongs keep the socket busy. */
async function pingsAnswered(url: string, token: string): Promise<string> {
  const client = await TestClient.open(url);
  try {
    await client.auth(token);
    for (let id = 1; id <= 6; id++) {
      await new Promise((r) => setTimeout(r, 400));
      client.send({ type: "ping", id });
      assert.equal((await client.next("pong")).id, id);
    }
    return client.ws.readyState === WebSocket.OPEN ? "open after 6 pongs" : "closed";
  } finally {
    await client.close();
  }
}

/**
 * Sends only unsolicited pong frames (which Lookout never answers) every
 * 400 ms for 2.4 s, then authenticates: traffic from the client alone resets
 * nginx's timer too.
 */
async function pongsThenAuth(url: string, token: string): Promise<string> {
  const opened = await openSocket(parseTarget(url));
  assert.ok("socket" in opened, JSON.stringify(opened));
  const { socket } = opened;
  try {
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 400));
      await socket.wire.write(encodeFrame(0xa, new Uint8Array(0)));
    }
    await socket.sendText(JSON.stringify({ type: "auth", token }));
    const event = await socket.next(3000);
    if (event.type !== "text") return JSON.stringify(event);
    const type = JSON.parse(event.data).type;
    return type === "authenticated" ? "authenticated after 2.4 s of client pongs" : type;
  } finally {
    await socket.close();
  }
}

const OPENSSL = await hasOpenssl();

/** The config with TLS on, by its own commented ssl lines. */
function withTls(conf: string, files: { certFile: string; keyFile: string }): string {
  conf = swap(conf, /listen (127\.0\.0\.1:\d+);/, "listen $1 ssl;");
  conf = swap(conf, /#\s+ssl_certificate\s+\S+;/, `ssl_certificate ${files.certFile};`);
  return swap(conf, /#\s+ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${files.keyFile};`);
}

const ignore = NGINX === null;

Deno.test({
  name: "deploy/nginx.conf carries auth, stats and ping/pong on /admin/ws, /healthz and the API",
  ignore,
  async fn() {
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({ upstreamPort: Number(server.url.port) });
    const token = await server.mint({ sub: "alice" });

    const client = await TestClient.open(nginx.wsUrl);
    try {
      const hello = await client.auth(token);
      assert.deepEqual(hello.user, { name: "alice", role: "admin" });
      const stats = await client.next("stats_update");
      assert.ok(stats.data.connections.authenticated >= 1);
      client.send({ type: "ping", id: 7 });
      const pong = await client.next("pong");
      assert.equal(pong.id, 7);
      client.send({ type: "get_stats" });
      await client.next("stats_update");
    } finally {
      await client.close();
    }

    const health = await fetch(`${nginx.base}/healthz`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    assert.equal(health.headers.get("server"), "nginx", "server_tokens off: no version shown");

    const api = await fetch(`${nginx.base}/api/v1/stats`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.equal(api.status, 200);
    const body = await api.json();
    assert.equal(typeof body.instance, "string");
    assert.ok(body.attempts.success >= 1);
    const anonymous = await fetch(`${nginx.base}/api/v1/stats`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();

    // The doctor agrees: every step passes through nginx.
    const report = await probe(nginx.wsUrl, { token });
    assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1));
    assert.ok(stepOf(report, "upgrade").details.includes("Server: nginx"));
  },
});

Deno.test({
  name: "nginx: the logged IP is the X-Forwarded-For hop nginx appended, never a spoofed one",
  ignore,
  async fn() {
    // nginx connects to Lookout from 127.0.0.2 while clients come from
    // 127.0.0.1, so the socket's peer and the forwarded hop can be told apart.
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({
      upstreamPort: Number(server.url.port),
      bind: "127.0.0.2",
    });
    await using untrusting = await startTestServer({ TRUST_PROXY: "false" });
    await using nginx2 = await startNginx({
      upstreamPort: Number(untrusting.url.port),
      bind: "127.0.0.2",
    });

    const plain = await TestClient.open(nginx.wsUrl);
    await plain.auth(await server.mint({ sub: "plain" }));
    await plain.close();
    assert.equal((await attemptOf(server, "plain")).ip, "127.0.0.1", "nginx's $remote_addr");

    const spoofing = await TestClient.open(nginx.wsUrl, {
      headers: { "X-Forwarded-For": "203.0.113.9" },
    });
    await spoofing.auth(await server.mint({ sub: "spoofer" }));
    await spoofing.close();
    // Lookout saw "203.0.113.9, 127.0.0.1" and took the nearest hop.
    assert.equal(
      (await attemptOf(server, "spoofer")).ip,
      "127.0.0.1",
      "not the spoofed 203.0.113.9",
    );

    // Without TRUST_PROXY every client is nginx itself.
    const behind = await TestClient.open(nginx2.wsUrl);
    await behind.auth(await untrusting.mint({ sub: "anyone" }));
    await behind.close();
    assert.equal((await attemptOf(untrusting, "anyone")).ip, "127.0.0.2");
  },
});

Deno.test({
  name: "nginx: behind a second proxy, the realip lines make the logged IP the client's",
  ignore,
  async fn() {
    // client (127.0.0.1) -> edge proxy -> (from 127.0.0.2) deploy/nginx.conf -> Lookout.
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    const upstreamPort = Number(server.url.port);
    const edge = (port: number, frontPort: number) => ({
      ports: [port],
      text: `server {
    listen 127.0.0.1:${port};
    location / {
        proxy_pass http://127.0.0.1:${frontPort};
        proxy_bind 127.0.0.2;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
}`,
    });
    const run = async (sub: string, edit?: (conf: string) => string, xff?: string) => {
      const edgePort = freePort();
      await using _nginx = await startNginx({
        upstreamPort,
        edit,
        extra: (frontPort) => edge(edgePort, frontPort),
      });
      const client = await TestClient.open(`ws://127.0.0.1:${edgePort}/admin/ws`, {
        headers: xff ? { "X-Forwarded-For": xff } : {},
      });
      await client.auth(await server.mint({ sub }));
      await client.close();
      return (await attemptOf(server, sub)).ip;
    };
    assert.equal(await run("as-shipped"), "127.0.0.2", "as shipped, every client is the edge");
    const realIp = (conf: string) => withRealIp(conf, "127.0.0.2");
    assert.equal(await run("realip", realIp), "127.0.0.1", "with realip, the client");
    assert.equal(await run("realip-spoof", realIp, "203.0.113.9"), "127.0.0.1", "not the spoof");
  },
});

Deno.test({
  name: "nginx: the default origin check allows the proxy's own origin and refuses others 403",
  ignore,
  async fn() {
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({ upstreamPort: Number(server.url.port) });

    const own = `http://127.0.0.1:${nginx.port}`;
    const client = await TestClient.open(nginx.wsUrl, { headers: { Origin: own } });
    await client.auth(await server.mint({ sub: "same-site" }));
    await client.close();
    assert.equal((await attemptOf(server, "same-site")).origin, own);

    const foreign = await rawUpgrade(nginx.wsUrl, { Origin: "https://evil.example" });
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /"reason":"bad_origin"/);

    // nginx sets X-Forwarded-Host and X-Forwarded-Proto itself, so a client
    // cannot make another origin look like Lookout's own with either.
    for (
      const [origin, forged] of [
        ["http://evil.example", { "X-Forwarded-Host": "evil.example" }],
        [`https://127.0.0.1:${nginx.port}`, { "X-Forwarded-Proto": "https" }],
      ] as const
    ) {
      const answer = await rawUpgrade(nginx.wsUrl, { Origin: origin, ...forged });
      assert.equal(answer.status, 403, `${origin} with ${JSON.stringify(forged)}`);
      assert.match(answer.body, /"reason":"bad_origin"/);
    }

    const [refused] = await server.attempts(1);
    assert.equal(refused.reason, "bad_origin");
    assert.equal(refused.ip, "127.0.0.1");
  },
});

Deno.test({
  name: "nginx with its TLS lines on: the https origin is allowed, cookies are Secure, HSTS is set",
  ignore: ignore || !OPENSSL,
  async fn() {
    const certDir = await Deno.makeTempDir({ prefix: "lookout_nginx_tls_" });
    try {
      await Deno.chmod(certDir, 0o755);
      const files = await makeCertificates(certDir);
      const password = randomPassword();
      await using server = await startTestServer({
        TRUST_PROXY: "true",
        ADMIN_USERNAME: "root",
        ADMIN_PASSWORD: password,
      });
      await using nginx = await startNginx({
        upstreamPort: Number(server.url.port),
        edit: (conf) => withTls(conf, files),
      });
      const origin = `https://127.0.0.1:${nginx.port}`;
      const wss = `wss://127.0.0.1:${nginx.port}/admin/ws`;
      const token = await server.mint({ sub: "over-tls" });

      // X-Forwarded-Proto https: Lookout's own origin is the https one...
      const report = await probe(wss, { token, origin, caCerts: [files.ca] });
      assert.equal(report.ok, true, JSON.stringify(report.steps, null, 1));
      assert.equal((await attemptOf(server, "over-tls")).origin, origin);
      // ...and the plain-http spelling of it is another origin.
      const http = await probe(wss, {
        token,
        origin: `http://127.0.0.1:${nginx.port}`,
        caCerts: [files.ca],
      });
      assert.equal(stepOf<UpgradeStep>(http, "upgrade").response?.status, 403);

      using client = Deno.createHttpClient({ caCerts: [files.ca] });
      const login = await fetch(`${origin}/auth/login`, {
        client,
        method: "POST",
        headers: { "Content-Type": "application/json", Origin: origin },
        body: JSON.stringify({ username: "root", password }),
      });
      assert.equal(login.status, 200);
      await login.body?.cancel();
      assert.match(login.headers.get("set-cookie") ?? "", /;\s*Secure/i);
      const page = await fetch(`${origin}/login`, { client });
      assert.equal(page.status, 200);
      await page.body?.cancel();
      assert.match(page.headers.get("strict-transport-security") ?? "", /max-age=/);
    } finally {
      await Deno.remove(certDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "probe() names the proxy when nginx.conf lacks the Upgrade/Connection lines (426, 1006)",
  ignore,
  async fn() {
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({
      upstreamPort: Number(server.url.port),
      edit: withoutUpgradeLines,
    });
    const token = await server.mint();

    // What a browser sees: the handshake fails, closed 1006, no status shown.
    assert.deepEqual(await abnormalEnd(nginx.wsUrl), { opened: false, abnormal: true });

    // What the doctor sees: Lookout's 426, and why.
    const report = await probe(nginx.wsUrl, { token });
    assert.equal(report.ok, false);
    const upgrade = stepOf<UpgradeStep>(report, "upgrade");
    assert.equal(upgrade.response?.status, 426);
    assert.equal(report.steps.at(-1)?.name, "upgrade");
    assert.match(upgrade.cause!, /the proxy \(nginx\) in between drops the Upgrade and Connection/);
    assert.match(upgrade.cause!, /proxy_set_header Upgrade \$http_upgrade/);

    // The CLI, as a user runs it (`deno task probe`'s permissions).
    const { code, stdout } = await runProbeCli([nginx.wsUrl, "--token", token]);
    assert.equal(code, 1, stdout);
    assert.match(stdout, /^✗ Upgrade +HTTP\/1\.1 426 /m);
    assert.match(stdout, /→ .*drops the Upgrade and Connection headers/);
    assert.match(stdout, /^✗ Failed at Upgrade\.$/m);
    assert.ok(!stdout.includes(token));
  },
});

Deno.test({
  name: "probe() says 1006 when nginx's proxy_read_timeout cuts an idle socket",
  ignore,
  async fn() {
    // Lookout closes unauthenticated sockets after 3 s, with a close frame.
    await using server = await startTestServer({ TRUST_PROXY: "true", AUTH_TIMEOUT_MS: "3000" });
    const upstreamPort = Number(server.url.port);
    await using shipped = await startNginx({ upstreamPort });
    await using short = await startNginx({
      upstreamPort,
      edit: (conf) => swap(conf, "proxy_read_timeout 75s;", "proxy_read_timeout 1s;"),
    });

    // A socket on which nothing moves: as shipped, Lookout's own 4408 comes
    // through; with 1 s, nginx cuts it first, and no close frame ever comes.
    // Meanwhile frames in either direction keep a socket alive past 1 s.
    const [kept, cut, idle, pinging, ponging] = await Promise.all([
      probe(shipped.wsUrl, { waitAuth: true, authWaitMs: 8000 }),
      probe(short.wsUrl, { waitAuth: true, authWaitMs: 8000 }),
      abnormalEnd(short.wsUrl),
      pingsAnswered(short.wsUrl, await server.mint()),
      pongsThenAuth(short.wsUrl, await server.mint({ sub: "ponger" })),
    ]);
    assert.equal(kept.ok, true, JSON.stringify(kept.steps, null, 1));
    assert.deepEqual(stepOf<AuthStep>(kept, "auth").close, { code: 4408, reason: "auth_timeout" });

    const auth = stepOf<AuthStep>(cut, "auth");
    assert.equal(cut.ok, false);
    assert.equal(auth.outcome, "dropped");
    assert.equal(auth.close, undefined);
    assert.ok(auth.elapsedMs >= 800 && auth.elapsedMs < 2800, String(auth.elapsedMs));
    assert.match(auth.summary, /without a close frame \(1006\)/);
    assert.match(auth.cause!, /cuts idle connections \(nginx proxy_read_timeout/);
    assert.deepEqual(idle, { opened: true, abnormal: true }, "a WebSocket client sees 1006");
    // nginx logs the cut at level info only: with the default level it is silent.
    assert.match(
      short.errors(),
      /\[info\].* upstream timed out .* while proxying upgraded connection/,
    );
    assert.equal(pinging, "open after 6 pongs");
    assert.equal(ponging, "authenticated after 2.4 s of client pongs");
  },
});

Deno.test({
  name:
    "cli probe names nginx's idle cut (proxy_read_timeout 2s) while holding an authenticated socket",
  ignore,
  async fn() {
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({
      upstreamPort: Number(server.url.port),
      edit: (conf) => swap(conf, "proxy_read_timeout 75s;", "proxy_read_timeout 2s;"),
    });
    const token = await server.mint();
    const { code, stdout } = await runProbeCli([nginx.wsUrl, "--token", token, "--hold", "5"]);
    assert.equal(code, 1, stdout);
    assert.match(stdout, /^✓ Auth /m);
    assert.match(stdout, /^✓ Stats /m);
    assert.match(stdout, /^✗ Hold +the connection dropped without a close frame \(1006\)/m);
    assert.match(
      stdout,
      /→ The connection was cut after 2 s of silence: a proxy idle timeout \(nginx proxy_read_timeout\)/,
    );
    // A 101 came through nginx: the Upgrade headers are not to blame.
    assert.doesNotMatch(stdout, /does not pass Upgrade and Connection/);
    assert.match(stdout, /^✗ Failed at Hold\.$/m);
    assert.doesNotMatch(stdout, /works end to end/);

    // --quick skips the hold: the cut goes unseen, as before.
    const quick = await runProbeCli([nginx.wsUrl, "--token", token, "--quick"]);
    assert.equal(quick.code, 0, quick.stdout);
    assert.doesNotMatch(quick.stdout, /Hold/);
  },
});

Deno.test({
  name:
    "nginx passing Host $host (no port): bad_origin says what was expected, the probe names $host",
  ignore,
  async fn() {
    await using server = await startTestServer({ TRUST_PROXY: "true" });
    await using nginx = await startNginx({
      upstreamPort: Number(server.url.port),
      // The classic break: $host drops the port the browser used.
      edit: (conf) => {
        const broken = conf.replaceAll("$http_host;", "$host;");
        assert.notEqual(broken, conf);
        return broken;
      },
    });
    const browser = `http://127.0.0.1:${nginx.port}`;
    const refused = await rawUpgrade(nginx.wsUrl, { Origin: browser });
    assert.equal(refused.status, 403);
    const body = JSON.parse(refused.body);
    assert.equal(body.reason, "bad_origin");
    assert.deepEqual(body.expected, ["http://127.0.0.1"]);
    assert.deepEqual(body.from, {
      Host: "127.0.0.1",
      "X-Forwarded-Host": "127.0.0.1",
      "X-Forwarded-Proto": "http",
    });
    // The record keeps its fixed shape: the refused origin, as sent.
    const [attempt] = await server.attempts(1);
    assert.equal(attempt.reason, "bad_origin");
    assert.equal(attempt.origin, browser);

    const token = await server.mint();
    const { code, stdout } = await runProbeCli([
      nginx.wsUrl,
      "--token",
      token,
      "--origin",
      browser,
      "--quick",
    ]);
    assert.equal(code, 1, stdout);
    assert.match(stdout, /^✗ Upgrade +HTTP\/1\.1 403 /m);
    assert.ok(
      stdout.includes(
        `→ The server refused Origin ${browser} (403 bad_origin) as it expected http://127.0.0.1, built from Host: 127.0.0.1, X-Forwarded-Host: 127.0.0.1, X-Forwarded-Proto: http: the proxy passes Host without the port (nginx proxy_set_header Host $host drops it)`,
      ),
      stdout,
    );
    assert.doesNotMatch(stdout, /add it to ALLOWED_ORIGINS/);

    // A browser's sign-in through the same proxy gets a page that says so, at /login.
    const login = await fetch(`${nginx.base}/login`, {
      method: "POST",
      headers: { Origin: browser },
      body: new URLSearchParams({ username: "alice", password: "whatever" }),
    });
    assert.equal(login.status, 403);
    assert.equal(new URL(login.url).pathname, "/login");
    const page = await login.text();
    assert.ok(
      page.includes(
        `origin ${browser} is not allowed: expected http://127.0.0.1 (from Host: 127.0.0.1, X-Forwarded-Host: 127.0.0.1, X-Forwarded-Proto: http)`,
      ),
      page,
    );
  },
});
