/**
 * The load generator: one process of real WebSocket clients against one
 * server, run by bench/run.ts (which starts the server) with its settings as
 * JSON in the `BENCH_LOADGEN` environment variable. It prints progress to
 * stderr and one JSON {@linkcode LoadResult} line to stdout.
 *
 * Phases, in order:
 * 1. warm-up: `warmup` connect+auth+close clients, not measured;
 * 2. ramp: the idle RSS is read, then `clients / 2` sockets connect and
 *    stay, in steps with an RSS reading after each; then the rest;
 * 3. fanout: `rounds` times, a trigger, then the time until every held
 *    socket has a `stats_update` that reflects it;
 * 4. revocation: `rounds` times, one more socket, its revocation, and the
 *    time until it is closed;
 * 5. churn, once every held socket is closed: `churn` clients connect,
 *    authenticate and close, `concurrency` at a time: the authenticated
 *    connect rate and its latency.
 */
import { SignJWT } from "jose";
import {
  addressOf,
  connect,
  type ConnectResult,
  type HeldSocket,
  HeldSockets,
  hmacKey,
  type PoolRun,
  runPool,
} from "./clients.ts";
import { cpuMs, machineBusyMs, settledRss } from "./proc.ts";
import type { Frame, Target } from "./protocols.ts";
import { median, sleep } from "./util.ts";

/** The settings of one load-generator run. */
export interface LoadConfig {
  target: Target;
  /** The server's HTTP base, `http://127.0.0.1:PORT`. */
  base: string;
  /** The server's process id, for its RSS and CPU time. */
  pid: number;
  secret: string;
  issuer: string;
  audience: string;
  /** Sockets held at the end of the ramp; RSS is also read at half. */
  clients: number;
  churn: number;
  warmup: number;
  concurrency: number;
  rounds: number;
  timeoutMs: number;
  /** Lookout only: the admin that logs in for the revocation rounds. */
  login?: { username: string; password: string };
}

/** Rate and latency of one phase of connects. */
export interface ConnectFigures {
  ok: number;
  failed: number;
  wallMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuMs: number;
  loadgenCpuMs: number;
  /** CPU time of every other process on the machine meanwhile: noise. */
  otherCpuMs: number;
  failures: Record<string, number>;
}

/** One fanout round: times from the trigger, in ms. */
export interface FanoutRound {
  toFirst: number;
  toLast: number;
  spread: number;
  reached: number;
  of: number;
  /** CPU time the server and the load generator spent from the trigger to the last socket. */
  serverCpuMs: number;
  loadgenCpuMs: number;
  /** `stats_update` frames the held sockets received meantime (one each is the minimum). */
  frames: number;
}

/** One revocation round: ms from the revoking request to the close. */
export interface RevocationRound {
  ms: number | null;
  /** ms until the revoking request was answered. */
  httpMs: number;
  how: string;
}

/** RSS of the server with this many authenticated sockets held. */
export interface RssSample {
  sockets: number;
  bytes: number;
}

/**
 * Bytes per socket: the median over the ramp's steps of each step's RSS
 * growth divided by the sockets it added. One major GC (a drop) or one heap
 * extension (a jump) moves one step, not the median.
 */
function stepMedian(samples: RssSample[]): number {
  const per: number[] = [];
  for (let i = 1; i < samples.length; i++) {
    const sockets = samples[i].sockets - samples[i - 1].sockets;
    if (sockets > 0) per.push((samples[i].bytes - samples[i - 1].bytes) / sockets);
  }
  return median(per);
}

/** What the load generator measured. */
export interface LoadResult {
  target: Target;
  churn: ConnectFigures;
  ramp: ConnectFigures;
  rss: {
    idle: number;
    half: RssSample;
    full: RssSample;
    /** Every reading of the ramp, idle first. */
    samples: RssSample[];
    /** Bytes per socket, the median of the ramp's steps. */
    perStep: number;
  };
  fanout: { rounds: FanoutRound[]; messageBytes: number };
  revocation: RevocationRound[];
  errors: string[];
}

type Held = HeldSocket;

interface Tracker {
  round: number;
  accepts: (text: string) => boolean;
  need: number;
  count: number;
  first: number;
  last: number;
  done: () => void;
}

const MALFORMED = /"malformed_token":(\d+)/;

/** `byReason.malformed_token` of a stats frame, read without parsing it. */
export function malformedIn(text: string): number {
  return Number(MALFORMED.exec(text)?.[1] ?? 0);
}

function log(config: LoadConfig, message: string): void {
  console.error(`[${config.target}] ${message}`);
}

