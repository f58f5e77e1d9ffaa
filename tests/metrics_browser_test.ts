/**
 * The metrics board and the API keys page in a real browser (Debian's
 * Chromium driven by playwright-core), CONTRACT 7.5. Screenshots at desktop
 * (1280x800) and phone (390x844) sizes go to test_output/screenshots/.
 */
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { putUser } from "../lib/auth/users.ts";
import { randomPassword, startTestServer, type TestServer } from "./helpers.ts";
import { ensureBuilt, hasChromium, launch, shoot, signIn, warnIfNoChromium } from "./browser.ts";

warnIfNoChromium("metrics browser tests");
import { push } from "./metrics_fixtures.ts";

const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };

async function withBrowser(
  fn: (ctx: { server: TestServer; browser: Browser; password: string }) => Promise<void>,
) {
  await ensureBuilt();
  const server = await startTestServer();
  const browser = await launch();
  try {
    const password = randomPassword();
    await putUser(server.deps.kv, { name: "ada", role: "admin", password });
    await putUser(server.deps.kv, { name: "vic", role: "viewer", password });
    await fn({ server, browser, password });
  } finally {
    await browser.close();
    await server.close();
  }
}

/** A page that collects its errors. */
async function newPage(browser: Browser, size: keyof typeof SIZES) {
  const page = await browser.newPage({ viewport: SIZES[size] });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  return { page, errors };
}

