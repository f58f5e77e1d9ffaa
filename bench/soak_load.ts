/**
 * The soak's load generator: one process of real WebSocket clients that
 * holds `sockets` authenticated sockets on Lookout for `holdMs` while it
 * replaces `churnPerS` of them a second, and reads the server's RSS. Run by
 * bench/soak.ts (which starts the server) with its settings as JSON in the
 * `SOAK_LOAD` environment variable.
 *
 * Every auth message it sends is an attempt with an identity of its own, so
 * that bench/soak.ts can find each one among the stored records: the `jti`
 * of a token the server can read, or, for a token with a bad signature
 * (whose claims the server never reads), a client address used once. The
 * ledger of attempts is written to `ledgerPath`.
 *
 * It speaks to bench/soak.ts in JSON lines on stdout: `stopped` once the
 * load has stopped and every attempt in flight is settled; then, after a
 * line on stdin (the server has been stopped), `done` with the close codes
 * the held sockets saw. Progress goes to stderr.
 */
import { SignJWT } from "jose";
import { addressOf, connect, type ConnectResult, hmacKey, runPool } from "./clients.ts";
import { cpuMs, machineBusyMs, rssParts, settled, settledRss } from "./proc.ts";
import { sleep } from "./util.ts";

/** The settings of one soak load. */
export interface SoakLoadConfig {
  base: string;
  pid: number;
  secret: string;
  issuer: string;
  audience: string;
  sockets: number;
  holdMs: number;
  warmupMs: number;
  churnPerS: number;
  /** Share of churn cycles that also make a failing attempt. */
  failFraction: number;
  /** Connects in flight at once during the ramp. */
  concurrency: number;
  timeoutMs: number;
  sampleMs: number;
  /** Prefix of every `jti` this run mints. */
  runId: string;
  ledgerPath: string;
}

/** The kinds of attempt: a good token, an expired one, one signed with another key. */
export type Kind = "good" | "expired" | "badsig";

/** One attempt: its identity (`jti:…` or `ip:…`), kind and what came of it. */
export type LedgerEntry = [key: string, kind: Kind, status: string];

/** One RSS reading of the server, `t` seconds after the hold began. */
export interface RssSample {
  t: number;
  held: number;
  /** VmRSS. */
  bytes: number;
  /** Its anonymous (heaps), file-backed (code, mapped files) and shared parts. */
  anon: number;
  file: number;
  shmem: number;
}

/** What the load saw, printed as the `stopped` line. */
export interface SoakLoadResult {
  ramp: { ok: number; failed: number; wallMs: number; held: number };
  rss: {
    idle: number;
    afterRamp: RssSample;
    /** Settled readings (median of five) when the warm-up ends and when the hold ends. */
    warm: RssSample;
    end: RssSample;
    /** Every reading of the hold, in time order: the periodic ones, `warm` and `end`. */
    samples: RssSample[];
  };
  /** Auth messages sent, and answered (`authenticated` or `auth_failed`). */
  made: number;
  answered: number;
  /** Auth messages still unanswered when the load stopped (before the final wait). */
  inFlightAtStop: number;
  /** Connects that never sent an auth message, by why. */
  notSent: Record<string, number>;
  /** Sent but unanswered, by why. */
  unanswered: Record<string, number>;
  /** Answers by kind and outcome (`good success`, `expired auth_failed token_expired`, ...). */
  answers: Record<string, number>;
  /** Answers that were not the one the token called for. */
  wrongAnswers: number;
  cycles: number;
  /** Held sockets the server closed during the hold, by close code. */
  heldClosedByServer: Record<string, number>;
  heldAtStop: number;
  cpu: { serverPct: number; loadPct: number; otherPct: number };
  /** When the hold began (epoch ms), and how long it took. */
  holdStartedAt: number;
  wallMs: number;
}

/** The `done` line: how the held sockets ended when the server stopped. */
export interface SoakShutdown {
  closes: Record<string, number>;
  stillOpen: number;
}

interface HeldSocket {
  ws: WebSocket;
  index: number;
  closing: boolean;
}

/** Address prefixes (`10.P.x.y`): each pool of clients has its own. */
const RAMP_IP = 2;
const CHURN_IP = 3;
const EXPIRED_IP = 4;
/** Bad-signature attempts: one address each, from this prefix on. */
const BADSIG_IP = 5;

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** The address of bad-signature attempt `n`: never reused within 16M attempts. */
export function badsigAddress(n: number): string {
  return `10.${BADSIG_IP + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`;
}

/** True for the addresses {@linkcode badsigAddress} hands out. */
export function isBadsigAddress(ip: string): boolean {
  const second = Number(ip.split(".")[1]);
  return ip.startsWith("10.") && second >= BADSIG_IP && second < BADSIG_IP + 256;
}

/** Held sockets in an array, so a random one is picked and removed in O(1). */
class HeldSockets {
  #items: HeldSocket[] = [];

  get size(): number {
    return this.#items.length;
  }

