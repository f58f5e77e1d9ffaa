/**
 * CONTRACT section 2: a raw token is never written to a log, to KV, or to any
 * response other than the one that issued it. A real server on a file-backed
 * KV sees many tokens by every route; then every log line, every response,
 * every WebSocket message and every KV entry is scanned for them.
 */
import assert from "node:assert/strict";
import { decodeJwt } from "jose";
import { claims, forge, randomSecret, rawUpgrade, startTestServer, TestClient } from "./helpers.ts";

/** One piece of text the server produced, and where it came from. */
interface Haystack {
  where: string;
  text: string;
}

/** A token, or its signature segment, found in a haystack. */
interface Leak {
  where: string;
  token: number;
  part: "token" | "signature";
}

/** Signatures shorter than this are not unique enough to search for. */
const MIN_SIGNATURE_CHARS = 16;

/** Finds every token, and every token's signature segment, in the haystacks. */
function findLeaks(haystacks: Haystack[], tokens: string[]): Leak[] {
  const leaks: Leak[] = [];
  tokens.forEach((token, i) => {
    const signature = token.split(".")[2] ?? "";
    for (const { where, text } of haystacks) {
      if (text.includes(token)) leaks.push({ where, token: i, part: "token" });
      else if (signature.length >= MIN_SIGNATURE_CHARS && text.includes(signature)) {
        leaks.push({ where, token: i, part: "signature" });
      }
    }
  });
  return leaks;
}

const decoder = new TextDecoder();

/** JSON.stringify for KV values: bigints, KvU64, bytes, maps and sets become text. */
function kvReplacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Deno.KvU64) return value.value.toString();
  if (value instanceof Uint8Array) return decoder.decode(value);
  if (value instanceof ArrayBuffer) return decoder.decode(new Uint8Array(value));
  if (value instanceof Map) return [...value.entries()];
  if (value instanceof Set) return [...value.values()];
  return value;
}

function keyPartText(part: Deno.KvKeyPart): string {
  return part instanceof Uint8Array ? decoder.decode(part) : String(part);
}

/** Every KV entry as two haystacks: its key parts and its value. */
async function dumpKv(kv: Deno.Kv): Promise<Haystack[]> {
  const out: Haystack[] = [];
  for await (const entry of kv.list({ prefix: [] })) {
    const key = entry.key.map(keyPartText).join(" / ");
    out.push({ where: `kv key [${key}]`, text: key });
    out.push({
      where: `kv value at [${key}]`,
      text: JSON.stringify(entry.value, kvReplacer) ?? String(entry.value),
    });
  }
  return out;
}

function headerText(headers: Headers): string {
  return [...headers].map(([name, value]) => `${name}: ${value}`).join("\n");
}

Deno.test("findLeaks() reports a token and a bare signature, and nothing in clean text", async () => {
  const secret = randomSecret();
  const token = await forge(claims(), secret);
  const other = await forge(claims(), secret);
  const signature = token.split(".")[2];
  const clean: Haystack[] = [
    { where: "clean", text: `{"msg":"auth failed","token":"${other.slice(0, 8)}…"}` },
  ];
  assert.deepEqual(findLeaks(clean, [token, other]), []);
  const leaks = findLeaks([
    ...clean,
    { where: "whole", text: `{"token":"${token}"}` },
    { where: "signature", text: `sig=${signature}` },
  ], [token, other]);
  assert.deepEqual(leaks, [
    { where: "whole", token: 0, part: "token" },
    { where: "signature", token: 0, part: "signature" },
  ]);
});

