/**
 * Authenticated connects per second against a real Lookout process.
 *
 *   deno run -A bench/connect_rate.ts [--clients 2000] [--concurrency 64] [--warmup 100]
 *
 * Starts `main.ts` as a subprocess on a free port with a throwaway KV and a
 * random secret, mints tokens in this process with the same key, then runs
 * `--clients` real WebSocket clients, `--concurrency` at a time. Each one
 * connects, sends `{"type":"auth","token":...}`, waits for `authenticated`
 * and closes. Prints connects per second and connect+auth latency, then
 * stops the server.
 *
 * Lookout caps unauthenticated sockets per client IP (16), so a load
 * generator on one address would measure the abuse limit, not the server.
 * The server runs with TRUST_PROXY=true and each worker sends its own
 * `X-Forwarded-For` address, as clients behind a proxy would arrive.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { signAccessToken, type TokenKey, tokenKey } from "../lib/tokens.ts";

const USAGE =
  "usage: deno run -A bench/connect_rate.ts [--clients N] [--concurrency C] [--warmup W] [--timeout-ms T]";
const ISSUER = "lookout";
const AUDIENCE = "lookout";
const REPO_ROOT = fileURLToPath(new URL("../", import.meta.url));

/** Options of one run. */
interface BenchOptions {
  clients: number;
  concurrency: number;
  warmup: number;
  timeoutMs: number;
}

/** What one client saw. */
type ClientResult = { ok: true; ms: number } | { ok: false; why: string };

function fail(message: string): never {
  console.error(message);
  console.error(USAGE);
  Deno.exit(2);
}

function positiveInt(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    fail(
      `Cannot run the benchmark as --${name} must be an integer of at least ${min}: current value is ${
        JSON.stringify(value)
      }`,
    );
  }
  return n;
}

function readOptions(args: string[]): BenchOptions {
  let values;
  try {
    values = parseArgs({
      args,
      options: {
        clients: { type: "string", default: "2000" },
        concurrency: { type: "string", default: "64" },
        warmup: { type: "string", default: "100" },
        "timeout-ms": { type: "string", default: "10000" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    fail(`Cannot run the benchmark: ${(error as Error).message}`);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  return {
    clients: positiveInt("clients", values.clients, 1),
    concurrency: positiveInt("concurrency", values.concurrency, 1),
    warmup: positiveInt("warmup", values.warmup, 0),
    timeoutMs: positiveInt("timeout-ms", values["timeout-ms"], 100),
  };
}

/** A free TCP port: bind port 0, note what the OS picked, let it go. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

function randomSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/[+/=]/g, "");
}

/** Keeps the last `max` characters of a stream, so a failed start can be shown. */
function tail(stream: ReadableStream<Uint8Array>, max = 4000): () => string {
  let text = "";
  (async () => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text = (text + chunk).slice(-max);
    }
  })().catch(() => {});
  return () => text;
}

/** A Lookout subprocess and how to stop it. */
interface ServerProcess {
  base: string;
  output: () => string;
  stop(): Promise<void>;
}

async function startServer(port: number, secret: string): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts"],
    cwd: REPO_ROOT,
    env: {
      PORT: String(port),
      HOSTNAME: "127.0.0.1",
      KV_PATH: ":memory:",
      JWT_SECRET: secret,
      JWT_ISSUER: ISSUER,
      JWT_AUDIENCE: AUDIENCE,
      TRUST_PROXY: "true",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = tail(child.stdout);
  const stderr = tail(child.stderr);
  const output = () => `${stdout()}${stderr()}`.trim();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (!exited) child.kill("SIGKILL");
    }, 5000);
    await status;
    clearTimeout(timer);
  };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while (true) {
    if (exited) {
      throw new Error(`Cannot start Lookout: it exited with ${(await status).code}\n${output()}`);
    }
    try {
      const res = await fetch(`${base}/healthz`);
      await res.body?.cancel();
      if (res.ok) return { base, output, stop };
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Cannot start Lookout: /healthz did not answer in 30 s\n${output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One client: connect, authenticate, close. The latency ends at `authenticated`. */
function connectOnce(
  url: string,
  token: string,
  options: { ip: string; timeoutMs: number },
): Promise<ClientResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    let result: ClientResult | null = null;
    const ws = new WebSocket(url, { headers: { "x-forwarded-for": options.ip } });
    const finish = (r: ClientResult) => {
      result ??= r;
      clearTimeout(timer);
      if (ws.readyState <= WebSocket.OPEN) ws.close();
    };
    const timer = setTimeout(() => {
      finish({ ok: false, why: "timeout" });
      resolve(result!);
    }, options.timeoutMs);
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "authenticated") finish({ ok: true, ms: performance.now() - started });
      else if (msg.type === "auth_failed") finish({ ok: false, why: `auth_failed ${msg.reason}` });
    };
    // A refused handshake (a 429, say) shows here: the status is not exposed.
    ws.onerror = () => finish({ ok: false, why: "socket error or refused upgrade" });
    // Waiting for the close keeps at most `concurrency` sockets open.
    ws.onclose = (event) => {
      clearTimeout(timer);
      resolve(result ?? { ok: false, why: `closed ${event.code} ${event.reason}` });
    };
  });
}

