/**
 * The dashboard in a real browser (Debian's Chromium driven by
 * playwright-core): sign in, live counters, the feed, the explorer, the
 * badge across a server restart, and logout. Screenshots of every page, in
 * light and dark, go to test_output/screenshots/.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { putUser } from "../lib/auth/users.ts";
import { explainClose } from "../shared/close_explanations.ts";
import {
  attemptInput,
  randomPassword,
  randomSecret,
  rawUpgrade,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";
import { ensureBuilt, hasChromium, launch, shoot, warnIfNoChromium } from "./browser.ts";

warnIfNoChromium("browser tests");

/** The dashboard pages are shot in both colour schemes. */
const BOTH_SCHEMES = ["light", "dark"] as const;

async function signIn(page: Page, base: URL, name: string, password: string): Promise<void> {
  await page.goto(new URL("/admin", base).href);
  assert.match(page.url(), /\/login$/, "an anonymous visit lands on the login page");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/admin$/);
}

async function statValue(page: Page, stat: string): Promise<number> {
  const text = await page.locator(`[data-stat="${stat}"]`).first().textContent();
  return Number((text ?? "").replace(/[^\d]/g, ""));
}

async function withDashboard(
  fn: (
    ctx: { server: TestServer; page: Page; errors: string[]; password: string; kvPath: string },
  ) => Promise<void>,
  env: Record<string, string> = {},
) {
  await ensureBuilt();
  const dir = await Deno.makeTempDir({ prefix: "lookout-browser-" });
  const kvPath = `${dir}/kv.sqlite3`;
  const server = await startTestServer({ KV_PATH: kvPath, ...env });
  const browser = await launch();
  try {
    const password = randomPassword();
    await putUser(server.deps.kv, { name: "ada", role: "admin", password });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(m.text());
    });
    await fn({ server, page, errors, password, kvPath });
  } finally {
    await browser.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "dashboard: sign in, live counters and feed, explorer filter, logout closes the socket",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDashboard(async ({ server, page, errors, password }) => {
      // 1. Sign in and reach the dashboard, live.
      await signIn(page, server.url, "ada", password);
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });
      // The badge turns live on `authenticated`; the counts follow with the
      // first stats_update, a message later, and must then count this socket.
      await page.waitForFunction(
        () => document.querySelector('[data-stat="authenticated"]')?.textContent?.trim() === "1",
        undefined,
        { timeout: 5000 },
      );
      assert.equal(await statValue(page, "authenticated"), 1);
      await shoot(page, "overview", BOTH_SCHEMES);

      // 2. Another client fails auth: the counters move without a reload.
      const failuresBefore = await statValue(page, "failure");
      const intruder = await TestClient.open(server.wsUrl);
      intruder.send({ type: "auth", token: "not-a-token" });
      await intruder.closed;
      await page.waitForFunction(
        (before) => Number(document.querySelector('[data-stat="failure"]')?.textContent) > before,
        failuresBefore,
        { timeout: 5000 },
      );
      assert.match(
        await page.locator('[data-stat="reasons"]').textContent() ?? "",
        /malformed_token/,
      );

      // 3. The attempt appears in the live feed.
      const [stored] = await server.attempts(1);
      assert.equal(stored.reason, "malformed_token");
      await page.locator(`.feed tr[data-attempt-id="${stored.id}"]`).waitFor({ timeout: 5000 });

      // 4. The explorer filters: failures only, then by reason.
      await page.getByRole("link", { name: "Attempts" }).click();
      await page.waitForURL(/\/admin\/attempts/);
      await page.getByLabel("Outcome").selectOption("failure");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.waitForURL(/outcome=failure/);
      const rows = page.locator("table.attempts tbody tr");
      await rows.first().waitFor();
      const outcomes = await rows.evaluateAll((trs) => trs.map((tr) => tr.className));
      assert.ok(outcomes.length >= 1 && outcomes.every((c) => c === "failure"), outcomes.join());
      await shoot(page, "attempts", BOTH_SCHEMES);

      // The socket tester: connect, authenticate, see the frames.
      await page.getByRole("link", { name: "Socket tester" }).click();
      // Before the first connect it says so, rather than "closed".
      assert.equal(
        await page.locator("[data-debug-state]").getAttribute("data-debug-state"),
        "not connected",
      );
      assert.match(await page.locator(".status").textContent() ?? "", /Socket: not connected/);
      await page.getByRole("button", { name: "Fetch token" }).click();
      await page.getByText(/got a token/).waitFor();
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.locator('[data-debug-state="open"]').waitFor();
      await page.getByRole("button", { name: "Send auth" }).click();
      // Frames are pretty-printed JSON: `"type": "authenticated"` on its own indented line.
      await page.getByText(/"type": ?"authenticated"/).waitFor();
      assert.match(
        await page.locator(".log li.in pre", { hasText: /"type": "authenticated"/ }).first()
          .textContent() ?? "",
        /^\{\n {2}"type": "authenticated",\n/,
      );
      assert.doesNotMatch(
        await page.locator(".log").textContent() ?? "",
        /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/,
      );
      await page.getByRole("button", { name: "bad message" }).click();
      await page.getByText(/"code": ?"bad_message"/).waitFor();
      await shoot(page, "debug", BOTH_SCHEMES);

      // Connect again with a socket open: it asks first. No keeps the socket,
      // yes replaces it (the server then holds one socket of this page, not two).
      const asked: string[] = [];
      page.once("dialog", (d) => (asked.push(d.message()), d.dismiss()));
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.getByText("kept the open socket").waitFor();
      assert.match(asked[0] ?? "", /already open/);
      assert.equal(
        await page.locator("[data-debug-state]").getAttribute("data-debug-state"),
        "open",
      );
      page.once("dialog", (d) => (asked.push(d.message()), d.accept()));
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.getByText(/closed 1000 debug: replaced/).waitFor();
      await page.locator('[data-debug-state="open"]').waitFor();
      assert.equal(asked.length, 2);

      // 6. Logout closes the socket: the server sees it go.
      await page.goto(new URL("/admin", server.url).href);
      await page.locator('.badge[data-state="live"]').waitFor();
      // Leaving the tester closed its socket; the overview's own is the one left.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await server.deps.stats.fresh()).connections.authenticated, 1);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForURL(/\/login$/);
      await shoot(page, "login", BOTH_SCHEMES);
      const deadline = Date.now() + 5000;
      while ((await server.deps.stats.fresh()).connections.open > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(
        (await server.deps.stats.fresh()).connections.open,
        0,
        "every socket of the session closed",
      );
      assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
    }),
});

