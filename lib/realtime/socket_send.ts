/**
 * Sending on and closing one `/admin/ws` socket: a send that reports a peer
 * that stopped reading, and closes that never throw. Plain functions of the
 * socket, so a connection holds no extra object or closure for them (at 10k
 * sockets every per-socket byte counts).
 *
 * @module
 */

/**
 * Sends `text` when `ws` is open. Returns the bytes still buffered when they
 * are over `limit` (a slow consumer, which the caller closes), otherwise 0.
 */
export function sendBounded(ws: WebSocket | null, text: string, limit: number): number {
  if (ws === null || ws.readyState !== WebSocket.OPEN) return 0;
  try {
    ws.send(text);
  } catch {
    // The socket is going away; its close event follows.
    return 0;
  }
  // What the peer has not read piles up here; past the bound it is dropped,
  // so one stalled reader cannot hold the memory of every update.
  return ws.bufferedAmount > limit ? ws.bufferedAmount : 0;
}

/**
 * Resolves when the close handshake of `ws` is done (the close frame is out
 * and answered), or at once when there is no socket or it is closed already.
 */
export function closeHandshake(ws: WebSocket | null): Promise<void> {
  return ws && ws.readyState <= WebSocket.CLOSING
    ? new Promise<void>((resolve) => ws.addEventListener("close", () => resolve(), { once: true }))
    : Promise.resolve();
}

/** Starts closing `ws` with `code` and `reason`, unless it is closing already. */
export function closeSocket(ws: WebSocket | null, code: number, reason: string): void {
  if (ws && ws.readyState <= WebSocket.OPEN) {
    try {
      ws.close(code, reason);
    } catch {
      // Already closing.
    }
  }
}

/**
 * A socket closing after a limit waits for `ms` of quiet from its peer,
 * checking every `pollMs`, and closes after `maxMs` at most.
 */
export const QUIET = { ms: 50, pollMs: 25, maxMs: 1000 } as const;

/**
 * Whether a socket closing after a limit may close now: its peer sent nothing
 * for `QUIET.ms` since `lastMessageAt`, or `deadline` passed. Deno
 * drops the TCP connection when data frames keep arriving after its close
 * frame, and the reset would swallow the close code: a flooding client would
 * see 1006 instead of 4429 or 1009.
 */
export function quietEnough(lastMessageAt: number, deadline: number): boolean {
  return Date.now() - lastMessageAt >= QUIET.ms || Date.now() >= deadline;
}
