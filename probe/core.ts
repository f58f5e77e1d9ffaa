/**
 * What every `probe` step shares: the target URL, the shape of a step's
 * result and the options. The steps live in `net.ts`, `upgrade.ts`,
 * `session.ts` and `login.ts` beside it; `mod.ts` runs them in order.
 */

/** The endpoint a probe talks to. */
export interface Target {
  /** The WebSocket URL (`ws:` or `wss:`). */
  url: URL;
  /** The `http(s)://host[:port]` origin of the same server, for login. */
  httpOrigin: string;
  secure: boolean;
  /** The host as DNS and TCP take it (IPv6 without brackets). */
  hostname: string;
  port: number;
}

/** A URL the probe cannot work with. */
export class ProbeUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProbeUsageError";
  }
}

/** The default WebSocket path, used when a URL names only the host. */
export const DEFAULT_PATH = "/admin/ws";
const SCHEMES: Record<string, { ws: string; http: string; port: number }> = {
  "ws:": { ws: "ws:", http: "http:", port: 80 },
  "http:": { ws: "ws:", http: "http:", port: 80 },
  "wss:": { ws: "wss:", http: "https:", port: 443 },
  "https:": { ws: "wss:", http: "https:", port: 443 },
};

/** Reads `ws://`, `wss://`, `http://` or `https://` URLs; a bare host means `/admin/ws`. */
export function parseTarget(input: string): Target {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new ProbeUsageError(
      `Cannot probe as the URL does not parse: current value is ${JSON.stringify(input)}`,
    );
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme || !url.hostname) {
    throw new ProbeUsageError(
      `Cannot probe as the URL must start with ws://, wss://, http:// or https://: current value is ${
        JSON.stringify(input)
      }`,
    );
  }
  const ws = new URL(url);
  ws.protocol = scheme.ws;
  ws.hash = "";
  if (ws.pathname === "/" || ws.pathname === "") ws.pathname = DEFAULT_PATH;
  const http = new URL(ws);
  http.protocol = scheme.http;
  return {
    url: ws,
    httpOrigin: http.origin,
    secure: scheme.ws === "wss:",
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port ? Number(url.port) : scheme.port,
  };
}

/** The steps, in the order a probe runs them (login comes first when asked for). */
export type StepName =
  | "dns"
  | "tcp"
  | "tls"
  | "upgrade"
  | "auth"
  | "stats"
  | "hold"
  | "login";

/** What one step saw. */
export interface Step {
  name: StepName;
  result: "ok" | "fail" | "warn" | "skip";
  /** What was seen, in one line. */
  summary: string;
  /** For `fail` and `warn`: the cause and what to do, in one sentence. */
  cause?: string;
  /** Further lines: headers, times. */
  details: string[];
  ms?: number;
}

/** Options of the probe and its steps. */
export interface ProbeOptions {
  /** The access token to authenticate with. */
  token?: string;
  /** Sent as `Origin` on the upgrade. */
  origin?: string;
  /** Send the token as `Authorization: Bearer` on the upgrade, not in a first message. */
  header?: boolean;
  /** Send no auth message and wait for the server to close (it should: 4408 auth_timeout). */
  waitAuth?: boolean;
  /**
   * After the first stats, how long to keep the authenticated socket open
   * sending nothing, to see a proxy's idle cut; 0 (no hold) unless set.
   */
  holdMs?: number;
  /** How long a step may take; 10 s unless set. */
  timeoutMs?: number;
  /** How long `waitAuth` waits for the close; 6 min unless set (AUTH_TIMEOUT_MS is at most 5). */
  authWaitMs?: number;
  /** Extra CA certificates (PEM) to trust for wss:// and https://. */
  caCerts?: string[];
  /** Called as each step ends, so a CLI can print as it goes. */
  onStep?: (step: Step) => void;
}

/** How long a step may take unless told otherwise. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** Builds a step result; `details` defaults to none. */
export function step<S extends Step>(fields: Omit<S, "details"> & { details?: string[] }): S {
  return { details: [], ...fields } as unknown as S;
}