Deno.test({
  name:
    "dashboard: the latest attempts and the Succeeded counter agree on every page load, the page's own sign-in included",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDashboard(async ({ server, page, errors, password }) => {
      // Each load opens the page's socket, whose sign-in is recorded after the
      // page was rendered and before it subscribes to attempts.
      await signIn(page, server.url, "ada", password);
      for (let load = 1; load <= 3; load++) {
        if (load > 1) await page.reload();
        await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });
        // The sign-in at /auth/login is one success too (CONTRACT 9: transport login).
        const successes = load + 1;
        await page.waitForFunction(
          (n) => document.querySelector('[data-stat="success"]')?.textContent?.trim() === String(n),
          successes,
          { timeout: 5000 },
        );
        const [own] = await server.attempts(1);
        assert.equal(own.outcome, "success");
        assert.equal(own.user, "ada");
        await page.locator(`.feed tr[data-attempt-id="${own.id}"]`).waitFor({ timeout: 5000 });
        assert.equal(
          await page.locator(".feed tbody tr.success").count(),
          successes,
          `load ${load}: the feed's successes are the counter's`,
        );
      }

      // The rendered rows are as many as the live feed keeps (50), not fewer.
      for (let i = 0; i < 60; i++) {
        await server.deps.attempts.record(attemptInput({ ip: `198.51.100.${i}` }));
      }
      const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join("; ");
      const html = await (await fetch(new URL("/admin", server.url), { headers: { cookie } }))
        .text();
      assert.equal(html.match(/data-attempt-id=/g)?.length, 50, "rows rendered on /admin");
      await page.reload();
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });
      const [own] = await server.attempts(1);
      await page.locator(`.feed tr[data-attempt-id="${own.id}"]`).waitFor({ timeout: 5000 });
      assert.equal(await page.locator(".feed tbody tr").count(), 50);
      assert.deepEqual(errors, []);
    }),
});

