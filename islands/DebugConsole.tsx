/// <reference lib="dom" />
import { useSignal } from "@preact/signals";
import { useRef } from "preact/hooks";
import { explainClose } from "../shared/close_explanations.ts";
import { socketUrl } from "../client/lookout_client.ts";
import { maskToken } from "../shared/mask_token.ts";
import { clock } from "../client/format.ts";

interface Frame {
  at: number;
  dir: "out" | "in" | "note";
  text: string;
}

const PRESETS: Record<string, string> = {
  ping: '{"type":"ping","id":"debug"}',
  get_stats: '{"type":"get_stats"}',
  "subscribe all": '{"type":"subscribe","events":["stats","attempts","presence"]}',
  "bad message": "not json",
};

/**
 * An interactive socket tester: fetch a token, connect, send raw messages,
 * and see every frame and each close explained. The token stays in this
 * page's memory and is shown masked, in the log too.
 */
export default function DebugConsole() {
  const token = useSignal<{ value: string; expiresAt: number } | null>(null);
  const frames = useSignal<Frame[]>([]);
  // "not connected" until the first connect: "closed" would suggest one was open.
  const state = useSignal<"not connected" | "connecting" | "open" | "closed">("not connected");
  const draft = useSignal("");
  const ws = useRef<WebSocket | null>(null);

  const log = (dir: Frame["dir"], text: string) => {
    const shown = token.value
      ? text.replaceAll(token.value.value, maskToken(token.value.value))
      : text;
    frames.value = [{ at: Date.now(), dir, text: shown }, ...frames.value].slice(0, 500);
  };

  async function fetchToken() {
    const res = await fetch("/auth/token", { method: "POST", credentials: "same-origin" });
    if (!res.ok) return log("note", `POST /auth/token answered ${res.status}: sign in again`);
    const body = await res.json();
    token.value = { value: body.token, expiresAt: body.expiresAt };
    log("note", `got a token ${maskToken(body.token)}, expires ${clock(body.expiresAt)} UTC`);
  }

  function connect() {
    const current = ws.current;
    if (current && current.readyState <= WebSocket.OPEN) {
      const replace = confirm(
        "A socket is already open. Close it and connect a new one? Its subscriptions and authentication are lost.",
      );
      if (!replace) return log("note", "kept the open socket");
    }
    current?.close(1000, "debug: replaced");
    const socket = new WebSocket(socketUrl(location));
    ws.current = socket;
    state.value = "connecting";
    log("note", `connecting to ${socket.url}`);
    socket.onopen = () => {
      state.value = "open";
      log("note", "open: send an auth message first");
    };
    socket.onmessage = (e) => log("in", String(e.data));
    socket.onclose = (e) => {
      // A replaced socket closes after its successor opened: leave the state to the new one.
      if (ws.current === socket) {
        ws.current = null;
        state.value = "closed";
      }
      log(
        "note",
        `closed ${e.code}${e.reason ? ` ${e.reason}` : ""}: ${explainClose(e.code, e.reason)}`,
      );
    };
  }

  function send(text: string) {
    if (ws.current?.readyState !== WebSocket.OPEN) return log("note", "not connected");
    ws.current.send(text);
    log("out", text);
  }

  const authText = token.value ? JSON.stringify({ type: "auth", token: token.value.value }) : null;
  return (
    <section class="debug">
      <div class="card controls">
        <p class="status" data-debug-state={state.value}>
          Socket: <strong>{state.value}</strong> · Token:{" "}
          {token.value ? <code>{maskToken(token.value.value)}</code> : "none"}
        </p>
        <div class="buttons">
          <button type="button" onClick={fetchToken}>Fetch token</button>
          <button type="button" onClick={connect}>Connect</button>
          <button
            type="button"
            onClick={() => ws.current?.close(1000, "debug")}
            disabled={state.value !== "open" && state.value !== "connecting"}
          >
            Disconnect
          </button>
          <button
            type="button"
            onClick={() => authText && send(authText)}
            disabled={!authText || state.value !== "open"}
          >
            Send auth
          </button>
          {Object.entries(PRESETS).map(([name, text]) => (
            <button
              type="button"
              class="secondary"
              key={name}
              onClick={() => send(text)}
              disabled={state.value !== "open"}
            >
              {name}
            </button>
          ))}
        </div>
        <form
          class="raw"
          onSubmit={(e) => {
            e.preventDefault();
            send(draft.value);
          }}
        >
          <label>
            Raw message
            <textarea
              rows={3}
              value={draft.value}
              onInput={(e) => draft.value = e.currentTarget.value}
              placeholder='{"type":"ping"}'
            />
          </label>
          <button type="submit" disabled={state.value !== "open"}>Send</button>
        </form>
      </div>
      <div class="card frames">
        <h2>
          Frames <small class="muted">(times in UTC, newest first)</small>
        </h2>
        <noscript>This tester needs JavaScript.</noscript>
        <ol class="log" aria-live="polite">
          {frames.value.map((f, i) => (
            <li key={frames.value.length - i} class={f.dir}>
              <time>{clock(f.at)}</time>
              <span class="dir">{f.dir === "out" ? "→" : f.dir === "in" ? "←" : "•"}</span>
              {f.dir === "note" ? <code>{f.text}</code> : <pre>{pretty(f.text)}</pre>}
            </li>
          ))}
        </ol>
      </div>
    </section>
  );
}

/** A JSON frame indented, so a nested stats_update reads at 2 a.m.; other text as it came. */
function pretty(text: string): string {
  try {
    const value = JSON.parse(text);
    return typeof value === "object" && value !== null ? JSON.stringify(value, null, 2) : text;
  } catch {
    return text;
  }
}
