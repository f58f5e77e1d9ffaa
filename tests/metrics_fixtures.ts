/** Fixtures of the API key and metrics tests: keys, pushes and reads over real HTTP. */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./helpers.ts";
import type { Limits } from "../lib/realtime/limits.ts";

/** Parsed JSON of an answer: tests read into it freely and assert on what they find. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** Creates an API key through the API with an admin token; returns the created answer. */
export async function createKey(
  server: TestServer,
  scope: "ingest" | "read",
  name = `${scope}-${crypto.randomUUID().slice(0, 8)}`,
): Promise<{ id: string; name: string; scope: string; createdAt: number; key: string }> {
  const res = await fetch(new URL("/api/v1/keys", server.url), {
    method: "POST",
    headers: {
      Authorization: `Bearer ${await server.mint({ role: "admin" })}`,
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ name, scope }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json();
}

/** POSTs `body` (JSON unless a string or bytes) to `/api/v1/metrics` with `key`. */
export async function push(
  base: URL | string,
  key: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Json; headers: Headers }> {
  const res = await fetch(new URL("/api/v1/metrics", base), {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", ...headers },
    body: typeof body === "string" || body instanceof Uint8Array
      ? body as BodyInit
      : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

/** GETs a path with a bearer credential; returns the status and the parsed JSON. */
export async function getJson(
  base: URL | string,
  path: string,
  credential: string,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(new URL(path, base), {
    headers: { Authorization: `Bearer ${credential}` },
  });
  const text = await res.text();
  const json = (res.headers.get("content-type") ?? "").includes("json");
  return { status: res.status, body: json ? JSON.parse(text) : { text } };
}

/** The series list entry of `name` (first one), read with `credential`. */
export async function seriesOf(
  base: URL | string,
  credential: string,
  name: string,
): Promise<Json[]> {
  const { status, body } = await getJson(base, "/api/v1/metrics", credential);
  assert.equal(status, 200);
  return (body.series as Json[]).filter((s) => s.name === name);
}

/** gzip of `text`. */
export async function gzip(text: string | Uint8Array): Promise<Uint8Array> {
  const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** A temp dir with a KV file path in it, removed on dispose. */
export async function tempKvPath(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "lookout_metrics_" });
  return {
    path: `${dir}/lookout.sqlite3`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * Two instances on one KV file, each with a KV handle of its own, as two
 * processes have: A, and B with A's secret. Disposing stops both servers,
 * then closes the handles and removes the file.
 */
export async function twoInstances(
  env: Record<string, string> = {},
  options: { limits?: Partial<Limits> } = {},
): Promise<{ a: TestServer; b: TestServer } & AsyncDisposable> {
  const file = await tempKvPath();
  const kvs = [await Deno.openKv(file.path), await Deno.openKv(file.path)];
  const servers: TestServer[] = [];
  const dispose = async () => {
    for (const server of servers.reverse()) await server[Symbol.asyncDispose]();
    for (const kv of kvs) kv.close();
    await file[Symbol.asyncDispose]();
  };
  try {
    servers.push(await startTestServer(env, { kv: kvs[0], ...options }));
    servers.push(
      await startTestServer({ ...env, JWT_SECRET: servers[0].secret }, { kv: kvs[1], ...options }),
    );
  } catch (error) {
    await dispose();
    throw error;
  }
  return { a: servers[0], b: servers[1], [Symbol.asyncDispose]: dispose };
}
