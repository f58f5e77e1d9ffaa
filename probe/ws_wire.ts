/**
 * The WebSocket wire, spoken by hand for `probe` (and for the tests' raw
 * sockets): the HTTP/1.1 upgrade and RFC 6455 frames over a plain TCP or TLS
 * connection. A browser-style client hides the handshake status and turns
 * every drop into 1006; this keeps both visible, so "no close frame at all"
 * can be told from a real close.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A bigger server frame is treated as a broken stream rather than buffered. */
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** A fresh `Sec-WebSocket-Key`: 16 random bytes in base64. */
export function websocketKey(): string {
  return crypto.getRandomValues(new Uint8Array(16)).toBase64();
}

/** The `Sec-WebSocket-Accept` a server must answer `key` with. */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + GUID));
  return new Uint8Array(digest).toBase64();
}

/**
 * Bytes read from a connection by one background loop, so callers can wait
 * with a deadline without leaving a read behind them.
 */
export class Wire {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #ended = false;
  #error: string | null = null;
  #wake: (() => void)[] = [];
  #writing: Promise<void> = Promise.resolve();
  #pump: Promise<void>;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
    this.#pump = this.#run();
  }

  /** The bytes received and not yet taken. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  /** Whether the peer has closed (or reset) its side. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Why reading stopped, when it was an error rather than a clean end. */
  get error(): string | null {
    return this.#error;
  }

  /** Takes `n` buffered bytes. */
  take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Waits for more bytes: "data", "end" when none will come, "timeout" at `deadline`. */
  async more(deadline: number): Promise<"data" | "end" | "timeout"> {
    if (this.#ended) return "end";
    const before = this.#buf.length;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), Math.max(0, deadline - Date.now()));
      this.#wake.push(() => resolve(false));
    });
    clearTimeout(timer);
    if (this.#buf.length > before) return "data";
    return timedOut ? "timeout" : "end";
  }

  /** Writes all of `bytes`, after any earlier write; rejects when the peer is gone. */
  write(bytes: Uint8Array): Promise<void> {
    const next = this.#writing.then(async () => {
      let off = 0;
      while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
    });
    this.#writing = next.catch(() => {});
    return next;
  }

  /** Closes the connection and waits for the read loop to stop. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch {
        // Already closed by the runtime.
      }
    }
    await this.#pump;
  }

  async #run(): Promise<void> {
    const chunk = new Uint8Array(16 * 1024);
    try {
      while (true) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        const next = new Uint8Array(this.#buf.length + n);
        next.set(this.#buf);
        next.set(chunk.subarray(0, n), this.#buf.length);
        this.#buf = next;
        this.#notify();
      }
    } catch (error) {
      if (!this.#closed) this.#error = (error as Error).message;
    }
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const w of wake) w();
  }
}

/** What a server sent, as the probe sees it. */
export type WsEvent =
  | { type: "text"; data: string }
  | { type: "binary"; size: number }
  | { type: "close"; code: number; reason: string }
  /** The connection ended without a close frame: what a browser reports as 1006. */
  | { type: "dropped"; error: string | null }
  | { type: "timeout" };

/** A client-side WebSocket over a {@linkcode Wire}, after a 101. */
export class FrameSocket {
  readonly wire: Wire;
  #fragments: Uint8Array[] | null = null;
  #fragmentText = false;
  #events: WsEvent[] = [];
  #closeSeen = false;
  #closeSent = false;
  #ending: WsEvent | null = null;
  #broken: string | null = null;
  /** When the server last sent a frame of any kind (pings too), epoch ms; the 101 at first. */
  lastFrameAt = Date.now();

  constructor(wire: Wire) {
    this.wire = wire;
  }

  /** Sends one masked text frame; false when the connection is gone. */
  async sendText(text: string): Promise<boolean> {
    return await this.#send(0x1, encoder.encode(text));
  }

