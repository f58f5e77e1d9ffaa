/**
 * The two wire protocols the load generator speaks, both over Deno's own
 * WebSocket client so that every server is driven by the same client code:
 *
 * - Lookout's (CONTRACT 4), which the raw Deno server also speaks: the first
 *   message is `{"type":"auth","token"}`, answered `authenticated`.
 * - Socket.IO 5 over Engine.IO 4, WebSocket transport only: the server opens
 *   with `0{...}`, the client connects to `/` with `40{"token"}` (what
 *   socket.io-client sends for `auth: { token }`), the server answers
 *   `40{"sid"}` or `44{"message"}`; events are `42["name",data]`, the
 *   server's ping `2` is answered `3`, and `41` is a server disconnect.
 *   `bench/servers/sio_check.mjs` checks the same server with the official
 *   client first.
 */

/** The servers the benchmark knows; `rawkv` is raw plus Lookout's durable attempt record. */
export type Target = "lookout" | "raw" | "rawkv" | "socketio";

/** What one incoming frame means to the load generator. */
export type Frame =
  | { kind: "authenticated" }
  | { kind: "refused"; why: string }
  | { kind: "stats"; text: string }
  | { kind: "disconnected" }
  | { kind: "other" };

/** How to talk to one kind of server. */
export interface Protocol {
  /** The WebSocket URL of a server whose HTTP base is `base`. */
  url(base: string): string;
  /** Called once the socket is open. */
  opened(ws: WebSocket, token: string): void;
  /** Reads one text frame, answering the protocol's own frames (pings, open). */
  read(ws: WebSocket, data: string, token: string): Frame;
}

const lookoutProtocol: Protocol = {
  url: (base) => `${base.replace(/^http/, "ws")}/admin/ws`,
  opened(ws, token) {
    ws.send(JSON.stringify({ type: "auth", token }));
  },
  read(_ws, data) {
    // The common case first, left unparsed: a fanout to 10k sockets should
    // cost the load generator as little as possible, the same for every server.
    if (data.startsWith('{"type":"stats_update"')) return { kind: "stats", text: data };
    const msg = JSON.parse(data);
    switch (msg.type) {
      case "authenticated":
        return { kind: "authenticated" };
      case "auth_failed":
        return { kind: "refused", why: `auth_failed ${msg.reason}` };
      default:
        return { kind: "other" };
    }
  },
};

const socketIoProtocol: Protocol = {
  url: (base) => `${base.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`,
  opened() {
    // Socket.IO speaks first: the Engine.IO open packet.
  },
  read(ws, data, token) {
    if (data.startsWith('42["stats_update"')) return { kind: "stats", text: data };
    if (data === "2") {
      ws.send("3");
      return { kind: "other" };
    }
    if (data.startsWith("0")) {
      ws.send(`40${JSON.stringify({ token })}`);
      return { kind: "other" };
    }
    if (data.startsWith("40")) return { kind: "authenticated" };
    if (data.startsWith("44")) return { kind: "refused", why: `connect_error ${data.slice(2)}` };
    if (data.startsWith("41")) return { kind: "disconnected" };
    return { kind: "other" };
  },
};

/** The protocol of `target`. */
export function protocolOf(target: Target): Protocol {
  return target === "socketio" ? socketIoProtocol : lookoutProtocol;
}