/** Runs `tokens.length` clients, `concurrency` at a time. */
async function runClients(
  url: string,
  tokens: string[],
  options: BenchOptions,
): Promise<{ results: ClientResult[]; wallMs: number }> {
  const results: ClientResult[] = new Array(tokens.length);
  let next = 0;
  const started = performance.now();
  const worker = async (w: number) => {
    // One address per worker: at most one unauthenticated socket per IP.
    const ip = `10.${(w >> 16) & 255}.${(w >> 8) & 255}.${w & 255}`;
    while (next < tokens.length) {
      const i = next++;
      results[i] = await connectOnce(url, tokens[i], { ip, timeoutMs: options.timeoutMs });
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(options.concurrency, tokens.length) }, (_, w) => worker(w)),
  );
  return { results, wallMs: performance.now() - started };
}

async function mintTokens(key: TokenKey, n: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) {
    const { token } = await signAccessToken(key, {
      sub: `bench-${i % 100}`,
      role: "admin",
      ttlS: 600,
    });
    tokens.push(token);
  }
  return tokens;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

async function machine(): Promise<string> {
  let cpu = "unknown CPU";
  try {
    const info = await Deno.readTextFile("/proc/cpuinfo");
    cpu = /^model name\s*:\s*(.+)$/m.exec(info)?.[1].trim() ?? cpu;
  } catch {
    // Not Linux, or not readable.
  }
  return `${navigator.hardwareConcurrency} cores, ${cpu}, ${Deno.build.os}/${Deno.build.arch}, deno ${Deno.version.deno}`;
}

function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  const v = Math.max(...rows.map(([, val]) => val.length));
  const line = (a: string, b: string) => `| ${a.padEnd(w)} | ${b.padStart(v)} |`;
  return [
    line("metric", "value"),
    `| ${"-".repeat(w)} | ${"-".repeat(v - 1)}: |`,
    ...rows.map(([k, val]) => line(k, val)),
  ].join("\n");
}

async function main(): Promise<number> {
  const options = readOptions(Deno.args);
  const secret = randomSecret();
  const key = tokenKey(secret, ISSUER, AUDIENCE);
  const server = await startServer(freePort(), secret);
  const stopOnSignal = () => server.stop().finally(() => Deno.exit(130));
  Deno.addSignalListener("SIGINT", stopOnSignal);
  try {
    const url = `${server.base.replace(/^http/, "ws")}/admin/ws`;
    const warmupTokens = await mintTokens(key, options.warmup);
    const tokens = await mintTokens(key, options.clients);
    if (options.warmup > 0) await runClients(url, warmupTokens, options);
    const { results, wallMs } = await runClients(url, tokens, options);

    const ok = results.filter((r) => r.ok).map((r) => r.ms).sort((a, b) => a - b);
    const failures = new Map<string, number>();
    for (const r of results) if (!r.ok) failures.set(r.why, (failures.get(r.why) ?? 0) + 1);

    // The server's own count: every success should be a durable attempt record.
    const admin = (await signAccessToken(key, { sub: "bench", role: "admin", ttlS: 60 })).token;
    const stats = await (await fetch(`${server.base}/api/v1/stats`, {
      headers: { authorization: `Bearer ${admin}` },
    })).json();

    const ms = (n: number) => `${n.toFixed(1)} ms`;
    console.log(`Lookout connect+auth: ${await machine()}`);
    console.log(
      `clients ${options.clients}, concurrency ${options.concurrency}, warmup ${options.warmup}\n`,
    );
    console.log(table([
      ["authenticated", `${ok.length} / ${options.clients}`],
      ["failed", String(options.clients - ok.length)],
      ["wall time", `${(wallMs / 1000).toFixed(2)} s`],
      ["authenticated connects/s", (ok.length / (wallMs / 1000)).toFixed(0)],
      ["connect+auth p50", ms(percentile(ok, 50))],
      ["connect+auth p99", ms(percentile(ok, 99))],
      ["connect+auth max", ms(ok[ok.length - 1] ?? NaN)],
      ["success records on server", String(stats?.attempts?.success ?? "?")],
    ]));
    for (const [why, n] of failures) console.log(`failure: ${why} x${n}`);
    return ok.length === options.clients ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", stopOnSignal);
    await server.stop();
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
