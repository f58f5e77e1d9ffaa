/**
 * The load generator of bench/two_processes.ts: real WebSocket clients
 * against two Lookout processes A and B that share one KV file, in a process
 * of its own so that the runner's CPU is not in it. Its settings come as
 * JSON in the `BENCH_TWO` environment variable; it prints progress to stderr
 * and one JSON {@linkcode PairResult} line to stdout.
 *
 * Mode `pair`, in order:
 * 1. warm-up: a few connect+auth+close clients on each process, not measured;
 * 2. ramp: `clients / 2` sockets held on A and as many on B, authenticated
 *    (and so subscribed to `stats`, as bench/loadgen.ts's held sockets are);
 * 3. fanout: `rounds` times, one failed upgrade on A, then the time until
 *    every held socket on A, and every one on B, has a `stats_update` that
 *    counts it;
 * 4. revocation: `revokes` times, a login on one process, a fresh socket on
 *    the other with that token, a logout on the first, and the time until
 *    the socket is closed 4403 (odd rounds A to B, even rounds B to A);
 * 5. churn, once every held socket is closed: `churn` connect+auth+close
 *    clients spread over both processes (alternating), then as many on A
 *    alone while B still runs.
 *
 * Mode `alone` (the runner has stopped B): the same churn on A only.
 */
import {
  addressOf,
  connect,
  type ConnectResult,
  type HeldSocket,
  HeldSockets,
  runPool,
} from "./clients.ts";
import { malformedIn, mintTokens, percentile, revokeOnce } from "./loadgen.ts";
import { cpuMs, machineBusyMs } from "./proc.ts";
import { sleep } from "./util.ts";

/** One Lookout process: its HTTP base and process id. */
export interface Instance {
  base: string;
  pid: number;
}

/** The settings of one load-generator run. */
export interface PairConfig {
  mode: "pair" | "alone";
  a: Instance;
  /** Null in mode `alone`: B has been stopped. */
  b: Instance | null;
  secret: string;
  issuer: string;
  audience: string;
  /** Sockets held, half on each process. */
  clients: number;
  churn: number;
  warmup: number;
  concurrency: number;
  rounds: number;
  revokes: number;
  timeoutMs: number;
  /** The admin who logs in for the revocation rounds. */
  login: { username: string; password: string };
}

/** Rate, latency and CPU of one churn. */
export interface ChurnFigures {
  ok: number;
  failed: number;
  wallMs: number;
  perSecond: number;
  p50: number;
  p99: number;
  /** CPU time of every Lookout process running meanwhile, summed, in ms. */
  serverCpuMs: number;
  /** The same, process by process (A first). */
  serverCpuMsEach: number[];
  loadgenCpuMs: number;
  /** CPU time of every other process on the machine meanwhile: noise. */
  otherCpuMs: number;
  failures: Record<string, number>;
}

/** Trigger to first and to last socket of one process in one fanout round, in ms. */
export interface FanoutSide {
  toFirst: number;
  toLast: number;
  reached: number;
  of: number;
}

/** One fanout round: the trigger on A, the sockets of A and of B. */
export interface PairFanoutRound {
  a: FanoutSide;
  b: FanoutSide;
}

/** One revocation round: login and logout on `from`, the socket on `to`. */
export interface PairRevocation {
  from: "A" | "B";
  to: "A" | "B";
  /** ms from the logout request to the socket's close; null when it did not close 4403 in 10 s. */
  ms: number | null;
  /** ms until the logout was answered; null when the round failed. */
  httpMs: number | null;
  how: string;
}

/** What the load generator measured. */
export interface PairResult {
  mode: "pair" | "alone";
  ramp: { heldA: number; heldB: number; wallMs: number; failures: Record<string, number> };
  fanout: PairFanoutRound[];
  revocations: PairRevocation[];
  churn: { pair: ChurnFigures | null; aWithB: ChurnFigures | null; alone: ChurnFigures | null };
  errors: string[];
}

interface Held extends HeldSocket {
  side: 0 | 1;
}

interface Tracker {
  round: number;
  baseline: number;
  sides: { need: number; count: number; first: number; last: number }[];
  done: () => void;
}

function log(message: string): void {
  console.error(`[two] ${message}`);
}

function failureCounts(results: ConnectResult[]): Record<string, number> {
  const failures: Record<string, number> = {};
  for (const r of results) if (!r.ok) failures[r.why] = (failures[r.why] ?? 0) + 1;
  return failures;
}

