/**
 * Real WebSocket clients for the load generator: one connect and
 * authentication, and a pool of workers that runs many of them a bounded
 * number at a time.
 */
import { type Frame, protocolOf, type Target } from "./protocols.ts";
import { sleep } from "./util.ts";

/** What one connect+auth came to. `ms` runs from `new WebSocket()` to the auth answer. */
export type ConnectResult =
  | { ok: true; ms: number; ws: WebSocket }
  | { ok: false; why: string };

/** Options of {@linkcode connect}. */
export interface ConnectOptions {
  /** Sent as `X-Forwarded-For` (Lookout trusts it in the benchmark; the others ignore it). */
  ip: string;
  timeoutMs: number;
  /** Keep the socket open after authenticating; otherwise close it and wait for the close. */
  keep: boolean;
  /** Every frame after authentication, with its arrival time (`performance.now()`). */
  onFrame?: (frame: Frame, at: number) => void;
  /** The close of a kept socket, with its time. */
  onClose?: (code: number, at: number) => void;
  /** The socket opened; for Lookout, its auth message has just been sent. */
  onOpen?: () => void;
}

/** Connects one client to `target` at `base` and authenticates with `token`. */
export function connect(
  target: Target,
  base: string,
  token: string,
  options: ConnectOptions,
): Promise<ConnectResult> {
  const protocol = protocolOf(target);
  return new Promise((resolve) => {
    const started = performance.now();
    let result: ConnectResult | null = null;
    let settled = false;
    const settle = (r: ConnectResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const ws = new WebSocket(protocol.url(base), { headers: { "x-forwarded-for": options.ip } });
    const timer = setTimeout(() => {
      result ??= { ok: false, why: "timeout" };
      try {
        ws.close();
      } catch {
        // Still connecting: it is abandoned either way.
      }
      settle(result);
    }, options.timeoutMs);
    ws.onopen = () => {
      protocol.opened(ws, token);
      options.onOpen?.();
    };
    ws.onmessage = (event) => {
      const at = performance.now();
      if (typeof event.data !== "string") return;
      const frame = protocol.read(ws, event.data, token);
      if (result === null) {
        if (frame.kind === "authenticated") {
          result = { ok: true, ms: at - started, ws };
          if (options.keep) settle(result);
          else ws.close();
        } else if (frame.kind === "refused") {
          result = { ok: false, why: frame.why };
          ws.close();
        }
        return;
      }
      options.onFrame?.(frame, at);
    };
    // A refused handshake (a 429, say) shows here: the status is not exposed.
    ws.onerror = () => {
      result ??= { ok: false, why: "socket error or refused upgrade" };
    };
    ws.onclose = (event) => {
      const at = performance.now();
      if (settled) {
        options.onClose?.(event.code, at);
        return;
      }
      // Waiting for the close keeps at most `concurrency` sockets in flight.
      settle(result ?? { ok: false, why: `closed ${event.code} ${event.reason}`.trim() });
    };
  });
}

/** The deployment's HS256 secret as a signing key. */
export function hmacKey(secret: string): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
}

/** A private address for client number `n` under the first octets `prefix`. */
export function addressOf(prefix: number, n: number): string {
  return `10.${prefix}.${(n >> 8) & 255}.${n & 255}`;
}

/** The results of {@linkcode runPool}. */
export interface PoolRun {
  results: ConnectResult[];
  wallMs: number;
}

/**
 * Runs `count` clients, `concurrency` at a time; `client` is given the
 * worker's number, so each worker can use its own address and no address
 * has more than one socket still authenticating. Stops starting new clients
 * once more than `maxFailures` failed, so a broken server costs little time,
 * and once `stop()` is true, so a churn can last a phase rather than a count
 * (the clients in flight then finish, and `wallMs` includes them).
 */
export async function runPool(
  count: number,
  concurrency: number,
  client: (index: number, worker: number) => Promise<ConnectResult>,
  options: { maxFailures?: number; stop?: () => boolean } = {},
): Promise<PoolRun> {
  const maxFailures = options.maxFailures ?? Math.max(50, Math.ceil(count * 0.05));
  const stop = options.stop ?? (() => false);
  const results: ConnectResult[] = [];
  let next = 0;
  let failures = 0;
  const started = performance.now();
  const worker = async (w: number) => {
    while (next < count && failures <= maxFailures && !stop()) {
      const i = next++;
      const result = await client(i, w);
      if (!result.ok) failures++;
      results[i] = result;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, (_, w) => worker(w)));
  return { results, wallMs: performance.now() - started };
}

/** One socket kept open after authenticating: the fanout round it last counted for. */
export interface HeldSocket {
  round: number;
  open: boolean;
  ws: WebSocket | null;
}

/**
 * The sockets a load generator keeps open: each connects, authenticates and
 * stays, its `stats` frames go to `onStats`, and the time of the last frame
 * any of them got lets a phase wait for the server to go quiet.
 */
export class HeldSockets<H extends HeldSocket> {
  /** Every socket that authenticated, open or closed since. */
  readonly all: H[] = [];
  #lastFrameAt = 0;
  #onStats: (h: H, frame: Extract<Frame, { kind: "stats" }>, at: number) => void;

  constructor(onStats: (h: H, frame: Extract<Frame, { kind: "stats" }>, at: number) => void) {
    this.#onStats = onStats;
  }

  /** Connects `h` to `target` at `base` with `token` and keeps it open once authenticated. */
  hold(
    h: H,
    target: Target,
    base: string,
    token: string,
    options: Pick<ConnectOptions, "ip" | "timeoutMs">,
  ): Promise<ConnectResult> {
    return connect(target, base, token, {
      ...options,
      keep: true,
      onFrame: (frame, at) => {
        this.#lastFrameAt = at;
        if (frame.kind === "stats") this.#onStats(h, frame, at);
      },
      onClose: () => h.open = false,
    }).then((r) => {
      if (r.ok) {
        h.ws = r.ws;
        this.all.push(h);
      }
      return r;
    });
  }

  /** Waits until the held sockets have had no frame for `ms` (at most `maxMs`). */
  async quiet(ms: number, maxMs = 20_000): Promise<void> {
    const until = performance.now() + maxMs;
    while (performance.now() - this.#lastFrameAt < ms && performance.now() < until) {
      await sleep(100);
    }
  }
}
