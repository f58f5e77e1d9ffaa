/**
 * Test helpers: a real Lookout server on a free port, real WebSocket clients,
 * raw HTTP upgrades (to read refused handshakes exactly) and token forging.
 */
import { SignJWT } from "jose";
import { loadConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { type ServerMessage } from "../shared/protocol.ts";
import { signAccessToken } from "../lib/auth/tokens.ts";
import { type Lookout, startLookout } from "../server.ts";
import type { Limits } from "../lib/realtime/limits.ts";
import { listAttempts } from "../lib/attempts/query.ts";
import type { Attempt } from "../shared/protocol.ts";
import type { AttemptInput } from "../lib/attempts/log.ts";
import { encodeRequest, readResponse } from "../probe/http_wire.ts";
import { FrameSocket, websocketKey, Wire } from "../probe/ws_wire.ts";

/** A random secret for one test server; never a literal in the source. */
export function randomSecret(): string {
  return crypto.randomUUID() + crypto.randomUUID();
}

/** A running test server with what tests need to reach into it. */
export interface TestServer extends Lookout {
  /** `ws://host:port/admin/ws` */
  wsUrl: string;
  /** Every log line written, as text. */
  logs: string[];
  secret: string;
  /** Mints a token signed with the server's key. */
  mint(options?: { sub?: string; role?: string; ttlS?: number; sid?: string }): Promise<string>;
  /** The newest attempts, straight from KV. */
  attempts(limit?: number): Promise<Attempt[]>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts Lookout on 127.0.0.1 and a free port; `env` overrides the config. */
export async function startTestServer(
  env: Record<string, string> = {},
  options: { kv?: Deno.Kv; limits?: Partial<Limits> } = {},
): Promise<TestServer> {
  const secret = env.JWT_SECRET ?? randomSecret();
  const config = loadConfig({
    PORT: "0",
    HOSTNAME: "127.0.0.1",
    KV_PATH: ":memory:",
    JWT_SECRET: secret,
    ...env,
  });
  const logs: string[] = [];
  const lookout = await startLookout(config, {
    kv: options.kv,
    limits: options.limits,
    logger: createLogger({ level: "debug", write: (line) => logs.push(line) }),
  });
  const server: TestServer = {
    ...lookout,
    wsUrl: `ws://127.0.0.1:${lookout.url.port}/admin/ws`,
    logs,
    secret,
    mint: async (o = {}) =>
      (await signAccessToken(lookout.deps.tokenKey, {
        sub: o.sub ?? "alice",
        role: o.role ?? "admin",
        ttlS: o.ttlS ?? 600,
        sid: o.sid,
      })).token,
    attempts: async (limit = 50) => (await listAttempts(lookout.deps.kv, { limit })).items,
    [Symbol.asyncDispose]: () => lookout.close(),
  };
  return server;
}

/**
 * Deno's WebSocket takes handshake headers; the DOM typings that Preact pulls
 * in declare only the browser's constructor, so the Deno one is named here.
 */
const DenoWebSocket = WebSocket as unknown as new (
  url: string,
  options?: { headers?: HeadersInit },
) => WebSocket;

/** A WebSocket client that queues what it receives, for step-by-step tests. */
export class TestClient {
  readonly ws: WebSocket;
  readonly received: ServerMessage[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: (() => void)[] = [];
  #read = 0;

  constructor(url: string, options: { headers?: HeadersInit } = {}) {
    this.ws = new DenoWebSocket(url, { headers: options.headers });
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("WebSocket error")), {
        once: true,
      });
    });
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (e) => {
        resolve({ code: e.code, reason: e.reason });
        this.#wake();
      });
    });
    this.ws.addEventListener("message", (e) => {
      this.received.push(JSON.parse(e.data));
      this.#wake();
    });
  }

  /** Opens a client and waits for the socket to open. */
  static async open(url: string, options: { headers?: HeadersInit } = {}): Promise<TestClient> {
    const client = new TestClient(url, options);
    await client.opened;
    return client;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /**
   * The next message not yet read (optionally of `type`, skipping others).
   * Fails after `timeoutMs` or when the socket closes first.
   */
  async next<T extends ServerMessage["type"]>(
    type?: T,
    timeoutMs = 5000,
  ): Promise<Extract<ServerMessage, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      while (this.#read < this.received.length) {
        const msg = this.received[this.#read++];
        if (type === undefined || msg.type === type) {
          return msg as Extract<ServerMessage, { type: T }>;
        }
      }
      if (this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`socket closed while waiting for ${type ?? "a message"}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${type ?? "a message"}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Authenticates with `token` and returns the `authenticated` message. */
  async auth(token: string) {
    this.send({ type: "auth", token });
    return await this.next("authenticated");
  }

  /** Closes (if open) and waits for the close to finish. */
  async close(): Promise<void> {
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    await this.closed;
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** The status, headers and body of a raw HTTP/1.1 request. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * Sends a WebSocket upgrade request over a plain TCP socket and reads the
 * answer with the probe's own wire code, so a refused handshake shows its
 * exact status and body. `upgrade: false` sends only `headers`.
 */
export async function rawUpgrade(
  url: string,
  headers: Record<string, string> = {},
  options: { upgrade?: boolean; timeoutMs?: number } = {},
): Promise<RawResponse> {
  const u = new URL(url);
  const all: Record<string, string> = options.upgrade === false ? { ...headers } : {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": websocketKey(),
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  // Without a Connection header of its own, the server is asked to hang up after its answer.
  if (all.Connection === undefined) all.Connection = "close";
  const wire = new Wire(await Deno.connect({ hostname: u.hostname, port: Number(u.port) }));
  try {
    await wire.write(encodeRequest(u, Object.entries(all)));
    const answer = await readResponse(wire, Date.now() + (options.timeoutMs ?? 10_000));
    if ("kind" in answer) {
      throw new Error(`Cannot read the answer of ${url}: ${JSON.stringify(answer)}`);
    }
    return { status: answer.status, headers: answer.headers, body: answer.body };
  } finally {
    await wire.close();
  }
}

/** A raw upgrade kept open: its status, and its frames when it got a 101. */
export interface HeldUpgrade {
  status: number;
  /** The socket's frames over the same TCP connection (after a 101). */
  frames: FrameSocket;
  /** Drops the TCP connection. */
  close(): Promise<void>;
}

/**
 * Sends a WebSocket upgrade over a plain TCP socket, reads the status line
 * and headers, and keeps the connection open (unlike {@linkcode rawUpgrade}),
 * so a test can hold many upgraded sockets at once or write frames by hand.
 */
export async function holdUpgrade(
  url: string,
  headers: Record<string, string> = {},
): Promise<HeldUpgrade> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  const wire = new Wire(conn);
  const all: Record<string, string> = {
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": websocketKey(),
    "Sec-WebSocket-Version": "13",
    ...headers,
  };
  await wire.write(encodeRequest(u, Object.entries(all)));
  const res = await readResponse(wire, Date.now() + 10_000);
  if (!("status" in res)) {
    await wire.close();
    throw new Error(`no HTTP answer from ${url}: ${res.kind}`);
  }
  return { status: res.status, frames: new FrameSocket(wire), close: () => wire.close() };
}

const enc = new TextEncoder();

function b64url(value: string | Uint8Array): string {
  const bytes = typeof value === "string" ? enc.encode(value) : value;
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Standard claims for a forged token, with `overrides` applied (undefined deletes). */
export function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  const base: Record<string, unknown> = {
    sub: "mallory",
    role: "admin",
    iss: "lookout",
    aud: "lookout",
    iat: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
    ...overrides,
  };
  for (const [k, v] of Object.entries(base)) if (v === undefined) delete base[k];
  return base;
}

/** Signs `payload` with HS256 (or `alg`) and the given secret, exactly as given. */
export async function forge(
  payload: Record<string, unknown>,
  secret: string,
  alg = "HS256",
): Promise<string> {
  return await new SignJWT(payload).setProtectedHeader({ alg, typ: "JWT" })
    .sign(enc.encode(secret));
}

/** An unsecured token: `alg: none` and an empty signature. */
export function unsecured(payload: Record<string, unknown>): string {
  return `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${
    b64url(JSON.stringify(payload))
  }.`;
}

/** An attempt to record: a failed one from a documentation address, with `overrides`. */
export function attemptInput(overrides: Partial<AttemptInput> = {}): AttemptInput {
  return {
    ip: "198.51.100.1",
    user: null,
    outcome: "failure",
    reason: "malformed_token",
    transport: "message",
    origin: null,
    userAgent: null,
    tokenId: null,
    durationMs: 1,
    ...overrides,
  };
}

/** Authenticates over a real socket with a token that fails; returns the reason. */
export async function failAuth(
  server: { wsUrl: string },
  token = "not-a-jwt",
): Promise<string> {
  const client = await TestClient.open(server.wsUrl);
  try {
    client.send({ type: "auth", token });
    return (await client.next("auth_failed")).reason;
  } finally {
    await client.close();
  }
}

/** Waits until `check` returns a truthy value, polling; fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => T | Promise<T>,
  timeoutMs = 5000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Logs in over HTTP with JSON; returns the answer, the token and the cookie pair. */
export async function login(
  baseUrl: URL | string,
  username: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<{ res: Response; body: Record<string, unknown>; token: string; cookie: string }> {
  const res = await fetch(new URL("/auth/login", baseUrl), {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify({ username, password }),
  });
  const body = await res.json();
  const setCookie = res.headers.get("set-cookie") ?? "";
  return { res, body, token: String(body.token ?? ""), cookie: setCookie.split(";")[0] };
}

/** A password for a test user, generated (never a literal in the source). */
export function randomPassword(): string {
  return "pw-" + crypto.randomUUID();
}

/** What {@linkcode interceptKv} puts in front of a store. */
export interface KvHooks {
  /**
   * Every method call but `atomic` and `close`: `name` and `args` as called,
   * and `real` to make the call on the real store.
   */
  call?(name: string, args: unknown[], real: () => unknown): unknown;
  /** Every atomic operation's commit, with `real` to commit it to the real store. */
  commit?(real: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>): Promise<
    Deno.KvCommitResult | Deno.KvCommitError
  >;
}

/**
 * A real KV with `hooks` in front of its calls and its atomic commits;
 * `close` and anything that is not a method go straight to the store.
 */
export function interceptKv(kv: Deno.Kv, hooks: KvHooks): Deno.Kv {
  return new Proxy(kv, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const commit = op.commit.bind(op);
          // Every step of an atomic chain returns the same op, so its commit is this one.
          if (hooks.commit) op.commit = () => hooks.commit!(commit);
          return op;
        };
      }
      if (prop === "close" || !hooks.call) return value.bind(target);
      return (...args: unknown[]) =>
        hooks.call!(String(prop), args, () => value.apply(target, args));
    },
  });
}

/**
 * A real KV with a switch in front: while `down` is true every call fails
 * the way a lost store does (Deno's own BadResource), and when it is false
 * again the same store answers. For testing that Lookout fails closed and
 * recovers.
 */
export function switchableKv(kv: Deno.Kv): { kv: Deno.Kv; down: boolean } {
  const state = { kv: kv, down: false };
  const lost = () => new Deno.errors.BadResource("KV is down (test switch)");
  state.kv = interceptKv(kv, {
    call(name, _args, real) {
      if (!state.down) return real();
      // list and watch hand back an iterator or a stream at once, so they throw.
      if (name === "list" || name === "watch") throw lost();
      return Promise.reject(lost());
    },
    commit: (real) => state.down ? Promise.reject(lost()) : real(),
  });
  return state;
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Lookout as its own process (`main.ts`), as it runs in production. */
export interface LookoutProcess {
  child: Deno.ChildProcess;
  url: URL;
  wsUrl: string;
  /** Everything the process wrote, stdout and stderr. */
  output(): string;
  /** Resolves with the exit status once the process ends. */
  status: Promise<Deno.CommandStatus>;
}

/** Starts `main.ts` with `env` on a free port and waits until /healthz answers. */
export async function startProcess(env: Record<string, string>): Promise<LookoutProcess> {
  const port = env.PORT ?? String(freePort());
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    env: { HOSTNAME: "127.0.0.1", ...env, PORT: port },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const status = child.status.then(async (s) => {
    await drained;
    return s;
  });
  const url = new URL(`http://127.0.0.1:${port}`);
  const deadline = Date.now() + 20_000;
  while (true) {
    const ok = await fetch(new URL("/healthz", url)).then(async (r) => {
      await r.body?.cancel();
      return r.ok;
    }, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await status;
      throw new Error(`main.ts did not come up on ${url}: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, url, wsUrl: `ws://127.0.0.1:${port}/admin/ws`, output: () => text, status };
}

/** Runs cli/probe.ts with `args` as `deno task probe` does; returns the exit code and the output. */
export async function runProbeCli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    // The permissions of the `probe` task, so the task line is what is tested.
    args: [
      "run",
      "--allow-net",
      "--allow-env=LOOKOUT_PASSWORD,JWT_SECRET,KV_PATH",
      "--allow-read",
      "--allow-write",
      "cli/probe.ts",
      ...args,
    ],
    cwd: new URL("..", import.meta.url),
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Whether the `openssl` command is there (the TLS tests need it). */
export async function hasOpenssl(): Promise<boolean> {
  try {
    return (await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/**
 * A throwaway CA and a certificate for 127.0.0.1 it signed, made with
 * openssl in `dir`: the PEM texts, and the paths of the leaf's files.
 */
export async function makeCertificates(dir: string): Promise<{
  ca: string;
  cert: string;
  key: string;
  certFile: string;
  keyFile: string;
}> {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  for (const name of ["ca.key", "leaf.key"]) {
    await run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name);
  }
  await run(
    "req",
    "-x509",
    "-new",
    "-key",
    "ca.key",
    "-subj",
    "/CN=Lookout test CA",
    "-days",
    "1",
    "-out",
    "ca.pem",
  );
  await run("req", "-new", "-key", "leaf.key", "-subj", "/CN=127.0.0.1", "-out", "leaf.csr");
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  await run(
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "leaf.ext",
    "-out",
    "leaf.pem",
  );
  const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
  return {
    ca: await read("ca.pem"),
    cert: await read("leaf.pem"),
    key: await read("leaf.key"),
    certFile: `${dir}/leaf.pem`,
    keyFile: `${dir}/leaf.key`,
  };
}

/** A KV file in a fresh temp folder; `close` closes it and removes the folder. */
export async function tempFileKv(prefix = "lookout_kv_"): Promise<{
  kv: Deno.Kv;
  path: string;
  close(): Promise<void>;
}> {
  const dir = await Deno.makeTempDir({ prefix });
  const path = `${dir}/kv.sqlite3`;
  const kv = await Deno.openKv(path);
  return {
    kv,
    path,
    close: async () => {
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}
