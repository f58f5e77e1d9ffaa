/// <reference lib="dom" />
/**
 * The browser's `/admin/ws` client. Before each connect it fetches a fresh
 * token from `/auth/token` (kept in memory only: never in storage, never in
 * a URL), sends it as the first message, re-authenticates in band when the
 * server says the token is expiring, pings to find dead links, and
 * reconnects with capped exponential backoff and full jitter.
 */
import { explainClose } from "../shared/close_explanations.ts";
import { type ClientMessage, type EventName, ServerMessage } from "../shared/protocol.ts";

/** Where the client stands. */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

/** A state change, with the last close explained. */
export interface StateDetail {
  state: ConnectionState;
  /** The last close; `at` is when it happened (epoch ms), so a page can list past closes. */
  close?: { code: number; reason: string; explanation: string; at: number };
  /** When reconnecting: the wait before the next try. */
  retryInMs?: number;
}

/** Options of {@linkcode LookoutClient}. */
export interface ClientOptions {
  /** Events to subscribe to once authenticated (`stats` is on by default). */
  events?: EventName[];
  onMessage?: (message: ServerMessage) => void;
  onState?: (detail: StateDetail) => void;
  /** Backoff: first delay cap, largest delay cap, and how long a connection must last to reset it. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  stableAfterMs?: number;
  pingEveryMs?: number;
  pongTimeoutMs?: number;
  /** Where to go when the session is gone (default: `/login`). */
  navigate?: (path: string) => void;
  /** The socket URL; by default ws: or wss: to this page's host. */
  url?: string;
  /** How to call `/auth/token` (default: the page's fetch, with its cookie). */
  fetch?: (path: string, init: RequestInit) => Promise<Response>;
}

