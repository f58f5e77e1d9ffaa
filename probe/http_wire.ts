/**
 * An HTTP/1.1 response read off a {@linkcode Wire} by hand, for `probe`:
 * fetch would follow redirects, hide the status of an upgrade and refuse to
 * send `Upgrade` at all, and those are exactly what a diagnosis needs to see.
 */
import { concat, type Wire } from "./ws_wire.ts";

/** A response as it came off the wire. */
export interface RawHttpResponse {
  /** The status line, e.g. `HTTP/1.1 101 Switching Protocols`. */
  statusLine: string;
  status: number;
  headers: Headers;
  /** The body as text (none for 101), cut at {@linkcode MAX_BODY_BYTES}. */
  body: string;
}

/** Why no response could be read. */
export type ReadFailure =
  | { kind: "timeout"; received: number }
  | { kind: "closed"; received: number; error: string | null }
  | { kind: "not_http"; firstBytes: string };

/** The most body kept for display; the rest is not waited for. */
export const MAX_BODY_BYTES = 64 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLF2 = [13, 10, 13, 10];

/** Encodes a GET request with `headers` for `url` (path and query only). */
export function encodeRequest(url: URL, headers: [string, string][]): Uint8Array {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/**
 * Reads one response head and, unless it is a 101, its body (by
 * Content-Length, chunks, or up to the end). After a 101 the bytes that
 * follow the head stay on the wire for the frame reader.
 */
export async function readResponse(
  wire: Wire,
  deadline: number,
): Promise<RawHttpResponse | ReadFailure> {
  let end = -1;
  while ((end = indexOf(wire.buffered, CRLF2)) < 0) {
    const head = wire.buffered;
    if (head.length >= 5 && decoder.decode(head.subarray(0, 5)) !== "HTTP/") {
      return { kind: "not_http", firstBytes: printable(head.subarray(0, 40)) };
    }
    if (head.length > MAX_HEAD_BYTES) return { kind: "not_http", firstBytes: printable(head) };
    const got = await wire.more(deadline);
    if (got === "timeout") return { kind: "timeout", received: head.length };
    if (got === "end" && indexOf(wire.buffered, CRLF2) < 0) {
      const rest = wire.buffered;
      if (rest.length > 0 && !decoder.decode(rest).startsWith("HTTP/")) {
        return { kind: "not_http", firstBytes: printable(rest.subarray(0, 40)) };
      }
      return { kind: "closed", received: rest.length, error: wire.error };
    }
  }
  const lines = decoder.decode(wire.take(end + 4)).split("\r\n").slice(0, -2);
  const statusLine = lines[0];
  const match = /^HTTP\/\d(?:\.\d)? (\d{3})(?: .*)?$/.exec(statusLine);
  if (!match) return { kind: "not_http", firstBytes: statusLine.slice(0, 40) };
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) {
      try {
        headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
      } catch {
        // A header name or value fetch's Headers refuses: not one we read.
      }
    }
  }
  const status = Number(match[1]);
  const body = status === 101 ? "" : await readBody(wire, headers, deadline);
  return { statusLine, status, headers, body };
}

async function readBody(wire: Wire, headers: Headers, deadline: number): Promise<string> {
  const chunked = headers.get("transfer-encoding")?.toLowerCase().includes("chunked");
  const length = headers.has("content-length") ? Number(headers.get("content-length")) : null;
  const want = chunked ? Infinity : Math.min(length ?? Infinity, MAX_BODY_BYTES);
  while (wire.buffered.length < want && wire.buffered.length < MAX_BODY_BYTES) {
    if (chunked && indexOf(wire.buffered, encoder.encode("\r\n0\r\n")) >= 0) break;
    if (chunked && startsWith(wire.buffered, encoder.encode("0\r\n"))) break;
    if (await wire.more(deadline) !== "data") break;
  }
  const raw = wire.take(Math.min(wire.buffered.length, want));
  return decoder.decode(chunked ? dechunk(raw) : raw);
}

/** Joins the chunks of a chunked body; what is cut short is kept as it is. */
function dechunk(raw: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let rest = raw;
  while (true) {
    const nl = indexOf(rest, [13, 10]);
    if (nl < 0) break;
    const size = parseInt(decoder.decode(rest.subarray(0, nl)), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(rest.subarray(nl + 2, nl + 2 + size));
    rest = rest.subarray(Math.min(rest.length, nl + 2 + size + 2));
  }
  return concat(parts);
}

function indexOf(haystack: Uint8Array, needle: ArrayLike<number>): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return bytes.length >= prefix.length && prefix.every((b, i) => bytes[i] === b);
}

function printable(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b >= 32 && b < 127 ? String.fromCharCode(b) : ".").join("");
}