/** Runs `run` and reads the CPU time of `pids`, of this process and of the machine around it. */
async function churnFigures(
  pids: number[],
  run: () => Promise<{ results: ConnectResult[]; wallMs: number }>,
): Promise<ChurnFigures> {
  const read = async () => ({
    servers: await Promise.all(pids.map(cpuMs)),
    self: await cpuMs(Deno.pid),
    all: await machineBusyMs(),
  });
  const before = await read();
  const { results, wallMs } = await run();
  const after = await read();
  const each = after.servers.map((ms, i) => ms - before.servers[i]);
  const serverCpuMs = each.reduce((a, b) => a + b, 0);
  const self = after.self - before.self;
  const ok = results.flatMap((r) => r.ok ? [r.ms] : []).sort((a, b) => a - b);
  return {
    ok: ok.length,
    failed: results.length - ok.length,
    wallMs,
    perSecond: ok.length / (wallMs / 1000),
    p50: percentile(ok, 50),
    p99: percentile(ok, 99),
    serverCpuMs,
    serverCpuMsEach: each,
    loadgenCpuMs: self,
    otherCpuMs: Math.max(0, after.all - before.all - serverCpuMs - self),
    failures: failureCounts(results),
  };
}

function summary(name: string, f: ChurnFigures): string {
  return `${name}: ${f.ok} ok, ${f.failed} failed, ${f.perSecond.toFixed(0)}/s, p50 ${
    f.p50.toFixed(1)
  } ms, p99 ${f.p99.toFixed(1)} ms, server CPU ${f.serverCpuMsEach.join(" + ")} ms, ` +
    `other processes ${f.otherCpuMs.toFixed(0)} ms` +
    (f.failed ? ` ${JSON.stringify(f.failures)}` : "");
}

/** Runs every phase of `config.mode`. */
export async function runPair(config: PairConfig): Promise<PairResult> {
  const errors: string[] = [];
  const { a, b } = config;
  const pair = config.mode === "pair";
  if (pair && b === null) throw new Error("Cannot run the pair: B's address is missing");
  const instances = pair ? [a, b!] : [a];
  const pids = instances.map((i) => i.pid);
  const tokens = await mintTokens(
    config,
    pair ? config.warmup + config.clients + 2 * config.churn : config.churn,
  );
  let nextToken = 0;
  const take = () => tokens[nextToken++].token;
  const churnClient = (base: string, w: number) =>
    connect("lookout", base, take(), {
      ip: addressOf(1, w),
      timeoutMs: config.timeoutMs,
      keep: false,
    });
  const result: PairResult = {
    mode: config.mode,
    ramp: { heldA: 0, heldB: 0, wallMs: 0, failures: {} },
    fanout: [],
    revocations: [],
    churn: { pair: null, aWithB: null, alone: null },
    errors,
  };

  if (!pair) {
    result.churn.alone = await churnFigures(
      pids,
      () => runPool(config.churn, config.concurrency, (_i, w) => churnClient(a.base, w)),
    );
    log(summary("churn on A alone (B stopped)", result.churn.alone));
    return result;
  }

  // 1. Warm-up, on both.
  if (config.warmup > 0) {
    const w = await runPool(
      config.warmup,
      config.concurrency,
      (i, w) => churnClient(instances[i % 2].base, w),
    );
    const bad = w.results.filter((r) => !r.ok).length;
    log(`warm-up: ${config.warmup - bad} ok, ${bad} failed`);
  }

  // 2. Ramp: half the sockets on A, half on B, at once.
  let maxMalformed = 0;
  let tracker: Tracker | null = null;
  const onStats = (h: Held, text: string, at: number) => {
    const malformed = malformedIn(text);
    if (malformed > maxMalformed) maxMalformed = malformed;
    const t = tracker;
    // Lookout pushes stats on every change: only an update that counts the
    // trigger's failure is the one being waited for.
    if (t === null || h.round >= t.round || malformed <= t.baseline) return;
    h.round = t.round;
    const side = t.sides[h.side];
    if (side.count++ === 0) side.first = at;
    side.last = at;
    if (t.sides.every((s) => s.count >= s.need)) t.done();
  };
  const sockets = new HeldSockets<Held>((h, frame, at) => onStats(h, frame.text, at));
  const held = sockets.all;
  const holdClient = (side: 0 | 1, w: number): Promise<ConnectResult> =>
    sockets.hold(
      { side, round: 0, open: true, ws: null },
      "lookout",
      instances[side].base,
      take(),
      {
        // A's and B's workers use addresses of their own: the per-IP limits
        // of each process see as many clients as the single-process run does.
        ip: addressOf(2 + side, w),
        timeoutMs: config.timeoutMs,
      },
    );
  /** Waits until held sockets have had no frame for `ms`. */
  const quiet = (ms: number) => sockets.quiet(ms);
  const openOn = (side: 0 | 1) => held.filter((h) => h.open && h.side === side).length;
  const half = Math.floor(config.clients / 2);
  const rampStart = performance.now();
  const ramps = await Promise.all(
    ([0, 1] as const).map((side) =>
      runPool(
        side === 0 ? half : config.clients - half,
        Math.max(1, Math.floor(config.concurrency / 2)),
        (_i, w) => holdClient(side, w),
      )
    ),
  );
  result.ramp = {
    heldA: openOn(0),
    heldB: openOn(1),
    wallMs: performance.now() - rampStart,
    failures: failureCounts(ramps.flatMap((r) => r.results)),
  };
  log(
    `ramp: ${result.ramp.heldA} held on A, ${result.ramp.heldB} on B in ${
      (result.ramp.wallMs / 1000).toFixed(1)
    } s ${JSON.stringify(result.ramp.failures)}`,
  );

  // 3. Fanout: the trigger on A, the time to the last socket on A and on B.
  for (let r = 1; r <= config.rounds; r++) {
    await quiet(1200);
    let done!: () => void;
    const finished = new Promise<void>((resolve) => done = resolve);
    const t: Tracker = {
      round: r,
      baseline: maxMalformed,
      sides: [openOn(0), openOn(1)].map((need) => ({ need, count: 0, first: NaN, last: NaN })),
      done,
    };
    tracker = t;
    const t0 = performance.now();
    // One failed attempt (a malformed Bearer token, refused 401 before any
    // upgrade) on A changes the deployment's stats, which both push.
    const ws = new WebSocket(`${a.base.replace(/^http/, "ws")}/admin/ws`, {
      headers: { authorization: "Bearer malformed", "x-forwarded-for": addressOf(200, r) },
    });
    ws.onerror = () => {};
    const timer = setTimeout(done, 20_000);
    await finished;
    clearTimeout(timer);
    tracker = null;
    const [sa, sb] = t.sides.map((s): FanoutSide => ({
      toFirst: s.first - t0,
      toLast: s.last - t0,
      reached: s.count,
      of: s.need,
    }));
    result.fanout.push({ a: sa, b: sb });
    for (const [name, s] of [["A", sa], ["B", sb]] as const) {
      if (s.reached < s.of) {
        errors.push(`fanout round ${r}: ${s.reached} of ${s.of} sockets on ${name} got the update`);
      }
    }
    log(
      `fanout ${r}: A ${sa.reached}/${sa.of} first ${sa.toFirst.toFixed(1)} ms, last ${
        sa.toLast.toFixed(1)
      } ms; B ${sb.reached}/${sb.of} first ${sb.toFirst.toFixed(1)} ms, last ${
        sb.toLast.toFixed(1)
      } ms`,
    );
  }

  // 4. Revocation across the processes, with every held socket still open.
  for (let r = 1; r <= config.revokes; r++) {
    const [from, to] = r % 2 === 1
      ? [{ name: "A" as const, base: a.base }, { name: "B" as const, base: b!.base }]
      : [{ name: "B" as const, base: b!.base }, { name: "A" as const, base: a.base }];
    const round = await revokeAcross(config, r, from, to);
    result.revocations.push(round);
    if (round.ms === null) {
      errors.push(`revocation round ${r} (${from.name} to ${to.name}): ${round.how}`);
    }
    if (r % 20 === 0 || r === config.revokes) {
      log(`revocation ${r}/${config.revokes}: last ${round.ms?.toFixed(1)} ms (${round.how})`);
    }
  }

  // 5. Churn, once the held sockets are closed and the processes are quiet again.
  for (const h of held) if (h.open) h.ws?.close();
  const closing = performance.now() + 20_000;
  while (held.some((h) => h.open) && performance.now() < closing) await sleep(100);
  await sleep(2000);
  result.churn.pair = await churnFigures(
    pids,
    () =>
      runPool(
        config.churn,
        config.concurrency,
        (i, w) => churnClient(instances[i % 2].base, w),
      ),
  );
  log(summary("churn on A and B", result.churn.pair));
  await sleep(2000);
  result.churn.aWithB = await churnFigures(
    pids,
    () => runPool(config.churn, config.concurrency, (_i, w) => churnClient(a.base, w)),
  );
  log(summary("churn on A, B running", result.churn.aWithB));
  return result;
}

