/**
 * The dashboard in a real browser (Debian's Chromium driven by
 * playwright-core): sign in, live counters, the feed, the explorer, the
 * badge across a server restart, and logout. Screenshots of every page, in
 * light and dark, go to test_output/screenshots/.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
import { putUser } from "../lib/users.ts";
import {
  randomPassword,
  randomSecret,
  startTestServer,
  TestClient,
  type TestServer,
} from "./helpers.ts";

const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const SHOTS = new URL("../test_output/screenshots/", import.meta.url);
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);

if (!hasChromium) {
  console.warn(
    `\n${"!".repeat(72)}\n!! SKIPPED: browser tests. No Chromium at ${CHROMIUM}.\n` +
      `!! Install it (apt-get install chromium, as .ci/run does) or set CHROMIUM_PATH.\n${
        "!".repeat(72)
      }\n`,
  );
}

async function ensureBuilt(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../scripts/build.ts", import.meta.url).pathname, "--if-stale"],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, "the island assets build");
}

async function launch(): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

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

async function shoot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SHOTS, { recursive: true });
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({
      path: new URL(`${name}-${scheme}.png`, SHOTS).pathname,
      fullPage: true,
    });
  }
  await page.emulateMedia({ colorScheme: "light" });
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
      await shoot(page, "overview");

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
      await shoot(page, "attempts");

      // The socket tester: connect, authenticate, see the frames.
      await page.getByRole("link", { name: "Socket tester" }).click();
      await page.getByRole("button", { name: "Fetch token" }).click();
      await page.getByText(/got a token/).waitFor();
      await page.getByRole("button", { name: "Connect", exact: true }).click();
      await page.locator('[data-debug-state="open"]').waitFor();
      await page.getByRole("button", { name: "Send auth" }).click();
      await page.getByText(/"type":"authenticated"/).waitFor();
      assert.doesNotMatch(
        await page.locator(".log").textContent() ?? "",
        /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/,
      );
      await page.getByRole("button", { name: "bad message" }).click();
      await page.getByText(/"code":"bad_message"/).waitFor();
      await shoot(page, "debug");

      // 6. Logout closes the socket: the server sees it go.
      await page.goto(new URL("/admin", server.url).href);
      await page.locator('.badge[data-state="live"]').waitFor();
      // Leaving the tester closed its socket; the overview's own is the one left.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await server.deps.hub.stats()).connections.authenticated, 1);
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForURL(/\/login$/);
      await shoot(page, "login");
      const deadline = Date.now() + 5000;
      while ((await server.deps.hub.stats()).connections.open > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(
        (await server.deps.hub.stats()).connections.open,
        0,
        "every socket of the session closed",
      );
      assert.deepEqual(errors.filter((e) => !/401|Failed to load resource/.test(e)), []);
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
      await shoot(page, "overview-reconnecting");

      server = await startTestServer({ ...env, PORT: port });
      await page.locator('.badge[data-state="live"]').waitFor({ timeout: 20_000 });
      assert.equal((await server.deps.hub.stats()).connections.authenticated, 1);
    } finally {
      await browser.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
