/**
 * The `probe` upgrade step: the WebSocket handshake sent by hand, so the
 * exact status, headers and body are visible, the accept value verified and
 * the server's clock read from its Date header.
 */
import { encodeRequest, type RawHttpResponse, readResponse } from "./http_wire.ts";
import { DEFAULT_TIMEOUT_MS, type ProbeOptions, type Step, step, type Target } from "./core.ts";
import {
  answeredBy,
  type Clocks,
  clockSkew,
  describeSkew,
  duration,
  explainStatus,
} from "./explain.ts";
import { acceptFor, FrameSocket, websocketKey, Wire } from "./ws_wire.ts";

/** The HTTP answer to the upgrade, exactly as it came. */
export interface UpgradeStep extends Step {
  name: "upgrade";
  /** The answer, when an HTTP one came. */
  response: RawHttpResponse | null;
  /** Lookout's JSON error body, when the answer is one. */
  json: { error?: string; reason?: string; message?: string } | null;
  /** Whether `Sec-WebSocket-Accept` matched the key (101 only). */
  acceptOk: boolean | null;
  clocks: Clocks;
}

const SHOWN_HEADERS = [
  "upgrade",
  "connection",
  "sec-websocket-accept",
  "server",
  "via",
  "date",
  "location",
  "retry-after",
  "www-authenticate",
  "content-type",
];

/**
 * Step 4: sends the upgrade by hand and reads the exact answer. On a valid
 * 101 the connection comes back as a {@linkcode FrameSocket}; otherwise it
 * is closed.
 */
export async function upgradeStep(
  conn: Deno.Conn,
  target: Target,
  options: ProbeOptions = {},
): Promise<{ step: UpgradeStep; socket: FrameSocket | null }> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const wire = new Wire(conn);
  const key = websocketKey();
  const headers: [string, string][] = [
    ["User-Agent", "lookout-probe"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", key],
    ["Sec-WebSocket-Version", "13"],
  ];
  if (options.origin) headers.push(["Origin", options.origin]);
  if (options.header && options.token) {
    headers.push(["Authorization", `Bearer ${options.token}`]);
  }
  const started = performance.now();
  const failed = async (summary: string, cause: string, clocks: Clocks) => {
    await wire.close();
    return {
      step: step<UpgradeStep>({
        name: "upgrade",
        result: "fail",
        summary,
        cause,
        response: null,
        json: null,
        acceptOk: null,
        clocks,
        ms: performance.now() - started,
      }),
      socket: null,
    };
  };
  try {
    await wire.write(encodeRequest(target.url, headers));
  } catch (error) {
    return await failed(
      "the request could not be sent",
      `The connection closed before the upgrade request was sent (${
        (error as Error).message
      }): the server or a proxy hung up at once.`,
      { localNow: Date.now(), skewMs: null },
    );
  }
  const res = await readResponse(wire, Date.now() + timeoutMs);
  const localNow = Date.now();
  if (!("status" in res)) {
    const clocks = { localNow, skewMs: null };
    if (res.kind === "timeout") {
      return await failed(
        `no HTTP answer within ${duration(timeoutMs)}`,
        `The server took the connection but sent no HTTP answer in ${
          duration(timeoutMs)
        }: check that this port serves HTTP${
          target.secure ? "" : " (a TLS port waits for a handshake: use wss://)"
        }.`,
        clocks,
      );
    }
    if (res.kind === "not_http") {
      return await failed(
        "the answer is not HTTP",
        `The answer is not HTTP (it starts "${res.firstBytes}"): ${
          target.secure ? "this is not a web server" : "if this port speaks TLS, use wss://"
        }.`,
        clocks,
      );
    }
    return await failed(
      "the connection closed without an answer",
      `The server closed the connection without answering${res.error ? ` (${res.error})` : ""}: ${
        target.secure ? "a proxy or the app hung up" : "if this port speaks TLS, use wss://"
      }; check the server's logs.`,
      clocks,
    );
  }
  const ms = performance.now() - started;
  const clocks: Clocks = { localNow, skewMs: clockSkew(res.headers.get("date"), localNow) };
  const json = parseJson(res.body);
  const acceptOk = res.status === 101
    ? res.headers.get("sec-websocket-accept") === await acceptFor(key)
    : null;
  const details = shownHeaders(res.headers, acceptOk, clocks);
  if (res.status !== 101 && res.body) details.push(...bodyLines(res.body));
  const base = {
    name: "upgrade" as const,
    summary: `${res.statusLine} in ${duration(ms)}`,
    response: res,
    json,
    acceptOk,
    clocks,
    details,
    ms,
  };
  if (res.status !== 101) {
    await wire.close();
    const cause = explainStatus({ ...res, json }, {
      path: target.url.pathname,
      origin: options.origin,
      token: options.header ? options.token : undefined,
      clocks,
    });
    return { step: step<UpgradeStep>({ ...base, result: "fail", cause }), socket: null };
  }
  const upgradeOk = res.headers.get("upgrade")?.toLowerCase() === "websocket" &&
    /(^|,)\s*upgrade\s*(,|$)/i.test(res.headers.get("connection") ?? "");
  if (!acceptOk || !upgradeOk) {
    await wire.close();
    const what = !acceptOk
      ? "a wrong Sec-WebSocket-Accept"
      : "no Upgrade: websocket and Connection: Upgrade";
    const cause = `The 101 answer carries ${what}: something between the probe and the app (${
      answeredBy(res.headers) ?? "a proxy"
    }) rewrote the handshake, and browsers will drop the connection.`;
    return { step: step<UpgradeStep>({ ...base, result: "fail", cause }), socket: null };
  }
  return { step: step<UpgradeStep>({ ...base, result: "ok" }), socket: new FrameSocket(wire) };
}