/**
 * One round of bench/loadgen.ts's revocation across the processes: a real
 * login on `from`, a fresh socket on `to` with its token, the logout on
 * `from` with the session cookie, and the time until the socket is closed
 * 4403. A round that fails in any way has no time and says why.
 */
async function revokeAcross(
  config: PairConfig,
  r: number,
  from: { name: "A" | "B"; base: string },
  to: { name: "A" | "B"; base: string },
): Promise<PairRevocation> {
  const names = { from: from.name, to: to.name };
  try {
    const round = await revokeOnce(
      { target: "lookout", base: from.base, timeoutMs: config.timeoutMs, login: config.login },
      r,
      null,
      to.base,
    );
    return { ...names, ...round };
  } catch (error) {
    return { ...names, ms: null, httpMs: null, how: (error as Error).message };
  }
}

if (import.meta.main) {
  const config: PairConfig = JSON.parse(Deno.env.get("BENCH_TWO") ?? "null");
  if (!config) {
    console.error(
      "Cannot run the load generator: BENCH_TWO is unset (bench/two_processes.ts sets it)",
    );
    Deno.exit(2);
  }
  let result: PairResult;
  try {
    result = await runPair(config);
  } catch (error) {
    console.error(`[two] ${(error as Error).message}`);
    Deno.exit(1);
  }
  console.log(JSON.stringify(result));
  // Held sockets are not closed one by one: the process exit drops them all.
  Deno.exit(0);
}