  add(h: HeldSocket): void {
    h.index = this.#items.length;
    this.#items.push(h);
  }

  remove(h: HeldSocket): void {
    if (h.index < 0) return;
    const last = this.#items.pop()!;
    if (last !== h) {
      this.#items[h.index] = last;
      last.index = h.index;
    }
    h.index = -1;
  }

  random(): HeldSocket | undefined {
    return this.#items[Math.floor(Math.random() * this.#items.length)];
  }
}

/** Runs the soak load; resolves once the server has been stopped and the closes are counted. */
export async function runSoakLoad(
  config: SoakLoadConfig,
  waitForServerStop: () => Promise<void>,
): Promise<void> {
  const key = await hmacKey(config.secret);
  const wrongKey = crypto.getRandomValues(new Uint8Array(32));
  const ttlS = Math.max(3600, Math.ceil(config.holdMs / 1000) + 600);
  let serial = 0;
  let badsigSerial = 0;
  let churnSerial = 0;

  const ledger = new Map<string, { kind: Kind; status: string }>();
  const held = new HeldSockets();
  const notSent: Record<string, number> = {};
  const unanswered: Record<string, number> = {};
  const answers: Record<string, number> = {};
  const heldClosedByServer: Record<string, number> = {};
  const shutdownCloses: Record<string, number> = {};
  let made = 0;
  let answered = 0;
  let wrongAnswers = 0;
  let inFlight = 0;
  let pendingGood = 0;
  let stopping = false;

  const mint = (kind: Kind, jti: string): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const iat = kind === "expired" ? now - 7200 : now;
    return new SignJWT({ role: "admin" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(`soak-${serial % 10}`)
      .setIssuer(config.issuer)
      .setAudience(config.audience)
      .setIssuedAt(iat)
      .setExpirationTime(kind === "expired" ? now - 3600 : now + ttlS)
      .setJti(jti)
      .sign(kind === "badsig" ? wrongKey : key);
  };

  /** One attempt; a good one stays held once authenticated. */
  const attempt = async (kind: Kind, ip: string): Promise<ConnectResult> => {
    const jti = `${config.runId}-${serial++}`;
    const id = kind === "badsig" ? `ip:${ip}` : `jti:${jti}`;
    const token = await mint(kind, jti);
    let sent = false;
    let h: HeldSocket | null = null;
    inFlight++;
    const result = await connect("lookout", config.base, token, {
      ip,
      timeoutMs: config.timeoutMs,
      keep: kind === "good",
      onOpen: () => {
        sent = true;
        made++;
        ledger.set(id, { kind, status: "sent" });
      },
      onClose: (code) => {
        if (h === null) return;
        held.remove(h);
        if (stopping) bump(shutdownCloses, String(code));
        else if (!h.closing) bump(heldClosedByServer, String(code));
      },
    });
    inFlight--;
    const refusedBy = !result.ok && result.why.startsWith("auth_failed ") ? result.why : null;
    if (result.ok || refusedBy) {
      answered++;
      const outcome = result.ok ? "success" : refusedBy!;
      ledger.set(id, { kind, status: outcome });
      bump(answers, `${kind} ${outcome}`);
      const expected = kind === "good"
        ? "success"
        : kind === "expired"
        ? "auth_failed token_expired"
        : "auth_failed invalid_signature";
      if (outcome !== expected) wrongAnswers++;
    } else if (sent) bump(unanswered, result.why);
    else bump(notSent, result.why);
    if (result.ok) {
      h = { ws: result.ws, index: -1, closing: false };
      if (result.ws.readyState === WebSocket.OPEN) held.add(h);
    }
    return result;
  };
  const good = (ip: string) => {
    pendingGood++;
    return attempt("good", ip).finally(() => pendingGood--);
  };

  const log = (message: string) => console.error(`[soak] ${message}`);
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

  // Ramp: hold `sockets`, `concurrency` connects at a time, one address per worker.
  const idle = await settledRss(config.pid);
  const rampRun = await runPool(
    config.sockets,
    config.concurrency,
    (_i, w) => good(addressOf(RAMP_IP, w)),
  );
  const rampOk = rampRun.results.filter((r) => r.ok).length;
  log(
    `ramp: ${rampOk} of ${config.sockets} held in ${(rampRun.wallMs / 1000).toFixed(1)} s, ${
      rampRun.results.length - rampOk
    } failed`,
  );

  // Hold with churn, reading RSS every `sampleMs`.
  const t0 = performance.now();
  const holdStartedAt = Date.now();
  const seconds = () => (performance.now() - t0) / 1000;
  const reading = async (steady: boolean): Promise<RssSample> => {
    const t = Math.round(seconds() * 10) / 10;
    const parts = steady
      ? await settled(() => rssParts(config.pid), (p) => p.rss)
      : await rssParts(config.pid);
    const { rss: bytes, anon, file, shmem } = parts;
    return { t, held: held.size, bytes, anon, file, shmem };
  };
  const afterRamp = await reading(true);
  log(`after the ramp: ${afterRamp.held} held, RSS ${mib(afterRamp.bytes)}`);
  const cpu0 = [await cpuMs(config.pid), await cpuMs(Deno.pid), await machineBusyMs()];
  const samples: RssSample[] = [afterRamp];
  let cycles = 0;
  let failing = 0;
  const maxPendingGood = Math.max(64, config.churnPerS * 2);
  const tick = () => {
    const s = seconds();
    // Churn: disconnect random held sockets; the top-up below replaces them.
    for (; cycles < Math.floor(config.churnPerS * s); cycles++) {
      const h = held.random();
      if (!h) break;
      h.closing = true;
      held.remove(h);
      h.ws.close();
    }
    for (; failing < Math.floor(config.churnPerS * config.failFraction * s); failing++) {
      if (failing % 2 === 0) attempt("expired", addressOf(EXPIRED_IP, failing % 1024));
      else attempt("badsig", badsigAddress(badsigSerial++));
    }
    const deficit = config.sockets - held.size - pendingGood;
    const launch = Math.min(deficit, maxPendingGood - pendingGood);
    for (let i = 0; i < launch; i++) good(addressOf(CHURN_IP, churnSerial++ % 1024));
  };
  const ticker = setInterval(tick, 100);
  const sampler = setInterval(async () => {
    const sample = await reading(false).catch(() => null);
    if (sample === null) return;
    samples.push(sample);
    log(
      `${sample.t.toFixed(0)} s: ${sample.held} held, RSS ${mib(sample.bytes)} (anon ${
        mib(sample.anon)
      }, file ${mib(sample.file)}), ${made} sent, ${answered} answered, ${inFlight} in flight`,
    );
  }, config.sampleMs);
  let warm: RssSample;
  let end: RssSample;
  try {
    await sleep(config.warmupMs);
    warm = await reading(true);
    samples.push(warm);
    log(`warm-up over: ${warm.held} held, RSS ${mib(warm.bytes)}`);
    await sleep(Math.max(0, config.holdMs - (performance.now() - t0)));
    end = await reading(true);
    log(`hold over: ${end.held} held, RSS ${mib(end.bytes)}`);
  } finally {
    clearInterval(ticker);
    clearInterval(sampler);
  }
  samples.push(end);
  samples.sort((a, b) => a.t - b.t);
  const cpu1 = [await cpuMs(config.pid), await cpuMs(Deno.pid), await machineBusyMs()];
  const wallMs = performance.now() - t0;

  // Stop: no new attempts; those in flight get until their own timeout.
  const inFlightAtStop = inFlight;
  const settleBy = performance.now() + config.timeoutMs + 2000;
  while (inFlight > 0 && performance.now() < settleBy) await sleep(50);
  const heldAtStop = held.size;
  await Deno.writeTextFile(
    config.ledgerPath,
    JSON.stringify(
      [...ledger].map(([id, e]): LedgerEntry => [id, e.kind, e.status]),
    ),
  );
  const pct = (i: number) => 100 * (cpu1[i] - cpu0[i]) / wallMs;
  const result: SoakLoadResult = {
    ramp: {
      ok: rampOk,
      failed: rampRun.results.length - rampOk,
      wallMs: rampRun.wallMs,
      held: afterRamp.held,
    },
    rss: { idle, afterRamp, warm, end, samples },
    made,
    answered,
    inFlightAtStop,
    notSent,
    unanswered,
    answers,
    wrongAnswers,
    cycles,
    heldClosedByServer,
    heldAtStop,
    cpu: {
      serverPct: pct(0),
      loadPct: pct(1),
      otherPct: Math.max(0, pct(2) - pct(0) - pct(1)),
    },
    holdStartedAt,
    wallMs,
  };
  stopping = true;
  console.log(JSON.stringify({ event: "stopped", result }));

  // The held sockets stay open while the server stops: its drain closes them.
  await waitForServerStop();
  const closeBy = performance.now() + 3000;
  while (held.size > 0 && performance.now() < closeBy) await sleep(50);
  const shutdown: SoakShutdown = { closes: shutdownCloses, stillOpen: held.size };
  console.log(JSON.stringify({ event: "done", shutdown }));
}

/** Resolves at the first line on stdin, or when stdin closes. */
async function firstLine(): Promise<void> {
  const reader = Deno.stdin.readable.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done || value.includes(10)) return;
    }
  } finally {
    reader.releaseLock();
  }
}

if (import.meta.main) {
  const config: SoakLoadConfig = JSON.parse(Deno.env.get("SOAK_LOAD") ?? "null");
  if (!config) {
    console.error("Cannot run the soak load: SOAK_LOAD is unset (bench/soak.ts sets it)");
    Deno.exit(2);
  }
  try {
    await runSoakLoad(config, firstLine);
  } catch (error) {
    console.error(`[soak] ${(error as Error).stack ?? error}`);
    Deno.exit(1);
  }
  // Sockets still open are dropped with the process.
  Deno.exit(0);
}
