/**
 * Dashboard sockets for the ingest benchmark (issue 14, part 3), in a
 * process of their own so that receiving updates costs the senders nothing:
 * opens `count` authenticated sockets to Lookout, subscribes each to
 * `metrics`, prints `{"ready":n}` and then counts every `metrics_update`
 * (frames and characters) until stdin closes, when it prints one JSON line
 * of figures and exits. The lines `start` and `stop` on stdin mark the
 * benchmark's timed phase: the updates, frames and characters received in
 * it are counted apart, so the rate and size of what the server sent in that
 * phase can be read, and sent again by a reference (metrics_ingest.ts's
 * `--fanout-reference`).
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
  /** Held sockets the server closed while watching, by close code (4429 is a slow consumer). */
  closedBy: Record<string, number>;
  /** Characters of every `metrics_update` frame (bytes, for the ASCII JSON the servers send). */
  chars: number;
  /** What arrived between the lines `start` and `stop`; null without both. */
  timed: TimedFigures | null;
  /** The last `metrics_update` of the timed phase, as received: the shape a reference copies. */
  sample: string | null;
}

/** What the watchers received in the timed phase. */
export interface TimedFigures {
  seconds: number;
  /** Distinct updates whose first frame arrived in the phase. */
  updates: number;
  /** Frames and their characters that arrived in the phase. */
  frames: number;
  chars: number;
  /** `chars / frames`: the mean size of one update. */
  meanFrameChars: number;
  /** `updates / seconds`: how often the server sent one. */
  updatesPerS: number;
}

/** How every `metrics_update` starts; a frame that does not is not counted. */
export const PREFIX = '{"type":"metrics_update","data":{"at":';

async function main(): Promise<void> {
  const raw = Deno.env.get("BENCH_WATCHERS");
  if (!raw) throw new Error("Cannot start the watchers as BENCH_WATCHERS is unset");
  const config: WatchersConfig = JSON.parse(raw);
  const key = new TextEncoder().encode(config.secret);
  const iat = Math.floor(Date.now() / 1000);
  /** Per update (its `at`): sockets reached, first and last arrival. */
  const seen = new Map<string, { n: number; first: number; last: number }>();
  let frames = 0;
  let chars = 0;
  /** The timed phase: open between `start` and `stop`. */
  const timed = { open: false, from: NaN, to: NaN, updates: 0, frames: 0, chars: 0 };
  let sample: string | null = null;
  const onMessage = (event: MessageEvent) => {
    const data = event.data;
    if (typeof data !== "string" || !data.startsWith(PREFIX)) return;
    const now = performance.now();
    frames++;
    chars += data.length;
    const at = data.slice(PREFIX.length, data.indexOf(",", PREFIX.length));
    const entry = seen.get(at);
    if (entry) {
      entry.n++;
      entry.last = now;
    } else {
      seen.set(at, { n: 1, first: now, last: now });
      if (timed.open) timed.updates++;
    }
    if (timed.open) {
      timed.frames++;
      timed.chars += data.length;
      sample = data;
    }
  };
  const closedBy: Record<string, number> = {};
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
      onClose: (code) => closedBy[code] = (closedBy[code] ?? 0) + 1,
    });
    if (result.ok) {
      result.ws.addEventListener("message", onMessage);
      result.ws.send(JSON.stringify({ type: "subscribe", events: ["metrics"] }));
    }
    return result;
  });
  const held = pool.results.filter((r) => r.ok).length;
  console.log(JSON.stringify({ ready: held }));
  // Runs until the benchmark closes our stdin; `start` and `stop` mark its timed phase.
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffer = "";
  for await (const chunk of lines) {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, at).trim();
      buffer = buffer.slice(at + 1);
      if (line === "start") {
        timed.open = true;
        timed.from = performance.now();
      } else if (line === "stop") {
        timed.open = false;
        timed.to = performance.now();
      } else {
        throw new Error(
          `Cannot mark the watchers' timed phase as a line must be start or stop: current value is ${
            JSON.stringify(line)
          }`,
        );
      }
    }
  }
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
    closedBy,
    chars,
    timed: timedFigures(timed),
    sample,
  };
  console.log(JSON.stringify(result));
  Deno.exit(0);
}

/** The timed phase's figures; null unless it was both started and stopped. */
function timedFigures(
  t: { from: number; to: number; updates: number; frames: number; chars: number },
): TimedFigures | null {
  if (!(t.to > t.from)) return null;
  const seconds = (t.to - t.from) / 1000;
  return {
    seconds,
    updates: t.updates,
    frames: t.frames,
    chars: t.chars,
    meanFrameChars: t.frames ? t.chars / t.frames : NaN,
    updatesPerS: t.updates / seconds,
  };
}

if (import.meta.main) await main();