function shownHeaders(headers: Headers, acceptOk: boolean | null, clocks: Clocks): string[] {
  const lines: string[] = [];
  for (const [name, value] of headers) {
    if (!SHOWN_HEADERS.includes(name) && !name.startsWith("x-forwarded-")) continue;
    let note = "";
    if (name === "sec-websocket-accept") {
      note = acceptOk ? " (matches the key)" : " (does NOT match the key)";
    }
    if (name === "date") note = ` (${describeSkew(clocks.skewMs)})`;
    lines.push(`${canonical(name)}: ${value}${note}`);
  }
  if (acceptOk !== null && !headers.has("sec-websocket-accept")) {
    lines.push("Sec-WebSocket-Accept: missing");
  }
  return lines;
}

function canonical(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase())
    .replace("Websocket", "WebSocket").replace("Www-", "WWW-");
}

/** Lines of a body shown at most. */
const BODY_LINES = 8;

/**
 * A refused upgrade's body as detail lines: one line as it is (cut at 300
 * characters), several (a proxy's HTML error page) each on its own indented
 * line, cut at 120 characters and after {@linkcode BODY_LINES} lines, so
 * the cause below stays in sight.
 */
export function bodyLines(body: string): string[] {
  const cut = (text: string, max: number) => text.length > max ? `${text.slice(0, max)}…` : text;
  const lines = body.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim() !== "");
  if (lines.length <= 1) return [`body: ${cut(lines[0] ?? body, 300)}`];
  const shown = lines.slice(0, BODY_LINES).map((l) => `  ${cut(l, 120)}`);
  const more = lines.length - BODY_LINES;
  return [
    `body (${lines.length} lines):`,
    ...shown,
    ...(more > 0 ? [`  … ${more} more line${more === 1 ? "" : "s"}`] : []),
  ];
}

function parseJson(body: string): UpgradeStep["json"] {
  if (!body.trimStart().startsWith("{")) return null;
  try {
    const value = JSON.parse(body);
    return typeof value === "object" && value !== null ? value : null;
  } catch {
    return null;
  }
}
