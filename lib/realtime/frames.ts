/**
 * Reading one client frame of `/admin/ws` before the connection acts on it:
 * its size, whether it is an auth message, and which client message it is,
 * with the words a bad one is answered with.
 */
import { ClientMessage } from "../../shared/protocol.ts";

const encoder = new TextEncoder();

/** A frame after the first, as read. */
export type ClientFrame =
  | { kind: "auth"; token: unknown }
  | { kind: "message"; message: ClientMessage }
  | { kind: "invalid"; error: string };

/**
 * The first frame, which is the attempt: its token when it is an auth
 * message (JSON text with `type: "auth"`), or null for anything else.
 */
export function readAuthFrame(data: unknown): { token: unknown } | null {
  let json: unknown = null;
  try {
    json = typeof data === "string" ? JSON.parse(data) : null;
  } catch {
    // Not JSON: not an auth message.
  }
  return isAuthMessage(json) ? { token: (json as { token?: unknown }).token } : null;
}

/** A frame after the first: a re-auth, a client message, or why it is neither. */
export function readFrame(data: unknown): ClientFrame {
  if (typeof data !== "string") {
    return { kind: "invalid", error: "binary messages are not accepted; send JSON text" };
  }
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { kind: "invalid", error: "message is not valid JSON" };
  }
  if (isAuthMessage(json)) return { kind: "auth", token: (json as { token?: unknown }).token };
  const parsed = ClientMessage.safeParse(json);
  if (!parsed.success) return { kind: "invalid", error: describe(json, parsed.error) };
  return { kind: "message", message: parsed.data };
}

function isAuthMessage(json: unknown): boolean {
  return typeof json === "object" && json !== null && !Array.isArray(json) &&
    (json as Record<string, unknown>).type === "auth";
}

/** Whether a message is over `max` bytes, encoding it only when that is unclear. */
export function tooLarge(data: unknown, max: number): boolean {
  if (typeof data === "string") {
    // UTF-8 takes one to three bytes per UTF-16 unit (four per surrogate pair).
    if (data.length > max) return true;
    if (data.length * 3 <= max) return false;
    return encoder.encode(data).length > max;
  }
  if (data instanceof ArrayBuffer) return data.byteLength > max;
  if (data instanceof Blob) return data.size > max;
  return false;
}

function describe(
  json: unknown,
  error: { issues: { path: PropertyKey[]; message: string }[] },
): string {
  const type = typeof json === "object" && json !== null && !Array.isArray(json)
    ? (json as Record<string, unknown>).type
    : undefined;
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return "message must be a JSON object with a type";
  }
  const issue = error.issues[0];
  if (issue.path.length === 0 || issue.path[0] === "type") {
    return `unknown message type ${JSON.stringify(type ?? null)}`;
  }
  return `${String(type)}: ${issue.path.map(String).join(".")} ${issue.message}`;
}