  /**
   * The next event, waiting at most `timeoutMs`. After a close frame or a
   * drop, the same ending is returned again.
   */
  async next(timeoutMs: number): Promise<WsEvent> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      this.#parse();
      const event = this.#events.shift();
      if (event) return event;
      if (this.#ending) return this.#ending;
      if (this.#broken !== null) return this.#ending = { type: "dropped", error: this.#broken };
      const got = await this.wire.more(deadline);
      if (got === "timeout") return { type: "timeout" };
      if (got === "end") {
        this.#parse();
        if (this.#events.length === 0 && !this.#ending) {
          this.#ending = { type: "dropped", error: this.wire.error };
        }
      }
    }
  }

  /** Closes politely (a close frame, a short wait for the echo), then the connection. */
  async close(code = 1000, waitMs = 1000): Promise<void> {
    if (!this.#closeSeen && !this.wire.ended) {
      await this.#sendClose(code);
      const deadline = Date.now() + waitMs;
      while (!this.#closeSeen && Date.now() < deadline) {
        const event = await this.next(deadline - Date.now());
        if (event.type === "dropped" || event.type === "timeout") break;
      }
    }
    await this.wire.close();
  }

  async #sendClose(code: number): Promise<void> {
    if (this.#closeSent) return;
    this.#closeSent = true;
    await this.#send(0x8, new Uint8Array([code >> 8, code & 0xff]));
  }

  async #send(opcode: number, payload: Uint8Array): Promise<boolean> {
    try {
      await this.wire.write(encodeFrame(opcode, payload));
      return true;
    } catch {
      return false;
    }
  }

  /** Turns buffered bytes into events; control frames are answered here. */
  #parse(): void {
    while (this.#broken === null && !this.#closeSeen) {
      const b = this.wire.buffered;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      let length = b[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = (b[2] << 8) | b[3];
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        const big = new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0);
        length = big > BigInt(MAX_FRAME_BYTES) ? Infinity : Number(big);
        offset = 10;
      }
      if (length > MAX_FRAME_BYTES) {
        this.#broken = `the server sent a frame over ${MAX_FRAME_BYTES} bytes`;
        return;
      }
      const mask = (b[1] & 0x80) !== 0 ? 4 : 0;
      if (b.length < offset + mask + length) return;
      const head = this.wire.take(offset + mask);
      const payload = this.wire.take(length);
      // Servers must not mask; undo it anyway so the content stays readable.
      if (mask) { for (let i = 0; i < length; i++) payload[i] ^= head[offset + (i % 4)]; }
      this.#frame(fin, opcode, payload);
    }
  }

  #frame(fin: boolean, opcode: number, payload: Uint8Array): void {
    this.lastFrameAt = Date.now();
    switch (opcode) {
      case 0x0:
      case 0x1:
      case 0x2: {
        if (opcode !== 0x0) {
          this.#fragments = [];
          this.#fragmentText = opcode === 0x1;
        }
        if (this.#fragments === null) {
          this.#broken = "the server sent a continuation frame with no message to continue";
          return;
        }
        this.#fragments.push(payload);
        if (!fin) return;
        const whole = concat(this.#fragments);
        this.#fragments = null;
        this.#events.push(
          this.#fragmentText
            ? { type: "text", data: decoder.decode(whole) }
            : { type: "binary", size: whole.length },
        );
        return;
      }
      case 0x8: {
        this.#closeSeen = true;
        const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        this.#ending = { type: "close", code, reason: decoder.decode(payload.subarray(2)) };
        this.#events.push(this.#ending);
        // Echo the close, as RFC 6455 asks; the server then ends the connection.
        this.#sendClose(code === 1005 ? 1000 : code);
        return;
      }
      case 0x9:
        this.#send(0xa, payload);
        return;
      case 0xa:
        return;
      default:
        this.#broken = `the server sent a frame with unknown opcode ${opcode}`;
    }
  }
}

/** One masked client frame. */
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + extra + 4 + length);
  frame[0] = 0x80 | opcode;
  if (extra === 0) frame[1] = 0x80 | length;
  else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, 2 + extra);
  for (let i = 0; i < length; i++) frame[2 + extra + 4 + i] = payload[i] ^ mask[i % 4];
  return frame;
}

/** Joins byte arrays into one. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