/** The nearest-rank percentile `p` of ascending `sorted`; NaN for none. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length) - 1;
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))];
}

/** Mints `n` HS256 access tokens of CONTRACT 2 with `sub` among ten users. */
export async function mintTokens(
  config: Pick<LoadConfig, "secret" | "issuer" | "audience">,
  n: number,
): Promise<{ token: string; jti: string }[]> {
  const key = await hmacKey(config.secret);
  const iat = Math.floor(Date.now() / 1000);
  const out: { token: string; jti: string }[] = [];
  for (let i = 0; i < n; i++) {
    const jti = crypto.randomUUID();
    const token = await new SignJWT({ role: "admin" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(`bench-${i % 10}`)
      .setIssuer(config.issuer)
      .setAudience(config.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 3600)
      .setJti(jti)
      .sign(key);
    out.push({ token, jti });
  }
  return out;
}

/**
 * Runs one phase of connects and reads its figures: rate, latency, and the
 * CPU time of the server (`config.pid`), of this process and of the rest of
 * the machine meanwhile, from /proc.
 */
export async function figures(
  config: Pick<LoadConfig, "pid">,
  run: () => Promise<PoolRun>,
): Promise<ConnectFigures> {
  const [server0, self0, all0] = [
    await cpuMs(config.pid),
    await cpuMs(Deno.pid),
    await machineBusyMs(),
  ];
  const { results, wallMs } = await run();
  const [server1, self1, all1] = [
    await cpuMs(config.pid),
    await cpuMs(Deno.pid),
    await machineBusyMs(),
  ];
  const ok = results.filter((r) => r.ok).map((r) => r.ms).sort((a, b) => a - b);
  const failures: Record<string, number> = {};
  for (const r of results) if (!r.ok) failures[r.why] = (failures[r.why] ?? 0) + 1;
  return {
    ok: ok.length,
    failed: results.length - ok.length,
    wallMs,
    perSecond: ok.length / (wallMs / 1000),
    p50: percentile(ok, 50),
    p99: percentile(ok, 99),
    max: ok[ok.length - 1] ?? NaN,
    serverCpuMs: server1 - server0,
    loadgenCpuMs: self1 - self0,
    otherCpuMs: Math.max(0, all1 - all0 - (server1 - server0) - (self1 - self0)),
    failures,
  };
}

/** Sums phases run one after another; latency percentiles come from `latencies` when given. */
function merge(parts: ConnectFigures[], latencies: number[]): ConnectFigures {
  const sum = (pick: (f: ConnectFigures) => number) => parts.reduce((a, f) => a + pick(f), 0);
  const ok = sum((f) => f.ok);
  const wallMs = sum((f) => f.wallMs);
  const failures: Record<string, number> = {};
  for (const f of parts) {
    for (const [k, n] of Object.entries(f.failures)) failures[k] = (failures[k] ?? 0) + n;
  }
  const sorted = [...latencies].sort((x, y) => x - y);
  return {
    ok,
    failed: sum((f) => f.failed),
    wallMs,
    perSecond: ok / (wallMs / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? NaN,
    serverCpuMs: sum((f) => f.serverCpuMs),
    loadgenCpuMs: sum((f) => f.loadgenCpuMs),
    otherCpuMs: sum((f) => f.otherCpuMs),
    failures,
  };
}

function summary(f: ConnectFigures): string {
  return `${f.ok} ok, ${f.failed} failed, ${f.perSecond.toFixed(0)}/s, p50 ${
    f.p50.toFixed(1)
  } ms, p99 ${f.p99.toFixed(1)} ms, server CPU ${f.serverCpuMs.toFixed(0)} ms, other processes ${
    f.otherCpuMs.toFixed(0)
  } ms` +
    (f.failed ? ` ${JSON.stringify(f.failures)}` : "");
}

/** Runs every phase against one server. */
export async function runLoad(config: LoadConfig): Promise<LoadResult> {
  const { target, base } = config;
  const errors: string[] = [];
  const half = Math.floor(config.clients / 2);
  const tokens = await mintTokens(
    config,
    config.warmup + config.churn + config.clients + config.rounds,
  );
  let nextToken = 0;
  const take = () => tokens[nextToken++];

  let maxMalformed = 0;
  let messageBytes = 0;
  let statsFrames = 0;
  let tracker: Tracker | null = null;

  const onStats = (h: Held, frame: Extract<Frame, { kind: "stats" }>, at: number) => {
    messageBytes = frame.text.length;
    statsFrames++;
    const malformed = malformedIn(frame.text);
    if (malformed > maxMalformed) maxMalformed = malformed;
    const t = tracker;
    if (t === null || h.round >= t.round || !t.accepts(frame.text)) return;
    h.round = t.round;
    if (t.count++ === 0) t.first = at;
    t.last = at;
    if (t.count >= t.need) t.done();
  };
  const churnClient = (w: number, prefix: number) =>
    connect(target, base, take().token, {
      ip: addressOf(prefix, w),
      timeoutMs: config.timeoutMs,
      keep: false,
    });
  const sockets = new HeldSockets<Held>(onStats);
  const held = sockets.all;
  const holdClient = (w: number): Promise<ConnectResult> =>
    sockets.hold({ round: 0, open: true, ws: null }, target, base, take().token, {
      ip: addressOf(2, w),
      timeoutMs: config.timeoutMs,
    });
  /** Waits until held sockets have had no frame for `ms` (Lookout pushes stats after changes). */
  const quiet = (ms: number) => sockets.quiet(ms);

  // 1. Warm-up.
  if (config.warmup > 0) {
    const w = await runPool(config.warmup, config.concurrency, (_i, w) => churnClient(w, 0));
    const bad = w.results.filter((r) => !r.ok).length;
    log(config, `warm-up: ${config.warmup - bad} ok, ${bad} failed`);
  }

  // 2. Ramp, with RSS at half and at full. It comes before the churn so
  // that the idle RSS holds no garbage of 10k short connections, which the
  // server may collect during the ramp and so hide socket memory.
  await quiet(1500);
  await sleep(1000);
  const idle = await settledRss(config.pid);
  const latencies: number[] = [];
  const samples: RssSample[] = [{ sockets: 0, bytes: idle }];
  const parts: ConnectFigures[] = [];
  const openCount = () => held.filter((h) => h.open).length;
  /** Ramps to `goal` held sockets in `steps` steps, reading RSS after each. */
  const rampTo = async (goal: number, steps: number): Promise<RssSample> => {
    const from = held.length;
    for (let step = 1; step <= steps; step++) {
      const n = from + Math.round((goal - from) * step / steps) - held.length;
      parts.push(
        await figures(config, async () => {
          const run = await runPool(n, config.concurrency, (_i, w) => holdClient(w));
          for (const r of run.results) if (r.ok) latencies.push(r.ms);
          return run;
        }),
      );
      await quiet(1000);
      if (step < steps) {
        samples.push({ sockets: openCount(), bytes: await settledRss(config.pid, 3, 100) });
      }
    }
    await quiet(1500);
    await sleep(500);
    const point = { sockets: openCount(), bytes: await settledRss(config.pid) };
    samples.push(point);
    return point;
  };
  const steps = Math.max(1, Math.min(5, Math.floor(half / 100)));
  const halfPoint = await rampTo(half, steps);
  log(config, `ramp to ${halfPoint.sockets}: ${summary(merge(parts, latencies))}`);
  const fullPoint = await rampTo(config.clients, steps);
  const rampFigures = merge(parts, latencies);
  log(config, `ramp to ${fullPoint.sockets}: ${summary(rampFigures)}`);

  // 3. Fanout.
  const rounds: FanoutRound[] = [];
  for (let r = 1; r <= config.rounds; r++) {
    await quiet(1200);
    const need = held.filter((h) => h.open).length;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => done = resolve);
    const baseline = maxMalformed;
    const t: Tracker = {
      round: r,
      // Lookout pushes stats on every change: only an update that counts the
      // trigger's failure is the one being waited for.
      accepts: target === "lookout" ? (text) => malformedIn(text) > baseline : () => true,
      need,
      count: 0,
      first: NaN,
      last: NaN,
      done,
    };
    tracker = t;
    const [server0, self0] = [await cpuMs(config.pid), await cpuMs(Deno.pid)];
    const frames0 = statsFrames;
    const t0 = performance.now();
    if (target === "lookout") {
      // One failed attempt (a malformed Bearer token, refused 401 before
      // any upgrade) changes the deployment's stats.
      const ws = new WebSocket(`${base.replace(/^http/, "ws")}/admin/ws`, {
        headers: { authorization: "Bearer malformed", "x-forwarded-for": addressOf(200, r) },
      });
      ws.onerror = () => {};
    } else {
      // No body: the raw server would send a body as it is, not its stats.
      const res = await fetch(`${base}/broadcast`, { method: "POST" });
      await res.body?.cancel();
    }
    const timer = setTimeout(done, 20_000);
    await finished;
    clearTimeout(timer);
    const [server1, self1] = [await cpuMs(config.pid), await cpuMs(Deno.pid)];
    tracker = null;
    const round: FanoutRound = {
      toFirst: t.first - t0,
      toLast: t.last - t0,
      spread: t.last - t.first,
      reached: t.count,
      of: need,
      serverCpuMs: server1 - server0,
      loadgenCpuMs: self1 - self0,
      frames: statsFrames - frames0,
    };
    if (round.reached < round.of) {
      errors.push(`fanout round ${r}: ${round.reached} of ${round.of} sockets got the update`);
    }
    rounds.push(round);
    log(
      config,
      `fanout ${r}: ${round.reached}/${round.of}, first ${round.toFirst.toFixed(1)} ms, all ${
        round.toLast.toFixed(1)
      } ms, spread ${
        round.spread.toFixed(1)
      } ms, CPU server ${round.serverCpuMs} ms, load generator ${round.loadgenCpuMs} ms, ${round.frames} frames`,
    );
  }

  // 4. Revocation, with every held socket still open.
  const revocation: RevocationRound[] = [];
  for (let r = 1; r <= config.rounds; r++) {
    try {
      const round = await revokeOnce(config, r, target === "lookout" ? null : take());
      revocation.push(round);
      log(config, `revocation ${r}: ${round.ms?.toFixed(1)} ms (${round.how})`);
    } catch (error) {
      errors.push(`revocation round ${r}: ${(error as Error).message}`);
    }
  }

  // 5. Churn, once the held sockets are closed and the server is quiet again.
  for (const h of held) if (h.open) h.ws?.close();
  const closing = performance.now() + 20_000;
  while (openCount() > 0 && performance.now() < closing) await sleep(100);
  await sleep(2000);
  const churn = await figures(
    config,
    () => runPool(config.churn, config.concurrency, (_i, w) => churnClient(w, 1)),
  );
  log(config, `churn: ${summary(churn)}`);

  return {
    target,
    churn,
    ramp: rampFigures,
    rss: { idle, half: halfPoint, full: fullPoint, samples, perStep: stepMedian(samples) },
    fanout: { rounds, messageBytes },
    revocation,
    errors,
  };
}

/**
 * Opens one more socket and revokes it: for Lookout, a real login and a
 * logout with its session cookie (the socket must close 4403); for the
 * others, `POST /revoke` with the token's `jti`. The socket connects to
 * `socketBase`, by default the server that revokes it (bench/two_load.ts
 * gives another process on the same KV file).
 */
export async function revokeOnce(
  config: Pick<LoadConfig, "base" | "target" | "timeoutMs" | "login">,
  r: number,
  minted: { token: string; jti: string } | null,
  socketBase: string = config.base,
): Promise<RevocationRound> {
  const { base, target } = config;
  const ip = addressOf(201, r);
  let token: string;
  let cookie = "";
  if (minted) token = minted.token;
  else {
    const res = await fetch(`${base}/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": ip },
      body: JSON.stringify(config.login),
    });
    if (!res.ok) throw new Error(`login answered ${res.status}: ${await res.text()}`);
    token = (await res.json()).token;
    cookie = res.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
  }
  let closed!: (how: string, at: number) => void;
  const ended = new Promise<{ how: string; at: number }>((resolve) =>
    closed = (how, at) => resolve({ how, at })
  );
  const result = await connect(target, socketBase, token, {
    ip,
    timeoutMs: config.timeoutMs,
    keep: true,
    onFrame: (frame, at) => {
      if (frame.kind === "disconnected") closed("socket.io disconnect packet", at);
    },
    onClose: (code, at) => closed(`close ${code}`, at),
  });
  if (!result.ok) throw new Error(`the socket to revoke did not authenticate: ${result.why}`);
  await sleep(200);
  const t0 = performance.now();
  const answered =
    (minted
      ? fetch(`${base}/revoke`, { method: "POST", body: JSON.stringify({ jti: minted.jti }) })
      : fetch(`${base}/auth/logout`, {
        method: "POST",
        headers: { cookie, "x-forwarded-for": ip },
      }))
      .then(async (res) => {
        await res.body?.cancel();
        if (!res.ok) throw new Error(`the revoking request answered ${res.status}`);
        return performance.now() - t0;
      });
  const timeout = sleep(10_000).then(() => ({ how: "no close within 10 s", at: NaN }));
  const end = await Promise.race([ended, timeout]);
  const httpMs = await answered;
  if (result.ws.readyState === WebSocket.OPEN) result.ws.close();
  if (target !== "socketio" && end.how !== "close 4403") {
    throw new Error(`expected close 4403, got ${end.how}`);
  }
  return { ms: end.at - t0, httpMs, how: end.how };
}

if (import.meta.main) {
  const config: LoadConfig = JSON.parse(Deno.env.get("BENCH_LOADGEN") ?? "null");
  if (!config) {
    console.error("Cannot run the load generator: BENCH_LOADGEN is unset (bench/run.ts sets it)");
    Deno.exit(2);
  }
  let result: LoadResult;
  try {
    result = await runLoad(config);
  } catch (error) {
    console.error(`[${config.target}] ${(error as Error).message}`);
    Deno.exit(1);
  }
  console.log(JSON.stringify(result));
  // Held sockets are not closed one by one: the process exit drops them all.
  Deno.exit(0);
}