Deno.test({
  name:
    "/admin/metrics: empty state with the curl line, a pushed point appears live, a reload keeps the history, pushes extend it",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withBrowser(async ({ server, browser, password }) => {
      const admin = await server.mint({ role: "admin" });
      for (const size of ["desktop", "phone"] as const) {
        const { page, errors } = await newPage(browser, size);
        const name = `orders.${size}`;
        await signIn(page, server.url, "ada", password);
        await page.goto(new URL("/admin/metrics", server.url).href);
        await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });
        if (size === "desktop") {
          // 1. Nothing pushed yet: how to send a first point, host filled in.
          const curl = await page.locator("[data-curl]").textContent();
          assert.ok(
            curl?.includes(`curl -X POST ${server.url.origin}/api/v1/metrics`),
            `the curl line names this server: ${curl}`,
          );
          await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
          await page.locator("[data-empty]").getByRole("button", { name: "Copy" }).click();
          await page.getByRole("button", { name: "Copied" }).waitFor();
          assert.equal(await page.evaluate(() => navigator.clipboard.readText()), curl);
          await shoot(page, `metrics-empty-${size}`);
        }

        // 2. A push appears without a reload: panel, current value, chart.
        const at = Date.now();
        const older = at - 30_000;
        const res = await push(server.url, admin, {
          points: [
            { name, type: "counter", value: 5, labels: { shop: "eu" }, at: older },
            { name, type: "counter", value: 2, labels: { shop: "us" }, at },
          ],
        });
        assert.equal(res.body.accepted, 2);
        const panel = page.locator(`[data-panel="${name}"]`);
        await panel.waitFor({ timeout: 5000 });
        const eu = panel.locator(`[data-series='{shop="eu"}'] [data-value]`);
        await page.waitForFunction(
          (sel) => document.querySelector(sel)?.textContent === "5",
          `[data-panel="${name}"] [data-series='{shop="eu"}'] [data-value]`,
          { timeout: 5000 },
        );
        assert.equal(await eu.textContent(), "5");
        assert.equal(await page.locator("[data-empty]").count(), 0, "the empty state is gone");
        await push(server.url, admin, {
          points: [{ name, type: "counter", value: 3, labels: { shop: "eu" }, at }],
        });
        await page.waitForFunction(
          (sel) => document.querySelector(sel)?.textContent === "8",
          `[data-panel="${name}"] [data-series='{shop="eu"}'] [data-value]`,
          { timeout: 5000 },
        );
        await panel.locator("canvas").first().waitFor();
        assert.equal(await panel.getAttribute("data-points"), "3", "eu: 2 buckets, us: 1");
        await shoot(page, `metrics-live-${size}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= SIZES[size].width, `the page is ${width} px wide`);

        // 3. A reload draws the same history from KV.
        await page.reload();
        await page.locator('.badge[data-state="live"]').waitFor({ timeout: 10_000 });
        assert.equal(await panel.getAttribute("data-points"), "3");
        assert.equal(await eu.textContent(), "8");
        await panel.locator("canvas").first().waitFor();

        // 4. And goes on live: a new bucket joins the chart.
        await page.waitForTimeout(500);
        await push(server.url, admin, {
          points: [{ name, type: "counter", value: 1, labels: { shop: "us" }, at: at - 60_000 }],
        });
        await page.waitForFunction(
          (sel) => document.querySelector(sel)?.getAttribute("data-points") === "4",
          `[data-panel="${name}"]`,
          { timeout: 5000 },
        );

        // 5. The name filter leaves the other names out.
        await page.goto(new URL(`/admin/metrics?range=15m&name=${name}`, server.url).href);
        assert.equal(await page.locator("[data-panel]").count(), 1);
        await page.goto(new URL(`/admin/metrics?name=nothing.like.it`, server.url).href);
        assert.equal(await page.locator("[data-panel]").count(), 0);
        assert.equal(await page.getByText("No series matches these filters.").count(), 1);
        assert.deepEqual(errors, []);
        await page.close();
      }
    }),
});

Deno.test({
  name:
    "/admin/keys: create shows the key once with a copy button, lists it, revokes it; a viewer gets 403 and no link",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withBrowser(async ({ server, browser, password }) => {
      for (const size of ["desktop", "phone"] as const) {
        const { page, errors } = await newPage(browser, size);
        await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
        await signIn(page, server.url, "ada", password);
        await page.goto(new URL("/admin/keys", server.url).href);
        const keyName = `checkout-${size}`;
        await page.getByLabel("Name").fill(keyName);
        await page.getByLabel("Scope").selectOption("ingest");
        await page.getByRole("button", { name: "Create key" }).click();
        const shown = page.locator("[data-new-key]");
        await shown.waitFor();
        const key = await shown.inputValue();
        assert.equal(await page.locator('[role="alert"]').count(), 0, "no error beside the key");
        assert.equal(await page.getByLabel("Name").inputValue(), "", "the form is reset");
        assert.match(key, /^lk_[A-Za-z0-9_-]{43,}$/);
        await page.getByRole("button", { name: "Copy", exact: true }).click();
        await page.getByRole("button", { name: "Copied" }).waitFor();
        assert.equal(await page.evaluate(() => navigator.clipboard.readText()), key);
        const row = page.locator("tr", { hasText: keyName });
        assert.equal(await row.count(), 1);
        await shoot(page, `keys-created-${size}`);
        const width = await page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok(width <= SIZES[size].width, `the page is ${width} px wide`);
        // The key works, and it is never shown again.
        const ok = await push(server.url, key, {
          points: [{ name: "keys.test", type: "gauge", value: 1 }],
        });
        assert.equal(ok.status, 200);
        await page.reload();
        assert.equal(await page.locator("[data-new-key]").count(), 0);
        assert.equal(await page.content().then((html) => html.includes(key)), false);
        assert.equal(await row.count(), 1);
        // Revoke: gone from the list and refused.
        page.once("dialog", (d) => d.accept());
        await row.getByRole("button", { name: "Revoke" }).click();
        await page.waitForFunction(
          (n) => ![...document.querySelectorAll("tr")].some((r) => r.textContent?.includes(n)),
          keyName,
        );
        const refused = await push(server.url, key, {
          points: [{ name: "keys.test", type: "gauge", value: 1 }],
        });
        assert.equal(refused.status, 401);
        await page.reload();
        assert.equal(await row.count(), 0);
        assert.deepEqual(errors, []);
        await page.close();
      }

      const { page } = await newPage(browser, "desktop");
      await signIn(page, server.url, "vic", password);
      assert.equal(await page.locator('nav a[href="/admin/keys"]').count(), 0);
      assert.equal(await page.locator('nav a[href="/admin/metrics"]').count(), 1);
      const res = await page.goto(new URL("/admin/keys", server.url).href);
      assert.equal(res?.status(), 403);
      assert.equal(await page.locator("[data-new-key], form").count(), 1, "only sign-out");
      const board = await page.goto(new URL("/admin/metrics", server.url).href);
      assert.equal(board?.status(), 200);
      await page.close();
    }),
});
