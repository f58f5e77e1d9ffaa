/**
 * Dashboard sockets for the ingest benchmark (issue 14, part 3), in a
 * process of their own so that receiving updates costs the senders nothing:
 * opens `count` authenticated sockets to Lookout, subscribes each to
 * `metrics`, prints `{"ready":n}` and then counts every `metrics_update`
 * until stdin closes, when it prints one JSON line of figures and exits.
 *
 *   BENCH_WATCHERS='{"base","secret","issuer","audience","count","concurrency"}' \
 *     deno run -A bench/metrics_watchers.ts
 */
import { SignJWT } from "jose";
import { addressOf, connect, runPool } from "./clients.ts";
import { median } from "./util.ts";

/** What the process is told, as JSON in BENCH_WATCHERS. */
export interface WatchersConfig {
  base: string;
  secret: string;
  issuer: string;
  audience: string;
  count: number;
  concurrency: number;
}

/** What it prints at the end. */
export interface WatchersResult {
  held: number;
  failed: number;
  /** Distinct updates (by their `at`) and frames received over all sockets. */
  updates: number;
  frames: number;
  /** Median and largest time from an update's first socket to its last one (ms), of updates every socket got. */
  spreadMedianMs: number;
  spreadMaxMs: number;
  /** Updates that reached every held socket. */
  complete: number;
}

const PREFIX = '{"type":"metrics_update","data":{"at":';

async function main(): Promise<void> {
  const raw = Deno.env.get("BENCH_WATCHERS");
  if (!raw) throw new Error("Cannot start the watchers as BENCH_WATCHERS is unset");
  const config: WatchersConfig = JSON.parse(raw);
  const key = new TextEncoder().encode(config.secret);
  const iat = Math.floor(Date.now() / 1000);
  /** Per update (its `at`): sockets reached, first and last arrival. */
  const seen = new Map<string, { n: number; first: number; last: number }>();
  let frames = 0;
  const onMessage = (event: MessageEvent) => {
    const data = event.data;
    if (typeof data !== "string" || !data.startsWith(PREFIX)) return;
    const now = performance.now();
    frames++;
    const at = data.slice(PREFIX.length, data.indexOf(",", PREFIX.length));
    const entry = seen.get(at);
    if (entry) {
      entry.n++;
      entry.last = now;
    } else seen.set(at, { n: 1, first: now, last: now });
  };
  const pool = await runPool(config.count, config.concurrency, async (i, w) => {
    const token = await new SignJWT({ role: "viewer" })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(`watcher-${i % 50}`).setIssuer(config.issuer).setAudience(config.audience)
      .setIssuedAt(iat).setExpirationTime(iat + 3600).setJti(crypto.randomUUID())
      .sign(key);
    const result = await connect("lookout", config.base, token, {
      ip: addressOf(150 + (w >> 8), w & 255),
      timeoutMs: 10_000,
      keep: true,
    });
    if (result.ok) {
      result.ws.addEventListener("message", onMessage);
      result.ws.send(JSON.stringify({ type: "subscribe", events: ["metrics"] }));
    }
    return result;
  });
  const held = pool.results.filter((r) => r.ok).length;
  console.log(JSON.stringify({ ready: held }));
  // Runs until the benchmark closes our stdin.
  for await (const _ of Deno.stdin.readable) { /* nothing is sent */ }
  const complete = [...seen.values()].filter((e) => e.n >= held);
  const spreads = complete.map((e) => e.last - e.first);
  const result: WatchersResult = {
    held,
    failed: pool.results.length - held,
    updates: seen.size,
    frames,
    spreadMedianMs: spreads.length ? median(spreads) : NaN,
    spreadMaxMs: spreads.length ? Math.max(...spreads) : NaN,
    complete: complete.length,
  };
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

if (import.meta.main) await main();
