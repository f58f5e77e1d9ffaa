/**
 * The Connections page in a real browser (Debian's Chromium driven by
 * playwright-core): an admin disconnects a real socket and signs a user out
 * everywhere; a viewer gets 403 and no link. Screenshots at desktop and
 * phone size go to test_output/screenshots/.
 */
import assert from "node:assert/strict";
import { putUser } from "../lib/auth/users.ts";
import { randomPassword, startTestServer, TestClient } from "./helpers.ts";
import { ensureBuilt, hasChromium, launch, shoot, signIn, warnIfNoChromium } from "./browser.ts";

warnIfNoChromium("connections browser tests");

Deno.test({
  name: "connections page: an admin disconnects a real socket and signs a user out everywhere",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await ensureBuilt();
    await using server = await startTestServer();
    const browser = await launch();
    try {
      const password = randomPassword();
      await putUser(server.deps.kv, { name: "ada", role: "admin", password });
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      const dialogs: string[] = [];
      page.on("dialog", async (d) => {
        dialogs.push(d.message());
        await d.accept();
      });
      const tom = await TestClient.open(server.wsUrl, { headers: { "User-Agent": "tom-cli/2" } });
      const { connectionId } = await tom.auth(await server.mint({ sub: "tom", role: "viewer" }));
      const tom2 = await TestClient.open(server.wsUrl);
      await tom2.auth(await server.mint({ sub: "tom", role: "viewer" }));

      await signIn(page, server.url, "ada", password);
      await page.getByRole("link", { name: "Connections" }).click();
      await page.waitForURL(/\/admin\/connections$/);
      const row = page.locator(`tr[data-connection-id="${connectionId}"]`);
      await row.waitFor();
      assert.match(await row.textContent() ?? "", /tom.*viewer.*127\.0\.0\.1/s);
      // The page's own live socket (ada) is listed within a poll.
      await page.locator('tr[data-user="ada"]').waitFor({ timeout: 8000 });
      await shoot(page, "connections-desktop");
      await page.setViewportSize({ width: 390, height: 844 });
      await shoot(page, "connections-phone");
      await page.setViewportSize({ width: 1280, height: 900 });

      // Disconnect one of tom's sockets from the page.
      await row.getByRole("button", { name: "Disconnect" }).click();
      assert.deepEqual(await tom.closed, { code: 4403, reason: "revoked" });
      await row.waitFor({ state: "detached" });
      assert.match(dialogs[0], /Disconnect this socket of tom\?/);
      assert.equal(tom2.ws.readyState, WebSocket.OPEN, "only that socket");

      // Sign tom out everywhere.
      await page.locator('tr[data-user="tom"]').getByRole("button", {
        name: "Sign out everywhere",
      }).click();
      assert.deepEqual(await tom2.closed, { code: 4403, reason: "revoked" });
      assert.match(dialogs[1], /Sign tom out everywhere\?/);
      await page.locator('tr[data-user="tom"]').waitFor({ state: "detached" });
      await page.getByText("tom was signed out everywhere.").waitFor();
      assert.deepEqual(errors, []);

      // A viewer: no link, and the page is 403.
      const viewerPassword = randomPassword();
      await putUser(server.deps.kv, { name: "val", role: "viewer", password: viewerPassword });
      const viewer = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await signIn(viewer, server.url, "val", viewerPassword);
      assert.equal(await viewer.getByRole("link", { name: "Connections" }).count(), 0);
      const res = await viewer.goto(new URL("/admin/connections", server.url).href);
      assert.equal(res?.status(), 403);
      await viewer.getByRole("heading", { name: "Forbidden" }).waitFor();
      assert.equal(await viewer.locator("[data-connection-id]").count(), 0);
    } finally {
      await browser.close();
    }
  },
});