Deno.test("no token or token signature reaches a log line, a response, a message or KV", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lookout_leak_" });
  const kv = await Deno.openKv(`${dir}/lookout.sqlite3`);
  const server = await startTestServer({}, { kv });
  const tokens: string[] = [];
  const seen: Haystack[] = [];
  const clients: TestClient[] = [];
  const base = server.url;
  const use = (token: string) => (tokens.push(token), token);
  const now = () => Math.floor(Date.now() / 1000);
  const wrongSecret = randomSecret() + "-other";

  /** A WebSocket client whose every message and close is kept for the scan. */
  const connect = async (where: string, headers?: HeadersInit) => {
    const client = new TestClient(server.wsUrl, { headers });
    clients.push(client);
    client.ws.addEventListener("message", (e) => {
      seen.push({ where: `ws ${where}`, text: String(e.data) });
    });
    client.ws.addEventListener("close", (e) => {
      seen.push({ where: `ws ${where} close`, text: `${e.code} ${e.reason}` });
    });
    await client.opened;
    return client;
  };
  /** An HTTP request whose headers and body are kept for the scan. */
  const http = async (where: string, path: string, init: RequestInit = {}) => {
    const res = await fetch(new URL(path, base), init);
    const body = await res.text();
    seen.push({
      where: `http ${where}`,
      text: `${res.status}\n${headerText(res.headers)}\n${body}`,
    });
    return { status: res.status, body };
  };
  /** A raw upgrade request whose answer is kept for the scan. */
  const upgrade = async (where: string, url: string, headers: Record<string, string> = {}) => {
    const res = await rawUpgrade(url, headers);
    seen.push({
      where: `upgrade ${where}`,
      text: `${res.status}\n${headerText(res.headers)}\n${res.body}`,
    });
    return res;
  };
  /** The first message auth fails with `reason` (or rate_limited) and the socket closes. */
  const refusedByMessage = async (where: string, message: unknown, reasons: string[]) => {
    const client = await connect(where);
    client.send(message);
    const failed = await client.next("auth_failed");
    assert.ok(
      [...reasons, "rate_limited"].includes(failed.reason),
      `${where}: auth_failed ${failed.reason}, expected ${reasons.join(" or ")}`,
    );
    await client.closed;
  };

  try {
    // Valid first-message auths, with the follow-up traffic of a dashboard.
    const alice = await connect("alice");
    await alice.auth(use(await server.mint({ sub: "alice", role: "admin" })));
    alice.send({ type: "subscribe", events: ["attempts", "presence"] });
    await alice.next("subscribed");
    const bob = await connect("bob");
    await bob.auth(use(await server.mint({ sub: "bob", role: "viewer" })));
    bob.send({ type: "get_stats" });
    await bob.next("stats_update");
    for (let i = 0; i < 3; i++) {
      const c = await connect(`carol ${i}`);
      await c.auth(use(await server.mint({ sub: "carol", role: "admin", ttlS: 120 + i })));
      c.send({ type: "ping", id: i });
      await c.next("pong");
    }

    // Re-authentication: the same user succeeds, another user is refused.
    alice.send({ type: "auth", token: use(await server.mint({ sub: "alice", role: "admin" })) });
    await alice.next("reauthenticated");
    bob.send({ type: "auth", token: use(await server.mint({ sub: "mallory", role: "admin" })) });
    assert.equal((await bob.closed).code, 4401);

    // After auth, tokens inside messages the server refuses.
    const stray = use(await server.mint({ sub: "alice" }));
    alice.send(stray);
    alice.send({ type: "bogus", token: stray });
    for (let i = 0; i < 2; i++) await alice.next("error");
    alice.send({ type: "get_stats" });
    await alice.next("stats_update");
    // A re-auth whose token is not a string fails like any bad token.
    alice.send({ type: "auth", token: { nested: stray } });
    assert.deepEqual(await alice.closed, { code: 4401, reason: "missing_token" });

    // Bearer header: valid upgrades at once; invalid ones are refused before it.
    const header = await connect("bearer valid", {
      Authorization: `Bearer ${use(await server.mint({ sub: "dave", role: "viewer" }))}`,
    });
    await header.next("authenticated");
    header.send({ type: "get_stats" });
    await header.next("stats_update");
    const badBearers = [
      await forge(claims(), wrongSecret),
      await forge(claims({ iat: now() - 1200, exp: now() - 600 }), server.secret),
      await forge(claims({ aud: "someone-else" }), server.secret),
      (await server.mint({ sub: "eve" })).slice(0, -2) + "xy",
    ];
    for (const [i, bad] of badBearers.entries()) {
      const res = await upgrade(`bearer invalid ${i}`, server.wsUrl, {
        Authorization: `Bearer ${use(bad)}`,
      });
      assert.ok([401, 429].includes(res.status), `bearer invalid ${i}: ${res.status}`);
    }
    const notBearer = await upgrade("authorization not bearer", server.wsUrl, {
      Authorization: `Token ${use(await server.mint())}`,
    });
    // Only Bearer headers are read; others are left alone and the upgrade goes on.
    assert.ok([101, 429].includes(notBearer.status), `not bearer: ${notBearer.status}`);
    const badOrigin = await upgrade("bad origin with bearer", server.wsUrl, {
      Origin: "https://evil.example",
      Authorization: `Bearer ${use(await server.mint())}`,
    });
    assert.ok([403, 429].includes(badOrigin.status), `bad origin: ${badOrigin.status}`);

    // Failing first messages.
    await refusedByMessage(
      "wrong secret",
      { type: "auth", token: use(await forge(claims(), wrongSecret)) },
      ["invalid_signature"],
    );
    await refusedByMessage(
      "tampered signature",
      { type: "auth", token: use((await server.mint({ sub: "frank" })).slice(0, -3) + "abc") },
      ["invalid_signature"],
    );
    await refusedByMessage(
      "expired",
      {
        type: "auth",
        token: use(await forge(claims({ iat: now() - 1200, exp: now() - 600 }), server.secret)),
      },
      ["token_expired"],
    );
    await refusedByMessage(
      "unknown role",
      { type: "auth", token: use(await server.mint({ sub: "grace", role: "superuser" })) },
      ["forbidden"],
    );
    await refusedByMessage(
      "wrong issuer",
      { type: "auth", token: use(await forge(claims({ iss: "elsewhere" }), server.secret)) },
      ["invalid_claims"],
    );
    await refusedByMessage(
      "not an auth message",
      { type: "hello", token: use(await server.mint()) },
      ["bad_message"],
    );
    await refusedByMessage(
      "token not a string",
      { type: "auth", token: [use(await server.mint())] },
      ["missing_token"],
    );
    await refusedByMessage("raw token as text", use(await server.mint()), ["bad_message"]);

    // Tokens in the URL are refused before the upgrade.
    for (const param of ["token", "access_token", "authorization"]) {
      const t = use(await server.mint());
      const res = await upgrade(`?${param}=`, `${server.wsUrl}?${param}=${t}`);
      assert.ok([400, 429].includes(res.status), `?${param}=: ${res.status}`);
      await http(`GET /admin/ws?${param}= without upgrade`, `/admin/ws?${param}=${t}`);
    }

    // The API with bearer tokens, valid and not.
    const apiToken = use(await server.mint({ sub: "alice", role: "admin" }));
    const auth = { headers: { Authorization: `Bearer ${apiToken}` } };
    assert.equal((await http("GET /api/v1/stats", "/api/v1/stats", auth)).status, 200);
    const list = await http("GET /api/v1/attempts", "/api/v1/attempts?limit=500", auth);
    assert.equal(list.status, 200);
    assert.ok(JSON.parse(list.body).items.length > 10, "the attempt log is nearly empty");
    await http("GET /api/v1/attempts?user=alice", "/api/v1/attempts?user=alice", auth);
    await http("GET /api/v1/attempts?outcome=failure", "/api/v1/attempts?outcome=failure", auth);
    assert.equal((await http("bad limit", "/api/v1/attempts?limit=abc", auth)).status, 400);
    assert.equal(
      (await http("token param on the API", `/api/v1/attempts?token=${apiToken}`, auth)).status,
      400,
    );
    for (const [i, bad] of badBearers.entries()) {
      const res = await http(`GET /api/v1/stats bearer invalid ${i}`, "/api/v1/stats", {
        headers: { Authorization: `Bearer ${bad}` },
      });
      assert.equal(res.status, 401);
    }
    const inQuery = use(await server.mint());
    assert.equal(
      (await http("API token in query only", `/api/v1/stats?token=${inQuery}`)).status,
      401,
    );

    // A client that closes with a token's signature as its close reason:
    // the socket's close line must not copy it (issue 13).
    // (Not through connect(): the client's own close event echoes its reason.)
    const closer = await TestClient.open(server.wsUrl);
    clients.push(closer);
    const closerToken = use(await server.mint({ sub: "hal" }));
    await closer.auth(closerToken);
    closer.ws.close(4000, closerToken.split(".")[2]);
    await closer.closed;

    // Other failing requests that carry a token.
    await http("unknown path", "/nope", auth);
    await http("POST to a GET route", "/api/v1/stats", { ...auth, method: "POST", body: apiToken });
    await http("health", "/healthz", auth);
  } finally {
    for (const client of clients) await client.close();
    await server.close();
  }

  try {
    const kvData = await dumpKv(kv);
    const logs = server.logs.map((line, i) => ({ where: `log line ${i}`, text: line }));

    // The scan reads real data: attempts are in KV and carry token ids.
    assert.ok(tokens.length >= 25, `only ${tokens.length} tokens used`);
    assert.ok(logs.length > 0, "no log lines to scan");
    // The socket activity lines (issue 13) are among those scanned.
    const logged = new Set(server.logs.map((l) => JSON.parse(l).msg));
    for (
      const msg of [
        "socket authenticated",
        "socket authentication failed",
        "socket closed",
        "upgrade refused",
      ]
    ) {
      assert.ok(logged.has(msg), `no "${msg}" line to scan`);
    }
    assert.ok(seen.length > 40, `only ${seen.length} responses and messages to scan`);
    const stored = kvData.filter((h) => h.where.startsWith("kv value at [attempts / "));
    assert.ok(stored.length >= 20, `only ${stored.length} attempt records in KV`);
    const firstJti = decodeJwt(tokens[0]).jti as string;
    assert.ok(
      kvData.some((h) => h.text.includes(firstJti)),
      "the jti of the first token is nowhere in KV",
    );

    const leaks = findLeaks([...logs, ...seen, ...kvData], tokens);
    assert.deepEqual(
      leaks,
      [],
      `tokens leaked:\n${
        leaks.map((l) => `${l.part} of token ${l.token} in ${l.where}`).join("\n")
      }`,
    );

    // The same scan finds a token planted in a copy of the data: in a log
    // line, in a response, and in a KV value and key part (through dumpKv).
    const planted = tokens[3];
    const signature = planted.split(".")[2];
    const copy = await Deno.openKv(":memory:");
    try {
      for await (const entry of kv.list({ prefix: [] })) await copy.set(entry.key, entry.value);
      await copy.set(["attempts", "planted"], {
        tokenId: null,
        counts: new Deno.KvU64(7n),
        nested: { big: 1n, raw: planted },
      });
      await copy.set(["attempts_by_user", `sig:${signature}`, "planted"], "planted");
      const copyData = await dumpKv(copy);
      assert.equal(copyData.length, kvData.length + 4);
      const found = findLeaks(
        [
          ...logs,
          { where: "planted log", text: JSON.stringify({ msg: "auth", token: planted }) },
          ...seen,
          { where: "planted message", text: `{"type":"auth_failed","sig":"${signature}"}` },
          ...copyData,
        ],
        tokens,
      );
      assert.deepEqual(found.map((l) => `${l.part} in ${l.where}`).sort(), [
        `signature in kv key [attempts_by_user / sig:${signature} / planted]`,
        "signature in planted message",
        "token in kv value at [attempts / planted]",
        "token in planted log",
      ]);
    } finally {
      copy.close();
    }
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