/** The delay before reconnect number `attempt` (0-based): full jitter under a capped exponential. */
export function backoffDelay(
  attempt: number,
  baseMs: number,
  maxMs: number,
  random = Math.random,
): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/** The WebSocket URL of this page's server: wss: under https, ws: otherwise. */
export function socketUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/admin/ws`;
}

type Refresh = { token: string } | "signed_out" | "unreachable";
type Resolved = Required<Omit<ClientOptions, "url">> & { url: string };

/** One reconnecting, self-authenticating connection to `/admin/ws`. */
export class LookoutClient {
  #o: Resolved;
  #ws: WebSocket | null = null;
  #token: string | null = null;
  #attempt = 0;
  #stopped = false;
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #pingId = 0;
  #lastClose: StateDetail["close"];
  #lastReauth = 0;

  constructor(options: ClientOptions = {}) {
    this.#o = {
      events: [],
      onMessage: () => {},
      onState: () => {},
      baseDelayMs: 500,
      maxDelayMs: 30_000,
      stableAfterMs: 10_000,
      pingEveryMs: 25_000,
      pongTimeoutMs: 10_000,
      navigate: (path: string) => globalThis.location.assign(path),
      fetch: (path: string, init: RequestInit) => fetch(path, init),
      url: options.url ?? socketUrl(globalThis.location),
      ...options,
    };
  }

  /** Connects, and keeps reconnecting until {@linkcode stop}. */
  start(): void {
    this.#stopped = false;
    this.#connect();
  }

  /** Closes the socket and stops reconnecting. */
  stop(): void {
    this.#stopped = true;
    this.#clearTimers();
    this.#ws?.close(1000, "client_stopping");
    this.#ws = null;
  }

  /** Sends a message when live; returns whether it was sent. */
  send(message: ClientMessage): boolean {
    if (this.#ws?.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify(message));
    return true;
  }

  #state(state: ConnectionState, retryInMs?: number): void {
    this.#o.onState({ state, close: this.#lastClose, retryInMs });
  }

  #later(fn: () => void, ms: number): void {
    const id = setTimeout(() => {
      this.#timers.delete(id);
      fn();
    }, ms);
    this.#timers.add(id);
  }

  #clearTimers(): void {
    for (const id of this.#timers) clearTimeout(id);
    this.#timers.clear();
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
  }

  async #refresh(): Promise<Refresh> {
    try {
      const res = await this.#o.fetch("/auth/token", {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (res.status === 401) return "signed_out";
      if (!res.ok) return "unreachable";
      const body = await res.json();
      return typeof body.token === "string" ? { token: body.token } : "unreachable";
    } catch {
      return "unreachable";
    }
  }

  #signedOut(): void {
    this.#stopped = true;
    this.#clearTimers();
    this.#state("offline");
    this.#o.navigate("/login");
  }

  async #connect(): Promise<void> {
    if (this.#stopped) return;
    this.#state(this.#attempt === 0 && !this.#lastClose ? "connecting" : "reconnecting");
    const refreshed = await this.#refresh();
    if (this.#stopped) return;
    if (refreshed === "signed_out") return this.#signedOut();
    if (refreshed === "unreachable") return this.#retry();
    this.#token = refreshed.token;

    const ws = new WebSocket(this.#o.url);
    this.#ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: this.#token }));
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => {
      if (this.#ws !== ws) return;
      this.#ws = null;
      this.#onClose(event.code, event.reason);
    };
  }

  #receive(data: unknown): void {
    let parsed;
    try {
      parsed = ServerMessage.safeParse(JSON.parse(String(data)));
    } catch {
      return;
    }
    if (!parsed.success) return;
    const message = parsed.data;
    switch (message.type) {
      case "authenticated":
        this.#lastClose = undefined;
        this.#state("live");
        if (this.#o.events.length) this.send({ type: "subscribe", events: this.#o.events });
        this.#startPinging();
        // A connection that lasts resets the backoff; one that flaps does not.
        this.#later(() => this.#attempt = 0, this.#o.stableAfterMs);
        break;
      case "token_expiring":
        this.#reauthenticate();
        break;
      case "pong":
        clearTimeout(this.#pongTimer);
        break;
    }
    this.#o.onMessage(message);
  }

  async #reauthenticate(): Promise<void> {
    // A token that comes back short (a session near its end) is warned about
    // at once; re-authenticating at most every 10 s keeps that from looping.
    if (Date.now() - this.#lastReauth < 10_000) return;
    this.#lastReauth = Date.now();
    const refreshed = await this.#refresh();
    if (refreshed === "signed_out") return this.#signedOut();
    // Unreachable: the server closes at exp and the reconnect path takes over.
    if (typeof refreshed === "object") {
      this.#token = refreshed.token;
      this.send({ type: "auth", token: refreshed.token });
    }
  }

  #startPinging(): void {
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      if (!this.send({ type: "ping", id: ++this.#pingId })) return;
      clearTimeout(this.#pongTimer);
      // No pong in time: the link is dead even if the socket has not noticed.
      this.#pongTimer = setTimeout(
        () => this.#ws?.close(4000, "ping_timeout"),
        this.#o.pongTimeoutMs,
      );
    }, this.#o.pingEveryMs);
  }

  async #onClose(code: number, reason: string): Promise<void> {
    this.#clearTimers();
    this.#lastClose = { code, reason, explanation: explainClose(code, reason), at: Date.now() };
    if (this.#stopped) return this.#state("offline");
    if (code === 4401 || code === 4403) {
      // The token or the session is gone: a refresh tells which.
      const refreshed = await this.#refresh();
      if (refreshed === "signed_out") return this.#signedOut();
    }
    this.#retry();
  }

  #retry(): void {
    if (this.#stopped) return;
    if (globalThis.navigator?.onLine === false) {
      // No network: wait for it instead of spending retries.
      this.#state("offline");
      globalThis.addEventListener("online", () => this.#connect(), { once: true });
      return;
    }
    const delay = backoffDelay(this.#attempt++, this.#o.baseDelayMs, this.#o.maxDelayMs);
    this.#state("reconnecting", delay);
    this.#later(() => this.#connect(), delay);
  }
}