Deno.test({
  name: "dashboard: the badge shows reconnecting across a server restart, then live again",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await ensureBuilt();
    const dir = await Deno.makeTempDir({ prefix: "lookout-browser-" });
    const env = { KV_PATH: `${dir}/kv.sqlite3`, JWT_SECRET: randomSecret() };
    let server = await startTestServer(env);
    const port = server.url.port;
    const browser = await launch();
    try {
      const password = randomPassword();
      await putUser(server.deps.kv, { name: "ada", role: "admin", password });
      const page = await browser.newPage();
      await signIn(page, server.url, "ada", password);
      const badge = page.locator(".badge");
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });

      await server.close();
      await page.locator('.badge[data-state="reconnecting"]').waitFor({ timeout: 5000 });
      assert.match(await badge.textContent() ?? "", /1001|Reconnecting/);
      // The badge's one line may be cut; its tooltip holds the whole explanation.
      const code = Number(await badge.locator(".why").getAttribute("data-close-code"));
      const title = await badge.getAttribute("title") ?? "";
      assert.ok(code >= 1000, `a close code: ${code}`);
      const reason =
        /^\d+ ([a-z_]+):/.exec((await badge.locator(".why").textContent()) ?? "")?.[1] ??
          "";
      assert.ok(
        title.includes(`${code}${reason ? ` ${reason}` : ""}: ${explainClose(code, reason)}`),
        title,
      );
      await shoot(page, "overview-reconnecting", BOTH_SCHEMES);

      server = await startTestServer({ ...env, PORT: port });
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 20_000 });
      assert.equal((await server.deps.stats.fresh()).connections.authenticated, 1);

      // Live again, the disconnect stays listed, with its time, whole when opened.
      const list = page.locator(".disconnects");
      assert.match(
        await list.locator("summary").textContent() ?? "",
        // The close of the restart, and the failed tries while the server was down.
        /^(1 disconnect|[2-5] disconnects), last at \d\d:\d\d:\d\d UTC$/,
      );
      await list.locator("summary").click();
      // Newest first: the restart's close is the oldest listed.
      const item = list.locator(`li[data-close-code="${code}"]`).last();
      await item.waitFor();
      const itemText = await item.textContent() ?? "";
      assert.match(itemText, /^\d\d:\d\d:\d\d UTC /);
      assert.ok(
        itemText.endsWith(`${code}${reason ? ` ${reason}` : ""}: ${explainClose(code, reason)}`),
        itemText,
      );
      assert.ok(
        await item.evaluate((li) =>
          li.scrollWidth <= li.clientWidth && li.getBoundingClientRect().height > 0
        ),
        "the explanation is shown whole, not cut",
      );
      await shoot(page, "overview-disconnects", BOTH_SCHEMES);
      await page.setViewportSize({ width: 390, height: 844 });
      await item.waitFor();
      assert.ok(await item.evaluate((li) => li.scrollWidth <= li.clientWidth));
      await shoot(page, "overview-disconnects-phone", BOTH_SCHEMES);
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "dashboard: attempt details from the feed and the explorer, origin and transport filters, export, charts and phone layout",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDashboard(async ({ server, page, errors, password }) => {
      // A real refused upgrade from a foreign origin, with a hostile user agent.
      const evilAgent = '=HYPERLINK("http://evil.example") curl/8.5';
      const refused = await rawUpgrade(server.wsUrl, {
        Origin: "https://evil.example",
        "User-Agent": evilAgent,
      });
      assert.equal(refused.status, 403);
      // And one authenticated socket, by header: a success with a token id.
      const token = await server.mint({ sub: "grace" });
      const grace = await TestClient.open(server.wsUrl, {
        headers: { authorization: `Bearer ${token}`, "user-agent": "grace-cli/1.0" },
      });
      await grace.next("authenticated");
      await grace.close();
      const stored = await server.attempts(5);
      const bad = stored.find((a) => a.reason === "bad_origin")!;
      const ok = stored.find((a) => a.outcome === "success")!;
      assert.ok(bad && ok, JSON.stringify(stored));
      assert.equal(ok.transport, "header");

      await signIn(page, server.url, "ada", password);
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });

      // The feed: tables say UTC and the date; bad_origin names the refused origin.
      const feed = page.locator(".feed");
      assert.equal(await feed.locator("th").first().textContent(), "Time (UTC)");
      const badRow = feed.locator(`tr[data-attempt-id="${bad.id}"]`);
      assert.match(
        await badRow.locator("time").textContent() ?? "",
        /^\d\d [A-Z][a-z]{2} \d\d:\d\d:\d\d$/,
      );
      assert.equal(
        await badRow.locator("[data-refused-origin] code").textContent(),
        "https://evil.example",
      );
      // The detail view holds every field, the user agent whole.
      await feed.locator(`tr[data-attempt-id="${ok.id}"]`).getByRole("button", { name: "Details" })
        .click();
      const okDetail = feed.locator(`[data-attempt-detail="${ok.id}"]`);
      await okDetail.waitFor();
      assert.match(ok.userAgent ?? "", /grace-cli\/1\.0/);
      assert.equal(await okDetail.locator('[data-field="userAgent"]').textContent(), ok.userAgent);
      assert.equal(await okDetail.locator('[data-field="tokenId"]').textContent(), ok.tokenId);
      assert.equal(await okDetail.locator('[data-field="transport"]').textContent(), "header");
      assert.match(await okDetail.locator('[data-field="duration"]').textContent() ?? "", / ms$/);
      assert.match(await okDetail.textContent() ?? "", /\d{4}, \d\d:\d\d:\d\d UTC/);

      // The charts start where the data starts, and say their zone.
      const props = JSON.parse(
        await page.locator('[data-island="Charts"]').getAttribute("data-props") ?? "{}",
      );
      const firstMinute = Math.min(bad.at, ok.at) - (Math.min(bad.at, ok.at) % 60_000);
      assert.ok(props.history.length <= 3, `${props.history.length} minutes`);
      assert.ok(props.history[0].t >= firstMinute - 60_000, JSON.stringify(props.history[0]));
      for (const caption of await page.locator(".chart figcaption").allTextContents()) {
        assert.match(caption, /UTC/);
      }
      await page.locator(".plot canvas").first().waitFor();
      await shoot(page, "overview-detail", BOTH_SCHEMES);

      // The explorer: filter by origin and transport, open a detail, export.
      await page.getByRole("link", { name: "Attempts" }).click();
      await page.waitForURL(/\/admin\/attempts/);
      await page.getByLabel("Origin", { exact: true }).fill("https://evil.example");
      await page.locator('select[name="transport"]').selectOption("upgrade");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.waitForURL(/origin=https.*transport=upgrade|transport=upgrade.*origin=https/);
      const rows = page.locator("table.attempts tbody tr[data-attempt-id]");
      await rows.first().waitFor();
      assert.deepEqual(
        await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-attempt-id"))),
        [bad.id],
      );
      await rows.first().getByRole("button", { name: "Details" }).click();
      const badDetail = page.locator(`[data-attempt-detail="${bad.id}"]`);
      assert.equal(
        await badDetail.locator('[data-field="origin"]').textContent(),
        "https://evil.example",
      );
      assert.equal(await badDetail.locator('[data-field="userAgent"]').textContent(), evilAgent);
      await shoot(page, "attempts-detail", BOTH_SCHEMES);

      const download = page.waitForEvent("download");
      await page.locator('[data-export="csv"]').click();
      const file = await download;
      assert.match(file.suggestedFilename(), /^lookout-attempts-.*\.csv$/);
      const csv = await Deno.readTextFile(await file.path());
      const lines = csv.trimEnd().split("\r\n");
      assert.equal(lines.length, 2, csv);
      assert.ok(lines[1].startsWith(`${bad.id},`), csv);
      assert.ok(lines[1].includes(`"'=HYPERLINK(""http://evil.example"") curl/8.5"`), csv);
      const json = page.waitForEvent("download");
      await page.locator('[data-export="json"]').click();
      const exported = JSON.parse(await Deno.readTextFile(await (await json).path()));
      assert.deepEqual(exported.map((a: { id: string }) => a.id), [bad.id]);

      // On a phone the wide table scrolls sideways, and says so.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(new URL("/admin/attempts", server.url).href);
      const wrap = page.locator(".table-wrap").first();
      await wrap.waitFor();
      assert.ok(
        await wrap.evaluate((el) => el.scrollWidth > el.clientWidth),
        "the table is wider than the phone",
      );
      assert.equal(
        await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth),
        true,
        "the page itself does not scroll sideways",
      );
      // Nothing but the table's inside is too wide.
      assert.deepEqual(
        await page.evaluate(() =>
          [...document.querySelectorAll("body *")].filter((el) =>
            el.getBoundingClientRect().right > innerWidth + 1 && !el.closest(".table-wrap")
          ).map((el) => `${el.tagName}.${el.className}`)
        ),
        [],
      );
      await page.locator(".scroll-hint").first().waitFor({ state: "visible" });
      await shoot(page, "attempts-phone", BOTH_SCHEMES);
      await page.goto(new URL("/admin", server.url).href);
      await page.locator(".plot canvas").first().waitFor();
      await page.locator(".feed .scroll-hint").waitFor({ state: "visible" });
      await shoot(page, "overview-phone", BOTH_SCHEMES);
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(new URL("/admin/attempts", server.url).href);
      assert.equal(await page.locator(".scroll-hint").first().isVisible(), false);
      assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
    }),
});
